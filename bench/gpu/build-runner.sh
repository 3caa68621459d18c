#!/usr/bin/env bash
# Builds the GPU runtime and moe-gpu-run without LLVM, MLIR or CUDA, for GPU
# machines that have only a C++ compiler, a CUDA driver and torch (the
# project's CMake needs MLIR). The driver is loaded at run time.
#
#   bash bench/gpu/build-runner.sh [OUT_DIR]      # default: build-gpu
#   build-gpu/moe-gpu-run layer.ptx layer.launch --tokens=4096
#
# CXX picks the compiler (default c++; C++20, e.g. GCC >= 10 or Clang >= 12).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-build-gpu}
CXX=${CXX:-c++}
mkdir -p "$OUT"
"$CXX" -std=c++20 -O2 -fPIC -shared -I"$ROOT/runtime/include" \
  "$ROOT"/runtime/src/*.cpp -o "$OUT/libmoe_runtime.so" -ldl -lpthread
# moe-gpu-run also uses the support library (.npy codec, RNG, dtype names),
# plain C++ like the runtime; compiled into the executable here.
"$CXX" -std=c++20 -O2 -I"$ROOT/runtime/include" -I"$ROOT/include" \
  "$ROOT/tools/moe-gpu-run/moe-gpu-run.cpp" "$ROOT"/lib/Support/*.cpp \
  -L"$OUT" -lmoe_runtime -Wl,-rpath,'$ORIGIN' -o "$OUT/moe-gpu-run"
echo "built $OUT/moe-gpu-run and $OUT/libmoe_runtime.so"
