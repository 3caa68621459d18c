#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs every test through ctest:
# the lit suite (dialect, pipelines, integration), the GoogleTest unit tests
# and the Python tests. Ends with ctest's summary.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT/build"
ctest --output-on-failure -j 2
