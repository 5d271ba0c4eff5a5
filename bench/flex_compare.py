#!/usr/bin/env python3
"""Compare flexmask's CUDA forward kernel with PyTorch on the same GPU.

Runs torch.nn.attention.flex_attention (under torch.compile, with the same
masks built by create_block_mask) and scaled_dot_product_attention for
causal, sliding window (1024), document and prefix LM (S/4) and full at
S in {4096, 16384}, D = 128, bf16, batch 1, 16 heads, then runs bench/gpu
with the same settings and prints one table with the ratios.

    python3 bench/flex_compare.py [--gpu-bench build/bench/gpu] [--s 4096 16384]

TFLOP/s counts 4*D flops per true (query, key) position for every
implementation, so a ratio of TFLOP/s is the inverse ratio of times.
SDPA gets is_causal for causal, nothing for full, and a dense boolean mask
otherwise. The whole comparison takes a few minutes on an H100.
"""
import argparse
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

HEADS, BATCH, WINDOW = 16, 1, 1024


def document_ids(S, device):
    # The same lengths as bench/gpu.c: S/4, S/8, S/16, S/16, S/2.
    lens = [S // 4, S // 8, S // 16, S // 16, S // 2]
    ids = torch.cat([torch.full((n,), d, dtype=torch.int32) for d, n in enumerate(lens)])
    if ids.numel() < S:
        ids = torch.cat([ids, torch.full((S - ids.numel(),), 4, dtype=torch.int32)])
    return ids[:S].to(device)


def mask_mod_for(name, S, device):
    if name == "causal":
        return lambda b, h, q, kv: kv <= q
    if name == "sliding_window":
        return lambda b, h, q, kv: (kv <= q) & (q - kv < WINDOW)
    if name == "document":
        doc = document_ids(S, device)
        return lambda b, h, q, kv: (kv <= q) & (doc[q] == doc[kv])
    if name == "prefix_lm":
        prefix = S // 4
        return lambda b, h, q, kv: (kv < prefix) | (kv <= q)
    if name == "full":
        return lambda b, h, q, kv: q >= 0
    raise ValueError(name)


def true_positions(mask_mod, S, device):
    q = torch.arange(S, device=device).view(S, 1)
    total = 0
    step = 2048
    for k0 in range(0, S, step):
        kv = torch.arange(k0, min(S, k0 + step), device=device).view(1, -1)
        total += int(mask_mod(0, 0, q, kv).sum().item())
    return total * HEADS * BATCH


def timed(fn, iters=10):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu-bench", default="build/bench/gpu")
    ap.add_argument("--s", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("flex_compare: skipped: PyTorch sees no CUDA GPU")
        return 0
    dev = "cuda"
    D = 128
    names = ["causal", "sliding_window", "document", "prefix_lm", "full"]
    compiled_flex = torch.compile(flex_attention)
    t_start = time.time()

    # flexmask first, in one process.
    cmd = [args.gpu_bench, "--csv", "--d", str(D), "--iters", str(args.iters)]
    for s in args.s:
        cmd += ["--s", str(s)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    ours = {}
    for line in out.stdout.splitlines():
        parts = line.split(",")
        if len(parts) == 6 and parts[0] in names:
            ours[(parts[0], int(parts[1]))] = (float(parts[3]), float(parts[4]))
    if not ours:
        print("flex_compare: bench/gpu gave no results:\n" + out.stdout + out.stderr)

    print(f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; bf16, B={BATCH}, H={HEADS}, D={D}")
    hdr = f"{'mask':<16}{'S':>7}{'flexmask ms':>13}{'flex ms':>10}{'sdpa ms':>10}" \
          f"{'flexmask TF':>13}{'flex TF':>9}{'sdpa TF':>9}{'vs flex':>9}{'vs sdpa':>9}"
    print(hdr)
    for S in args.s:
        q = torch.randn(BATCH, HEADS, S, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn_like(q)
        v = torch.randn_like(q)
        for name in names:
            mm = mask_mod_for(name, S, dev)
            bm = create_block_mask(mm, None, None, S, S, device=dev, BLOCK_SIZE=128)
            tp = true_positions(mm, S, dev)
            flops = 4.0 * D * tp
            t_flex = timed(lambda: compiled_flex(q, k, v, block_mask=bm), args.iters)
            if name == "causal":
                sdpa = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
            elif name == "full":
                sdpa = lambda: F.scaled_dot_product_attention(q, k, v)
            else:
                qi = torch.arange(S, device=dev).view(S, 1)
                ki = torch.arange(S, device=dev).view(1, S)
                dense = mm(0, 0, qi, ki)
                sdpa = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=dense)
            t_sdpa = timed(sdpa, args.iters)
            o_ms, o_tf = ours.get((name, S), (float("nan"), float("nan")))
            tf = lambda ms: flops / (ms * 1e-3) / 1e12
            print(f"{name:<16}{S:>7}{o_ms:>13.3f}{t_flex:>10.3f}{t_sdpa:>10.3f}"
                  f"{o_tf:>13.1f}{tf(t_flex):>9.1f}{tf(t_sdpa):>9.1f}"
                  f"{t_flex / o_ms:>8.2f}x{t_sdpa / o_ms:>8.2f}x", flush=True)
    print(f"(ratios are times of PyTorch / flexmask: above 1.0x flexmask is faster; "
          f"whole run {time.time() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
