#!/usr/bin/env bash
# The demo, run on an existing build folder (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
b=${1:-build}
echo "== fmc check examples/masks/*.mask"
"$b"/tools/fmc check examples/masks/*.mask && echo "all $(ls examples/masks/*.mask | wc -l) standard masks check"
echo
echo "== fmc print examples/masks/sliding_with_sinks.mask"
"$b"/tools/fmc print examples/masks/sliding_with_sinks.mask
if [ -x "$b"/tools/fmviz ] && "$b"/tools/fmviz --help >/dev/null 2>&1; then
  echo
  echo "== fmviz examples/masks/sliding_with_sinks.mask --q-len 2048 --block 128"
  "$b"/tools/fmviz examples/masks/sliding_with_sinks.mask --q-len 2048 --block 128
fi
if [ -x "$b"/examples/jit_mask ]; then
  echo
  echo "== examples/c/jit_mask"
  "$b"/examples/jit_mask
fi
