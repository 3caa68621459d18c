#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then compiles the Mixtral-like
# example layer for the host CPU, runs it on random inputs (T = 512 tokens)
# next to the reference interpreter, and prints the check and the timing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
echo "== examples/mixtral.mlir: softmax top-2 over 8 SwiGLU experts (H=64, I=128)"
build/bin/moe-run examples/mixtral.mlir --mode=both --tokens=512 --input=random:0 --repeat=20
