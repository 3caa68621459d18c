#!/usr/bin/env bash
# Installs the Debian packages that are missing, configures build/ with Ninja
# (once) and builds. Idempotent: a second run only re-runs the (no-op) build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# Everything both README commands need on a fresh minimal Debian 12
# (scripts/check-fresh.sh proves it): python3-dev for the pybind11 module,
# libclang-rt-22-dev for the sanitizers and libFuzzer of scripts/test.sh,
# OpenMPI for expert parallelism (moe_runtime_mpi and its mpirun tests),
# oneDNN for moe-bench's oneDNN baseline (moe-bench builds without it),
# PyTorch and matplotlib for moec.torch, its tests and the Python examples.
PACKAGES=(libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools clang-22
          libclang-rt-22-dev libomp-22-dev cmake ninja-build libgtest-dev
          pybind11-dev python3-dev python3-pybind11 python3-numpy
          libopenblas-dev libopenmpi-dev openmpi-bin libdnnl-dev
          python3-torch python3-matplotlib)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -f build/build.ninja ]; then
  cmake -G Ninja -S . -B build \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DPython3_EXECUTABLE=/usr/bin/python3
fi
# Two cores: -j2 keeps memory in check while linking.
cmake --build build -j 2
