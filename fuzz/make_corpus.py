#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target under fuzz/corpus/<target>/.

Seeds come from the shipped example masks, the code blocks of
docs/language.md, the malformed-file table of the front-end tests
(tests/dsl_cases.h), and small hand-made .npy, safetensors and JIT cache
files. Deterministic: running it again rewrites the same files."""
import ast
import hashlib
import io
import json
import pathlib
import random
import re
import struct
import sys

root = pathlib.Path(__file__).resolve().parent.parent
out = root / "fuzz" / "corpus"


def put(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def c_bytes(lit):
    """The bytes of one C string literal's body (escapes as C reads them;
    non-ASCII characters written literally are their UTF-8 bytes)."""
    raw = "".join(c if ord(c) < 128 else "".join("\\x%02x" % b for b in c.encode()) for c in lit)
    return ast.literal_eval('b"' + raw + '"')


def c_strings(text):
    """The C string literals of BAD(name, source, expected) entries: the
    source argument (adjacent literals joined)."""
    sources = []
    for m in re.finditer(r'BAD\(\s*"([^"]*)",\s*((?:"(?:[^"\\]|\\.)*"\s*)+),', text):
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
        sources.append((m.group(1), b"".join(c_bytes(lit) for lit in lits)))
    return sources


masks = []
for p in sorted((root / "examples" / "masks").glob("*.mask")):
    masks.append((p.stem, p.read_bytes()))
doc = (root / "docs" / "language.md").read_text()
for i, block in enumerate(re.findall(r"```[a-z]*\n(.*?)```", doc, re.S)):
    if "mask " in block or "param " in block or "let " in block:
        masks.append((f"doc{i:02d}", block.encode()))
bad = c_strings((root / "tests" / "dsl_cases.h").read_text())

# ---- front end: every text as is
for name, src in masks:
    put("fuzz_frontend", f"{name}.mask", src)
for name, src in bad:
    put("fuzz_frontend", f"bad_{name}.mask", src)

# ---- BlockMask: raw-text mode (first byte 0), then shape bytes
rng = random.Random(7)
for name, src in masks:
    if len(src) < 3000:
        shape = bytes(rng.randrange(256) for _ in range(48))
        put("fuzz_blockmask", f"{name}", b"\x00" + src + b"\x00" + shape)
# generator mode: random choice bytes
for i in range(24):
    n = rng.randrange(40, 400)
    put("fuzz_blockmask", f"gen{i:02d}", bytes([1 + 8 * (i % 4)]) + bytes(rng.randrange(256) for _ in range(n)))


# ---- .npy
def npy(descr, shape, payload, version=(1, 0)):
    hdr = "{'descr': '%s', 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
    hb = hdr.encode()
    lenbytes = 2 if version[0] == 1 else 4
    pad = (-(10 + (lenbytes - 2) + len(hb) + 1)) % 64
    hb = hb + b" " * pad + b"\n"
    fmt = "<H" if version[0] == 1 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(hb)) + hb + payload


put("fuzz_npy", "i32_vec", npy("<i4", (5,), struct.pack("<5i", 0, 0, 1, 1, 2)))
put("fuzz_npy", "i64_mat", npy("<i8", (2, 3), struct.pack("<6q", 1, 2, 3, -4, 2**40, 6)))
put("fuzz_npy", "f32_4d", npy("<f4", (1, 2, 2, 2), struct.pack("<8f", *range(8))))
put("fuzz_npy", "f16", npy("<f2", (3,), struct.pack("<3H", 0x3C00, 0x7C00, 0x7E00)))
put("fuzz_npy", "f64", npy("<f8", (2,), struct.pack("<2d", 1.5, -0.0)))
put("fuzz_npy", "bool", npy("|b1", (4,), bytes([1, 0, 1, 1])))
put("fuzz_npy", "u8_v2", npy("|u1", (2, 2), bytes([0, 1, 2, 3]), (2, 0)))
put("fuzz_npy", "bool3", npy("|b1", (1, 3, 4), bytes([1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0])))
put("fuzz_npy", "u8_4d", npy("|u1", (2, 1, 2, 3), bytes([1, 1, 1, 0, 1, 1, 0, 0, 1, 2, 0, 1])))
put("fuzz_npy", "scalar", npy("<i4", (), struct.pack("<i", 42)))
put("fuzz_npy", "empty", npy("<f4", (0, 3), b""))
put("fuzz_npy", "fortran", npy("<i4", (2,), struct.pack("<2i", 1, 2)).replace(b"False", b"True "))
put("fuzz_npy", "bigendian", npy(">i4", (2,), struct.pack(">2i", 1, 2)))
put("fuzz_npy", "truncated", npy("<i4", (100,), struct.pack("<2i", 1, 2)))

# ---- .npy as a stream: byte 0 how it is delivered (piece-size seed, bit 6
# unbuffered, bit 7 a read error), byte 1 where the error strikes (x64)
f32_4d = npy("<f4", (1, 2, 2, 2), struct.pack("<8f", *range(8)))
big = npy("<i4", (600,), struct.pack("<600i", *range(600)))
put("fuzz_npy_stream", "exact_whole", b"\x00\x00" + f32_4d)
put("fuzz_npy_stream", "exact_pieces", b"\x05\x00" + big)
put("fuzz_npy_stream", "exact_unbuffered", b"\x47\x00" + f32_4d)
put("fuzz_npy_stream", "short", b"\x09\x00" + big[:-1])
put("fuzz_npy_stream", "long", b"\x0b\x00" + big + b"\x00")
put("fuzz_npy_stream", "read_error", b"\x83\x05" + big)
put("fuzz_npy_stream", "read_error_header", b"\xc1\x01" + npy("|u1", (3,), b"\x01\x02\x03", (2, 0)))
put("fuzz_npy_stream", "not_npy", b"\x02\x00" + b"NOTNUMPY" + bytes(100))
put("fuzz_npy_stream", "huge_promise", b"\x03\x00" + npy("|u1", (1 << 37,), bytes(50)))


# ---- safetensors: first byte even = a file image; odd = round trip
def safetensors(meta, tensors):
    header = {"__metadata__": meta}
    data = b""
    for name, (shape, values) in tensors.items():
        b = struct.pack("<%di" % len(values), *values)
        header[name] = {"dtype": "I32", "shape": shape, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


meta = {"Q_BLOCK_SIZE": "4", "KV_BLOCK_SIZE": "4", "Q_LEN": "8", "KV_LEN": "8", "BATCH": "1",
        "HEADS": "1", "mask_name": "m", "mask_source": "mask m = kv <= q;\n",
        "mask_source_name": "causal.mask"}
# causal at 8x8 with 4x4 blocks: row 0 partial [0]; row 1 full [0], partial [1]
causal = safetensors(meta, {
    "kv_num_blocks": ([1, 1, 2], [1, 1]),
    "kv_indices": ([1, 1, 2, 2], [0, 1, 1, 0]),
    "full_kv_num_blocks": ([1, 1, 2], [0, 1]),
    "full_kv_indices": ([1, 1, 2, 2], [0, 1, 0, 1]),
})
put("fuzz_safetensors", "causal", b"\x00" + causal)
meta2 = dict(meta, mask_source="param w = 3;\ninput doc[KV_LEN];\nmask m = doc[kv] == 0 && kv <= q + w;\n",
             **{"param.w": "3"})
put("fuzz_safetensors", "withinput", b"\x00" + safetensors(meta2, {
    "kv_num_blocks": ([1, 1, 2], [1, 1]),
    "kv_indices": ([1, 1, 2, 2], [0, 1, 1, 0]),
    "full_kv_num_blocks": ([1, 1, 2], [0, 0]),
    "full_kv_indices": ([1, 1, 2, 2], [0, 1, 0, 1]),
    "input.doc": ([8], [0, 0, 0, 0, 1, 1, 1, 1]),
}))
put("fuzz_safetensors", "notjson", b"\x00" + struct.pack("<Q", 5) + b"{abc}")
for i in range(8):
    put("fuzz_safetensors", f"rt{i}", bytes([1 + 2 * i]) + bytes(rng.randrange(256) for _ in range(60)))

# ---- JIT cache entries: first byte even = the file; odd = write, then damage
key = hashlib.sha256(b"fuzz").digest()
payload = b"//ptx\n.version 8.0\n"
entry = (b"FMJITC\x00\x01" + struct.pack("<II", 1, 96) + key + struct.pack("<Q", len(payload)) +
         hashlib.sha256(payload).digest() + bytes(8) + payload)
put("fuzz_jit_cache", "valid", b"\x00" + entry)
put("fuzz_jit_cache", "short", b"\x00" + entry[:50])
for i in range(6):
    put("fuzz_jit_cache", f"damage{i}", bytes([1 + 2 * i]) + bytes(rng.randrange(256) for _ in range(40)))

# ---- dense masks: flags byte (rank, additive, shape, attention, safetensors,
# planted bad value, via .npy), a seed byte, then dims, patterns, blocks.
# Its own generator, so the seeds above stay as they were.
drng = random.Random(11)
for i in range(16):
    flags = (i % 3) | (4 if i & 1 else 0) | (8 if i & 2 else 0) | (16 if i & 4 else 0) | \
        (32 if i & 8 else 0) | (128 if i % 5 == 0 else 0)
    put("fuzz_dense", f"dense{i:02d}", bytes([flags]) + bytes(drng.randrange(256) for _ in range(48)))
put("fuzz_dense", "causal_1x11", bytes([0, 1, 11, 0, 2, 0, 0, 0, 0, 11, 43]))

total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
print(f"corpus: {sum(1 for f in out.rglob('*') if f.is_file())} files, {total} bytes", file=sys.stderr)
