#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs every test through ctest:
# the lit suite (dialect, pipelines, integration), the GoogleTest unit tests
# and the Python tests. Then the sanitized build (build-asan/: ASan + UBSan
# + libFuzzer coverage): the unit and lit suites under the sanitizers
# (scripts/sanitize.sh) and each fuzzer for 60 s (scripts/fuzz.sh).
# MOE_SKIP_SANITIZED=1 stops after the first part (a quick local run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
(cd "$ROOT/build" && ctest --output-on-failure -j 2)
if [ "${MOE_SKIP_SANITIZED:-0}" != 1 ]; then
  bash "$ROOT/scripts/sanitize.sh"
  bash "$ROOT/scripts/fuzz.sh"
fi
