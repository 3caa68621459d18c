#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh); then the sanitized build
# (build-asan/: ASan + UBSan + libFuzzer coverage) runs the unit and lit
# suites under the sanitizers (scripts/sanitize.sh) and each fuzzer for 60 s
# (scripts/fuzz.sh); last, every test of the normal build through ctest (the
# lit suite, the GoogleTest unit tests and the Python tests), so the output
# ends with ctest's summary. MOE_SKIP_SANITIZED=1 skips the sanitized part
# (a quick local run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
if [ "${MOE_SKIP_SANITIZED:-0}" != 1 ]; then
  bash "$ROOT/scripts/sanitize.sh"
  bash "$ROOT/scripts/fuzz.sh"
fi
(cd "$ROOT/build" && ctest --output-on-failure -j 2)
