#!/usr/bin/env bash
# Builds the project (not LLVM) with ASan + UBSan and libFuzzer's coverage
# instrumentation in build-asan/ (MOE_ENABLE_SANITIZERS + MOE_ENABLE_FUZZERS:
# one sanitized build serves the suites and the fuzzers) and runs the
# GoogleTest and lit suites under it. scripts/fuzz.sh runs the fuzzers from
# the same build. Idempotent: configures once, then only rebuilds what
# changed.
#
# allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons its free space
# when the *headers* see ASan, but libMLIR.so itself is not instrumented, so
# its allocations from the same arena would be reported as false
# use-after-poison errors. detect_leaks=0: MLIR keeps uniqued storage and the
# JIT keeps code for the process lifetime.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash "$ROOT/scripts/configure-asan.sh"
cmake --build build-asan -j "${MOE_JOBS:-2}" --target moe-unit-tests moe-lit-tools
export ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build-asan/bin/moe-unit-tests
/usr/lib/llvm-22/bin/lit -s build-asan/test
