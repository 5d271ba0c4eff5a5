#!/usr/bin/env python3
"""flexmask against PyTorch's FlexAttention on the CPU: an outside oracle.

For each standard mask, with the same predicate written as a PyTorch
mask_mod, this checks that
  1. the BlockMask `fmc blockmask --safetensors` writes equals the one
     torch's create_block_mask builds (block counts and block lists of every
     row, full and partial), including lengths that are not multiples of
     the block size;
  2. the file loads through BlockMask.from_kv_blocks (the snippet of
     docs/interop.md, on the CPU), and flex_attention over that BlockMask
     gives what `fmc attend` gives for the same Q, K, V (and what
     scaled_dot_product_attention gives with the dense mask);
  3. `fmc blockmask --dense-out` equals the mask_mod evaluated densely.

Needs torch, numpy and safetensors (not in CI: run by hand, see
DEVELOPERS.md). Exits 0 when every check passes, 1 when one fails, and 77
(skipped) with the reason when torch is missing.

    python3 tests/interop/torch_check.py [--fmc build/tools/fmc]
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"torch_check: skipped: {e} (needs torch, numpy and safetensors)")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASKS = os.path.join(ROOT, "examples", "masks")


def doc_ids(n, seed):
    g = torch.Generator().manual_seed(seed)
    starts = (torch.rand(n, generator=g) < 1 / 90).to(torch.int32)
    return torch.cumsum(starts, 0).to(torch.int32)


def tree_tables(n, seed):
    """A random tree in preorder: enter/leave times of each node."""
    g = torch.Generator().manual_seed(seed)
    parent = [-1] + [int(torch.randint(0, i, (1,), generator=g)) if i else 0 for i in range(1, n)]
    # Preorder numbering needs children after parents with contiguous subtrees:
    # build the tree, then number it by a depth-first walk.
    children = [[] for _ in range(n)]
    for i in range(1, n):
        children[parent[i]].append(i)
    enter, leave = [0] * n, [0] * n
    order, t, stack = [], 0, [(0, False)]
    while stack:
        v, done = stack.pop()
        if done:
            leave[v] = t - 1
            continue
        enter[v] = t
        t += 1
        order.append(v)
        stack.append((v, True))
        for c in reversed(children[v]):
            stack.append((c, False))
    # Relabel nodes so node i is the i-th in preorder (positions follow the walk).
    pos = {v: i for i, v in enumerate(order)}
    en, le = [0] * n, [0] * n
    for v in range(n):
        en[pos[v]], le[pos[v]] = enter[v], leave[v]
    return torch.tensor(en, dtype=torch.int32), torch.tensor(le, dtype=torch.int32)


def cases(S, KV):
    """(name, mask file, fmc flags, mask_mod, inputs {name: tensor}, B, H)."""
    doc = doc_ids(KV, 1)
    en, le = tree_tables(S, 2)
    src = torch.tensor([KV - 37, KV // 3], dtype=torch.int32)
    return [
        ("causal", "causal.mask", [], lambda b, h, q, kv: kv <= q, {}, 1, 2),
        ("causal_bottom_right", "causal_bottom_right.mask", [],
         lambda b, h, q, kv: kv <= q + KV - S, {}, 1, 1),
        ("sliding_window", "sliding_window.mask", ["-D", "window=200"],
         lambda b, h, q, kv: (kv <= q) & (q - kv < 200), {}, 1, 1),
        ("sliding_with_sinks", "sliding_with_sinks.mask", [],
         lambda b, h, q, kv: (kv <= q) & ((q - kv < 256) | (kv < 4)), {}, 1, 1),
        ("prefix_lm", "prefix_lm.mask", [], lambda b, h, q, kv: (kv < 128) | (kv <= q), {}, 1, 1),
        ("chunked_causal", "chunked_causal.mask", ["-D", "chunk=100"],
         lambda b, h, q, kv: (kv <= q) & (q // 100 == kv // 100), {}, 1, 1),
        ("dilated_sliding", "dilated_sliding.mask", ["-D", "window=300", "-D", "dilation=3"],
         lambda b, h, q, kv: (kv <= q) & (q - kv < 300) & ((q - kv) % 3 == 0), {}, 1, 1),
        ("document", "document.mask", [],
         lambda b, h, q, kv: (kv <= q) & (doc[q] == doc[kv]), {"doc": doc}, 1, 1),
        ("per_head", "per_head.mask", ["-D", "window=100"],
         lambda b, h, q, kv: torch.where(h % 2 == 0, (kv <= q) & (q - kv < 100), kv <= q),
         {}, 1, 3),
        ("cross_attention", "cross_attention.mask", [],
         lambda b, h, q, kv: kv < src[b], {"src_len": src}, 2, 1),
        ("tree", "tree.mask", [],
         lambda b, h, q, kv: (en[kv] <= en[q]) & (le[q] <= le[kv]), {"enter": en, "leave": le},
         1, 1),
        ("full", "full.mask", [], lambda b, h, q, kv: q >= 0, {}, 1, 1),
    ]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\nexit {r.returncode}\n{r.stderr}")
    return r.stdout


def check_blockmask(ours, theirs, B, H):
    """Row by row: counts equal and the first count entries equal as lists."""
    for key_n, key_i in (("kv_num_blocks", "kv_indices"), ("full_kv_num_blocks", "full_kv_indices")):
        a_n, a_i = ours[key_n], ours[key_i]
        b_n, b_i = getattr(theirs, key_n), getattr(theirs, key_i)
        a_n = a_n.expand(B, H, a_n.shape[2])
        b_n = b_n.expand(B, H, b_n.shape[2])
        if a_n.shape != b_n.shape:
            return f"{key_n}: shape {tuple(a_n.shape)} vs {tuple(b_n.shape)}"
        if not torch.equal(a_n.to(torch.int32), b_n.to(torch.int32)):
            bad = (a_n != b_n).nonzero()[0].tolist()
            return f"{key_n} differs first at [b, h, q_block] = {bad}"
        a_i = a_i.expand(B, H, *a_i.shape[2:])
        b_i = b_i.expand(B, H, *b_i.shape[2:])
        for b in range(B):
            for h in range(H):
                for r in range(a_n.shape[2]):
                    n = int(a_n[b, h, r])
                    x = a_i[b, h, r, :n].tolist()
                    y = sorted(b_i[b, h, r, :n].tolist())
                    if x != y:
                        return f"{key_i}[{b}, {h}, {r}]: ours {x}, torch {y}"
    return None


def one_case(fmc, tmp, S, KV, name, file, flags, mask_mod, inputs, B, H, D=64):
    base = [fmc, "blockmask", os.path.join(MASKS, file), "--q-len", str(S), "--kv-len", str(KV),
            "--batch", str(B), "--heads", str(H)] + flags
    for iname, t in inputs.items():
        p = os.path.join(tmp, f"{iname}.npy")
        np.save(p, t.numpy())
        base += ["--input", f"{iname}=@{p}"]
    st = os.path.join(tmp, "mask.safetensors")
    dense_path = os.path.join(tmp, "dense.npy")
    run(base + ["--safetensors", st, "--dense-out", dense_path, "--format", "json"])
    problems = []

    # 1. The lists against create_block_mask.
    theirs = create_block_mask(mask_mod, B, H, S, KV, device="cpu", BLOCK_SIZE=128)
    ours = load_file(st, device="cpu")
    why = check_blockmask(ours, theirs, B, H)
    if why:
        problems.append("blockmask: " + why)

    # 3. The dense export against the mask_mod evaluated everywhere.
    bb, hh, qq, kk = torch.meshgrid(torch.arange(B), torch.arange(H), torch.arange(S),
                                    torch.arange(KV), indexing="ij")
    want = mask_mod(bb, hh, qq, kk)
    got = torch.from_numpy(np.load(dense_path))
    if not torch.equal(got, want):
        problems.append(f"dense export: {int((got != want).sum())} positions differ")

    # 2. The docs/interop.md way: from_kv_blocks, then flex_attention.
    with safe_open(st, framework="pt") as f:
        meta = f.metadata()
    dense = got

    def dense_mod(b, h, q_idx, kv_idx):
        return dense[b, h, q_idx, kv_idx]

    bm = BlockMask.from_kv_blocks(
        ours["kv_num_blocks"], ours["kv_indices"], ours["full_kv_num_blocks"],
        ours["full_kv_indices"],
        BLOCK_SIZE=(int(meta["Q_BLOCK_SIZE"]), int(meta["KV_BLOCK_SIZE"])),
        mask_mod=dense_mod, seq_lengths=(int(meta["Q_LEN"]), int(meta["KV_LEN"])))
    g = torch.Generator().manual_seed(7)
    q = torch.randn(B, H, S, D, generator=g)
    k = torch.randn(B, H, KV, D, generator=g)
    v = torch.randn(B, H, KV, D, generator=g)
    paths = {}
    for n, t in (("q", q), ("k", k), ("v", v)):
        paths[n] = os.path.join(tmp, f"{n}.npy")
        np.save(paths[n], t.numpy())
    out_path = os.path.join(tmp, "out.npy")
    att = [fmc, "attend", os.path.join(MASKS, file), "--q", paths["q"], "--k", paths["k"], "--v",
           paths["v"], "--out", out_path] + base[base.index("--q-len"):]
    run(att)
    o_ours = torch.from_numpy(np.load(out_path))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        o_flex = flex_attention(q, k, v, block_mask=bm)
    o_sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=want)
    o_sdpa = torch.where(want.any(-1, keepdim=True), o_sdpa, torch.zeros_like(o_sdpa))
    err_flex = float((o_ours - o_flex).abs().max())
    err_sdpa = float((o_ours - o_sdpa).abs().max())
    if not err_flex < 1e-4:
        problems.append(f"attention vs flex_attention: max abs error {err_flex:.3g}")
    if not err_sdpa < 1e-4:
        problems.append(f"attention vs sdpa: max abs error {err_sdpa:.3g}")
    return problems, err_flex, err_sdpa, int(theirs.kv_num_blocks.sum()), int(
        theirs.full_kv_num_blocks.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fmc", default=os.path.join(ROOT, "build", "tools", "fmc"))
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    failures = 0
    print(f"torch {torch.__version__}, CPU")
    print("| mask | Q_LEN x KV_LEN | B x H | partial | full | lists equal | dense equal "
          "| max err vs flex | vs sdpa |")
    print("|---|---|---|---|---|---|---|---|---|")
    for S, KV in ((1024, 1024), (1000, 1000), (700, 1100)):
        for name, file, flags, mod, inputs, B, H in cases(S, KV):
            if name == "tree" and S != KV:
                continue  # the tree mask indexes keys with the query tables
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    problems, ef, es, npart, nfull = one_case(args.fmc, tmp, S, KV, name, file,
                                                              flags, mod, inputs, B, H)
                except RuntimeError as e:
                    problems, ef, es, npart, nfull = [str(e)], float("nan"), float("nan"), -1, -1
            lists_ok = not any(p.startswith("blockmask") for p in problems)
            dense_ok = not any(p.startswith("dense") for p in problems)
            print(f"| {name} | {S} x {KV} | {B} x {H} | {npart} | {nfull} | "
                  f"{'yes' if lists_ok else 'NO'} | {'yes' if dense_ok else 'NO'} | {ef:.2e} | {es:.2e} |")
            for p in problems:
                print(f"  FAIL {name} {S}x{KV}: {p}")
            failures += bool(problems)
    print(f"torch_check: {failures} failing case(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
