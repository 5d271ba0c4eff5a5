#!/usr/bin/env bash
# Draws the example pictures in docs/img/ with fmviz, from the example
# masks: causal at 8 x 8 tiles (one square per position), 4K and 128K
# (downsampled), a document mask, a sliding window and a per-head mask.
# Usage: scripts/make-doc-images.sh [BUILD_DIR]   (default: build)
# Needs a built fmviz and python3 (it writes the document ids as .npy).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
fmviz="$build/tools/fmviz"
[ -x "$fmviz" ] || { echo "make-doc-images: no $fmviz; build first" >&2; exit 1; }
out=docs/img
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
m=examples/masks

# Document ids for N tokens: documents of 1/16 to 1/4 of N, a fixed seed.
doc_ids() {
  python3 - "$1" "$2" <<'PY'
import random, struct, sys
n, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(11)
ids, d = [], 0
while len(ids) < n:
    ids += [d] * rng.randint(n // 16, n // 4)
    d += 1
ids = ids[:n]
head = "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }" % n
head += " " * (63 - (10 + len(head)) % 64) + "\n"
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode())
    f.write(struct.pack("<%di" % n, *ids))
PY
}
doc_ids 4096 "$tmp/doc4k.npy"
doc_ids 131072 "$tmp/doc128k.npy"

draw() { # NAME ARGS...: NAME.png and NAME.svg
  local name=$1
  shift
  "$fmviz" "$@" --png "$out/$name.png" --svg "$out/$name.svg" >/dev/null
  echo "$out/$name.png $out/$name.svg"
}
draw causal_8x8 $m/causal.mask --q-len 64 --block 8
draw causal_4k $m/causal.mask --q-len 4096
draw causal_128k $m/causal.mask --q-len 131072
draw document_4k $m/document.mask --q-len 4096 --input "doc=@$tmp/doc4k.npy"
draw document_128k $m/document.mask --q-len 131072 --input "doc=@$tmp/doc128k.npy"
draw sliding_window_4k $m/sliding_window.mask --q-len 4096 -D window=1024
draw per_head_4k $m/per_head.mask --q-len 4096 --heads 4 -D window=1024
"$fmviz" $m/sliding_window.mask --q-len 64 --block 8 -D window=20 --pdf "$out/sliding_window_8x8.pdf" >/dev/null
echo "$out/sliding_window_8x8.pdf"
