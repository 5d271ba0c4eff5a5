#!/usr/bin/env bash
# The command-line tools under valgrind memcheck: fmc check / print /
# blockmask / cuda / attend and fmviz (terminal, PNG, SVG, --check) over
# every example mask, plus malformed mask files, a malformed .npy and bad
# usage. Leaves out what only calls into NVRTC (fmc ptx) and runs attention
# on the CPU. Fails on any memory error, any definite leak, or an exit
# status other than the one expected.
#
#   tests/valgrind.sh [BUILD_DIR]     (default: build-test)
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-test}
fmc=$build/tools/fmc
fmviz=$build/tools/fmviz
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 1; }
[ -x "$fmc" ] && [ -x "$fmviz" ] || { echo "valgrind.sh: build $build first" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=2
vg=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --log-file="$tmp/vg.%p.log")
runs=0
failures=0

# expect STATUS CMD...: runs CMD under memcheck, wants exit status STATUS.
expect() {
  local want=$1
  shift
  runs=$((runs + 1))
  rm -f "$tmp"/vg.*.log
  "${vg[@]}" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ] || grep -q . "$tmp"/vg.*.log 2>/dev/null; then
    failures=$((failures + 1))
    echo "FAIL (exit $rc, expected $want): ${*#"$build/"}"
    cat "$tmp"/vg.*.log 2>/dev/null | head -40
    head -c 2000 "$tmp/err"
  fi
}

# The bindings each example needs at q-len 8, batch 2.
bindings() {
  case $(basename "$1" .mask) in
    batched_prefill) echo "--input q_req=0,0,0,1,1,1,1,1 --input q_pos=0,1,2,0,1,2,3,4
                           --input kv_req=0,0,0,1,1,1,1,1 --input kv_pos=0,1,2,0,1,2,3,4" ;;
    cross_attention) echo "--input src_len=5,8" ;;
    decoder_self) echo "--input tgt_len=5,8" ;;
    document) echo "--input doc=0,0,0,1,1,1,2,2" ;;
    padding) echo "--input kv_len_of=3,8" ;;
    set_padding) echo "--input set_id=0,0,1,1,2,2,-1,-1" ;;
    tree) echo "--input enter=0,1,2,3,4,5,6,7 --input leave=7,2,2,3,7,7,6,7" ;;
  esac
}

shape=(--q-len 8 --batch 2 --heads 2 --block 4)
masks=(examples/masks/*.mask)
expect 0 "$fmc" check "${masks[@]}"
for m in "${masks[@]}"; do
  # shellcheck disable=SC2046 # the bindings are words
  b=($(bindings "$m"))
  expect 0 "$fmc" print "$m"
  expect 0 "$fmc" cuda "$m"
  expect 0 "$fmc" blockmask "$m" "${shape[@]}" "${b[@]}"
  expect 0 "$fmc" blockmask "$m" "${shape[@]}" "${b[@]}" --format json --diagnostics json
  expect 0 "$fmviz" "$m" "${shape[@]}" "${b[@]}" --check
done
if grep -q '^FM_HAVE_CAIRO:INTERNAL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  expect 0 "$fmviz" examples/masks/document.mask --q-len 8 --block 4 --input doc=0,0,0,1,1,1,2,2 \
    --png "$tmp/d.png" --svg "$tmp/d.svg" --pdf "$tmp/d.pdf"
else
  echo "valgrind.sh: skipping the fmviz images: this build has no cairo (FM_CAIRO)"
fi
expect 0 "$fmviz" examples/masks/sliding_window.mask --q-len 4096 --block 64 -D window=100

# Attention on the CPU, from .npy files written here (float32, [1, 2, 8, 4]).
python3 - "$tmp" <<'PY'
import struct, sys
def npy(path, shape, values, descr="<f4", fmt="f"):
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    h = h.encode() + b" " * ((-(11 + len(h))) % 64) + b"\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h)
        f.write(struct.pack("<%d%s" % (len(values), fmt), *values))
d = sys.argv[1]
n = 1 * 2 * 8 * 4
for name, k in (("q", 1), ("k", 2), ("v", 3)):
    npy(f"{d}/{name}.npy", (1, 2, 8, 4), [((i * 7 + k) % 11) / 11.0 for i in range(n)])
npy(f"{d}/q16.npy", (1, 2, 8, 4), [0x3C00] * n, "<f2", "H")
npy(f"{d}/doc.npy", (8,), [0, 0, 0, 1, 1, 1, 2, 2], "<i8", "q")
npy(f"{d}/trunc.npy", (100,), [0, 1], "<i4", "i")
PY
qkv=(--q "$tmp/q.npy" --k "$tmp/k.npy" --v "$tmp/v.npy" --device cpu --block 4)
expect 0 "$fmc" attend examples/masks/causal.mask "${qkv[@]}" --out "$tmp/o.npy" --lse "$tmp/l.npy"
expect 0 "$fmc" attend examples/masks/document.mask "${qkv[@]}" --out "$tmp/o.npy" \
  --input doc=@"$tmp/doc.npy"
expect 0 "$fmc" attend examples/masks/sliding_window.mask --q "$tmp/q16.npy" --k "$tmp/k.npy" \
  --v "$tmp/v.npy" --device cpu --out "$tmp/o.npy" -D window=3

# Malformed inputs: mask files (the front end's malformed table, kept as
# fuzz seeds), a truncated .npy, a wrong binding, bad usage.
bad=(fuzz/corpus/fuzz_frontend/bad_*.mask)
expect 1 "$fmc" check "${bad[@]}"
expect 1 "$fmc" check --diagnostics json "${bad[@]}"
expect 1 "$fmc" print "${bad[0]}"
expect 1 "$fmc" blockmask "${bad[0]}" --q-len 8
expect 1 "$fmviz" "${bad[1]}" --q-len 8
expect 1 "$fmc" check "$tmp/no-such-file.mask"
expect 1 "$fmc" blockmask examples/masks/document.mask --q-len 8 --input doc=@"$tmp/trunc.npy"
expect 1 "$fmc" blockmask examples/masks/document.mask --q-len 8 --input doc=0,1
expect 1 "$fmc" blockmask examples/masks/sliding_window.mask --q-len 8 -D nope=3
expect 1 "$fmc" attend examples/masks/causal.mask "${qkv[@]}" --out "$tmp/o.npy" \
  --q-len 9
expect 2 "$fmc" blockmask examples/masks/causal.mask --q-len 8 --no-such-flag
expect 2 "$fmc" blockmask examples/masks/causal.mask --q-len 8x
expect 2 "$fmviz" examples/masks/causal.mask

echo "valgrind: $runs runs, $failures failed"
[ "$failures" -eq 0 ]
