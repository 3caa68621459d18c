#!/usr/bin/env bash
# Configures build-asan/ (sanitizers + fuzzers) once; reconfigures only a
# build-asan/ made before the fuzzers existed. Used by sanitize.sh, fuzz.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash "$ROOT/scripts/setup.sh" >/dev/null
if [ ! -f build-asan/build.ninja ] ||
   ! grep -q '^MOE_ENABLE_FUZZERS:BOOL=ON$' build-asan/CMakeCache.txt; then
  cmake -G Ninja -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DPython3_EXECUTABLE=/usr/bin/python3 \
    -DMOE_ENABLE_SANITIZERS=ON -DMOE_ENABLE_FUZZERS=ON >/dev/null
fi
