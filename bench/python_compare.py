"""flexmask from Python against PyTorch's FlexAttention on the CPU (not a test).

Prints, in one run:
  1. BlockMask build: fm.block_mask (including Python overhead) vs torch's
     create_block_mask eager (where the dense Q x KV mask fits) and compiled
     (_compile=True; its one-time compile is reported apart);
  2. attention on the CPU: fm.attention vs flex_attention (eager and
     compiled) vs SDPA with a dense bool mask;
  3. Python overhead of one fm.attention call: the call minus the same
     fm_attention_cpu call made with prebuilt ctypes arguments.

    python bench/python_compare.py [--sizes 4096,16384,65536] [--eager-max 16384]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

import flexmask as fm

WINDOW = 1024
SRC = f"param window = {WINDOW};\nmask causal = kv <= q;\nmask sliding = kv <= q && q - kv < window;"


def timeit(fn, repeat=5, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def ms(x):
    return "-" if x is None else f"{x * 1e3:10.2f}"


def build_table(sizes, eager_max, compile_max):
    prog = fm.compile(SRC)
    mods = {"causal": lambda b, h, q, kv: kv <= q,
            "sliding": lambda b, h, q, kv: (kv <= q) & (q - kv < WINDOW)}
    print("\n## BlockMask build (ms, median; block 128)")
    print(f"{'mask':8} {'N':>6} {'flexmask':>10} {'cbm eager':>10} {'cbm compiled':>12} "
          f"{'speedup vs compiled':>20}")
    compiled_once = {}
    for name, mod in mods.items():
        for n in sizes:
            t_fm = timeit(lambda: fm.block_mask(prog, name, q_len=n), repeat=5)
            t_e = None
            if n <= eager_max:
                t_e = timeit(lambda: create_block_mask(mod, 1, 1, n, n, device="cpu"), repeat=2)
            t_c = None
            if n <= compile_max:
                if name not in compiled_once:
                    t0 = time.perf_counter()
                    create_block_mask(mod, 1, 1, n, n, device="cpu", _compile=True)
                    compiled_once[name] = time.perf_counter() - t0
                t_c = timeit(lambda: create_block_mask(mod, 1, 1, n, n, device="cpu",
                                                       _compile=True), repeat=2)
            sp = f"{t_c / t_fm:18.0f}x" if t_c else "-"
            print(f"{name:8} {n:6d} {ms(t_fm)} {ms(t_e)} {ms(t_c):>12} {sp:>20}")
    for name, t in compiled_once.items():
        print(f"(first compiled create_block_mask call for {name}, compile included: {t:.1f} s)")


def attention_table(n, heads=8, d=64):
    prog = fm.compile(SRC)
    print(f"\n## Attention on the CPU (ms, median; B=1, H={heads}, D={d}, N={n}, fp32, "
          f"{fm.get_num_threads()} threads)")
    q, k, v = (torch.randn(1, heads, n, d) for _ in range(3))
    for name, mod in (("causal", lambda b, h, q_, kv: kv <= q_),
                      ("sliding", lambda b, h, q_, kv: (kv <= q_) & (q_ - kv < WINDOW))):
        bm = fm.block_mask(prog, name, q_len=n)
        tbm = bm.to_torch()
        dense = torch.from_numpy(bm.to_dense())
        t_fm = timeit(lambda: fm.attention(q, k, v, bm), repeat=3)
        t_fe = timeit(lambda: flex_attention(q, k, v, block_mask=tbm), repeat=2)
        cflex = torch.compile(flex_attention)
        cflex(q, k, v, block_mask=tbm)
        t_fc = timeit(lambda: cflex(q, k, v, block_mask=tbm), repeat=3)
        t_sd = timeit(lambda: torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=dense), repeat=3)
        print(f"{name:8} fm.attention {ms(t_fm)}  flex eager {ms(t_fe)}  "
              f"flex compiled {ms(t_fc)}  sdpa dense {ms(t_sd)}")


def overhead():
    prog = fm.compile("mask causal = kv <= q;")
    bm = fm.block_mask(prog, q_len=16, block_size=16)
    q = torch.randn(1, 1, 16, 16)
    out = torch.empty_like(q)

    from flexmask import _attention as A
    d = A._torch_desc("q", q, torch)
    do = (out.data_ptr(), d[1], tuple(out.shape), out.stride(), d[4])
    arr, addr = A._buffer()
    fm.set_num_threads(1)
    try:
        n = 20000
        t_py = timeit(lambda: [fm.attention(q, q, q, bm) for _ in range(n)], repeat=3) / n
        A._call(bm, d, d, d, do, 0, 0.0)  # packs the arguments once
        t_c = timeit(lambda: [A._raw(addr, None) for _ in range(n)], repeat=3) / n
    finally:
        fm.set_num_threads(0)
    print("\n## Python overhead per fm.attention call (1 x 1 x 16 x 16, one thread)")
    print(f"fm.attention {t_py * 1e6:.1f} us, bare fm_attention_cpu through ctypes "
          f"{t_c * 1e6:.1f} us: overhead {(t_py - t_c) * 1e6:.1f} us")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4096,16384,32768,65536")
    ap.add_argument("--eager-max", type=int, default=16384)
    ap.add_argument("--compile-max", type=int, default=65536)
    ap.add_argument("--attention-n", type=int, default=4096)
    a = ap.parse_args()
    print(f"flexmask {fm.__version__}, torch {torch.__version__}")
    overhead()
    build_table([int(s) for s in a.sizes.split(",")], a.eager_max, a.compile_max)
    attention_table(a.attention_n)


if __name__ == "__main__":
    main()
