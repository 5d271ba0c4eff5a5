#!/usr/bin/env python3
"""flexmask's CPU path against PyTorch's FlexAttention on the CPU, same machine.

For causal, sliding window (256) and document masks (100 random-length
documents) at S in {2048, 4096}, 4 heads, head dim 64, float32, batch 1:

- PyTorch: create_block_mask (warm: best of 3 after a first call),
  torch.compile(flex_attention)'s first call (the compile), and a compiled
  call (best of 5);
- flexmask, called through ctypes (libflexmask.so) in a child process of
  its own (two OpenMP runtimes in one process spin against each other): the
  mask compiled from its file, then fm_blockmask_build (best of 5) and
  fm_attention_cpu on the same Q, K, V arrays: its first call over a new
  BlockMask (which evaluates the partial tiles once) and later calls (best
  of 3; what every layer after the first sees).

Both use every core (torch's threads; OpenMP's default). The two do the same
work, so the time ratio is the speed-up. Needs torch and numpy; not run in
CI.

    python3 bench/torch_cpu_compare.py [--lib build/libflexmask.so] [--s 2048 4096]
"""
import argparse
import ctypes as C
import json
import subprocess
import tempfile
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADS, D, WINDOW = 4, 64, 256


def doc_ids(S):
    rng = np.random.default_rng(3)
    ids = np.zeros(S, dtype=np.int32)
    np.add.at(ids, np.sort(rng.integers(0, S, 99)), 1)
    return np.cumsum(ids).astype(np.int32)


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("shape", C.c_int64 * 4),
                ("strides", C.c_int64 * 4)]


class AttentionArgs(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("mask", C.c_void_p), ("q", Tensor), ("k", Tensor), ("v", Tensor),
                ("out", Tensor), ("lse", C.c_void_p), ("scale", C.c_float),
                ("num_threads", C.c_int)]


class Shape(C.Structure):
    _fields_ = [("batch", C.c_int64), ("heads", C.c_int64), ("q_len", C.c_int64),
                ("kv_len", C.c_int64)]


def tensor(a):
    t = Tensor()
    t.data = a.ctypes.data
    t.dtype = 0  # FM_FLOAT32
    for i in range(4):
        t.shape[i] = a.shape[i]
        t.strides[i] = a.strides[i] // a.itemsize
    return t


class Flexmask:
    """Just the calls this benchmark needs; statuses are checked (0 is FM_OK)."""

    def __init__(self, path):
        self.lib = L = C.CDLL(path)
        L.fm_compile_file.argtypes = [C.c_char_p, C.c_void_p, C.POINTER(C.c_void_p)]
        L.fm_mask_select.argtypes = [C.c_void_p, C.c_char_p, C.c_void_p, C.POINTER(C.c_void_p)]
        L.fm_bindings_create.argtypes = [C.c_void_p, C.POINTER(C.c_void_p)]
        L.fm_bindings_set_param.argtypes = [C.c_void_p, C.c_char_p, C.c_int64, C.c_void_p]
        L.fm_bindings_set_input.argtypes = [C.c_void_p, C.c_char_p, C.c_void_p, C.c_size_t,
                                            C.POINTER(C.c_int64), C.c_int, C.c_void_p]
        L.fm_blockmask_build.argtypes = [C.c_void_p, C.c_void_p, Shape, C.c_void_p, C.c_void_p,
                                         C.POINTER(C.c_void_p)]
        L.fm_blockmask_free.argtypes = [C.c_void_p]
        L.fm_attention_cpu.argtypes = [C.POINTER(AttentionArgs), C.c_void_p]
        L.fm_diagnostics_create.restype = C.c_void_p
        L.fm_diagnostics_free.argtypes = [C.c_void_p]
        L.fm_diagnostics_format.argtypes = [C.c_void_p, C.c_bool]
        L.fm_diagnostics_format.restype = C.c_void_p

    def check(self, st, what):
        if st != 0:
            raise RuntimeError(f"{what}: status {st}")

    def mask(self, file, params, inputs):
        L = self.lib
        prog, mask, bind = C.c_void_p(), C.c_void_p(), C.c_void_p()
        self.check(L.fm_compile_file(file.encode(), None, C.byref(prog)), "compile")
        self.check(L.fm_mask_select(prog, None, None, C.byref(mask)), "select")
        self.check(L.fm_bindings_create(mask, C.byref(bind)), "bindings")
        for n, v in params.items():
            self.check(L.fm_bindings_set_param(bind, n.encode(), v, None), n)
        self.keep = []
        for n, a in inputs.items():
            a = np.ascontiguousarray(a, dtype=np.int32)
            self.keep.append(a)
            dims = (C.c_int64 * 1)(a.shape[0])
            self.check(L.fm_bindings_set_input(bind, n.encode(), a.ctypes.data, 1, dims, 0, None), n)
        return mask, bind

    def build(self, mask, bind, S):
        bm = C.c_void_p()
        self.check(self.lib.fm_blockmask_build(mask, bind, Shape(1, HEADS, S, S), None, None,
                                               C.byref(bm)), "build")
        return bm

    def attention(self, bm, q, k, v, out):
        a = AttentionArgs(struct_size=C.sizeof(AttentionArgs), mask=bm, q=tensor(q), k=tensor(k), v=tensor(v), out=tensor(out),
                          lse=None, scale=0.0, num_threads=0)
        L = self.lib
        d = L.fm_diagnostics_create()
        st = L.fm_attention_cpu(C.byref(a), d)
        if st != 0:
            msg = L.fm_diagnostics_format(d, False)
            raise RuntimeError(f"attention: status {st}: {C.string_at(msg).decode()}")
        L.fm_diagnostics_free(d)


