#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs the Mixtral-like example
# layer through the reference interpreter on random inputs and prints a
# summary of its output.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
echo "== examples/mixtral.mlir (moe dialect, verified and printed by moe-opt)"
build/bin/moe-opt examples/mixtral.mlir
echo "== reference interpreter on random inputs (seed 0)"
build/bin/moe-run examples/mixtral.mlir --input=random:0 --tokens=16
