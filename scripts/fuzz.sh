#!/usr/bin/env bash
# Builds the libFuzzer targets (test/fuzz) in the sanitized build-asan/ and
# runs them through ctest: each fuzzer for MOE_FUZZ_SECONDS (default 60)
# seconds, failing on any finding (crash, sanitizer report, contract
# violation, hang, out-of-memory), plus the replay of the kept regression
# inputs. Findings are left in build-asan/test/fuzz/artifacts/.
#
# Run one fuzzer by hand (longer, or on a finding):
#   ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0 \
#     build-asan/bin/moe-fuzz-runtime -max_total_time=600 CORPUS_DIR
#   build-asan/bin/moe-fuzz-pipeline crash-<hash>     # replays one input
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash "$ROOT/scripts/configure-asan.sh"
if [ -n "${MOE_FUZZ_SECONDS:-}" ]; then
  cmake -S . -B build-asan -DMOE_FUZZ_SECONDS="$MOE_FUZZ_SECONDS" >/dev/null
fi
cmake --build build-asan -j "${MOE_JOBS:-2}" --target moe-fuzz-pipeline moe-fuzz-runtime
ctest --test-dir build-asan -L fuzz --output-on-failure
