#!/usr/bin/env bash
# Builds the project (not LLVM) with ASan + UBSan in build-asan/ and runs the
# GoogleTest and lit suites under it. Not part of CI yet (it doubles the
# build time); run it before landing changes to the runtime or the passes.
#
# allow_user_poisoning=0: LLVM's BumpPtrAllocator poisons its free space
# when the *headers* see ASan, but libMLIR.so itself is not instrumented, so
# its allocations from the same arena would be reported as false
# use-after-poison errors.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh" >/dev/null
cd "$ROOT"
if [ ! -f build-asan/build.ninja ]; then
  cmake -G Ninja -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DPython3_EXECUTABLE=/usr/bin/python3 -DMOE_ENABLE_SANITIZERS=ON
fi
cmake --build build-asan -j 2 --target moe-unit-tests moe-opt moe-run moe-compile
export ASAN_OPTIONS=detect_leaks=0:allow_user_poisoning=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build-asan/bin/moe-unit-tests
/usr/lib/llvm-22/bin/lit -s build-asan/test