def best(f, n=5):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return min(t)


MASKS = {  # name: (file, params); the same masks as the mask_mods below
    "causal": ("causal.mask", {}),
    "sliding_window": ("sliding_window.mask", {"window": WINDOW}),
    "document": ("document.mask", {}),
}


def flexmask_child(lib, tmp, name, S):
    """The flexmask side, in a process of its own (no torch: two OpenMP
    runtimes in one process would spin against each other)."""
    fm = Flexmask(lib)
    q, k, v = (np.load(os.path.join(tmp, n + ".npy")) for n in "qkv")
    out = np.zeros_like(q)
    file, params = MASKS[name]
    inputs = {"doc": np.load(os.path.join(tmp, "doc.npy"))} if name == "document" else {}
    mask, bind = fm.mask(os.path.join(ROOT, "examples", "masks", file), params, inputs)
    t_build = best(lambda: fm.lib.fm_blockmask_free(fm.build(mask, bind, S)))
    bm = fm.build(mask, bind, S)
    t0 = time.perf_counter()
    fm.attention(bm, q, k, v, out)  # evaluates the partial tiles, once
    t_first = time.perf_counter() - t0
    t_call = best(lambda: fm.attention(bm, q, k, v, out))
    np.save(os.path.join(tmp, "out.npy"), out)
    print(json.dumps({"build": t_build, "first": t_first, "call": t_call}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libflexmask.so"))
    ap.add_argument("--s", type=int, nargs="+", default=[2048, 4096])
    ap.add_argument("--child", nargs=3, metavar=("DIR", "MASK", "S"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        flexmask_child(args.lib, args.child[0], args.child[1], int(args.child[2]))
        return 0
    try:
        import torch
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as e:
        print(f"torch_cpu_compare: skipped: {e} (needs torch)")
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; H={HEADS}, D={D}, fp32")
    print("| mask | S | create_block_mask ms | fm_blockmask_build ms | flex compile s | "
          "flex_attention ms | fm_attention_cpu first call ms | later calls ms | "
          "flex / flexmask (later) | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for S in args.s:
        doc = torch.from_numpy(doc_ids(S))
        mods = {
            "causal": lambda b, h, q, kv: kv <= q,
            "sliding_window": lambda b, h, q, kv: (kv <= q) & (q - kv < WINDOW),
            "document": lambda b, h, q, kv: (kv <= q) & (doc[q] == doc[kv]),
        }
        g = torch.Generator().manual_seed(1)
        q, k, v = (torch.randn(1, HEADS, S, D, generator=g) for _ in range(3))
        with tempfile.TemporaryDirectory() as tmp:
            for n, t in (("q", q), ("k", k), ("v", v), ("doc", doc)):
                np.save(os.path.join(tmp, n + ".npy"), t.numpy())
            for name, mod in mods.items():
                create_block_mask(mod, 1, 1, S, S, device="cpu")  # first call: tracing
                t_bm = best(lambda: create_block_mask(mod, 1, 1, S, S, device="cpu"))
                bm = create_block_mask(mod, 1, 1, S, S, device="cpu")
                torch._dynamo.reset()
                flex = torch.compile(flex_attention)
                t0 = time.perf_counter()
                ref = flex(q, k, v, block_mask=bm)
                t_compile = time.perf_counter() - t0
                t_flex = best(lambda: flex(q, k, v, block_mask=bm))
                r = subprocess.run([sys.executable, os.path.abspath(__file__), "--lib", args.lib,
                                    "--child", tmp, name, str(S)],
                                   check=True, capture_output=True, text=True)
                fmt = json.loads(r.stdout.strip().splitlines()[-1])
                out = torch.from_numpy(np.load(os.path.join(tmp, "out.npy")))
                diff = float((out - ref).abs().max())
                print(f"| {name} | {S} | {t_bm * 1e3:.1f} | {fmt['build'] * 1e3:.2f} | "
                      f"{t_compile:.1f} | {t_flex * 1e3:.1f} | {fmt['first'] * 1e3:.1f} | "
                      f"{fmt['call'] * 1e3:.1f} | {t_flex / fmt['call']:.2f}x | {diff:.1e} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
