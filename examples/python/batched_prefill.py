"""Seed: batched prefill with per-request query and key lengths (bottom-right
causal, no padding). Three requests' new queries are packed into one ragged
sequence and their cached + new keys into another; one fm.attention call
over batched_prefill.mask equals SDPA run request by request.

    python examples/python/batched_prefill.py"""
from __future__ import annotations

import os

import numpy as np
import torch

import flexmask as fm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QO = [5, 1, 40]    # new queries per request
KV = [37, 12, 40]  # keys per request (cached + new)


def arrays():
    qo_indptr = np.r_[0, np.cumsum(QO)]
    kv_indptr = np.r_[0, np.cumsum(KV)]
    q_req = np.repeat(np.arange(len(QO)), QO)
    kv_req = np.repeat(np.arange(len(KV)), KV)
    q_pos = np.concatenate([np.arange(k - q, k) for q, k in zip(QO, KV)])
    kv_pos = np.concatenate([np.arange(k) for k in KV])
    return qo_indptr, kv_indptr, dict(q_req=q_req, q_pos=q_pos, kv_req=kv_req, kv_pos=kv_pos)


def main() -> float:
    qo_indptr, kv_indptr, inputs = arrays()
    prog = fm.compile_file(os.path.join(REPO, "examples", "masks", "batched_prefill.mask"))
    bm = fm.block_mask(prog, q_len=int(qo_indptr[-1]), kv_len=int(kv_indptr[-1]), heads=4,
                       block_size=16, inputs=inputs)
    torch.manual_seed(0)
    q = torch.randn(1, 4, int(qo_indptr[-1]), 32)
    k = torch.randn(1, 2, int(kv_indptr[-1]), 32)
    v = torch.randn(1, 2, int(kv_indptr[-1]), 32)
    out = fm.attention(q, k, v, bm)
    err = 0.0
    for r in range(len(QO)):
        qs, ks = slice(qo_indptr[r], qo_indptr[r + 1]), slice(kv_indptr[r], kv_indptr[r + 1])
        n_q, n_k = QO[r], KV[r]
        causal = torch.ones(n_q, n_k, dtype=torch.bool).tril(diagonal=n_k - n_q)  # bottom right
        ref = torch.nn.functional.scaled_dot_product_attention(
            q[:, :, qs], k[:, :, ks].repeat_interleave(2, 1), v[:, :, ks].repeat_interleave(2, 1),
            attn_mask=causal)
        err = max(err, (out[:, :, qs] - ref).abs().max().item())
    assert err < 1e-5, err
    print(f"batched prefill: {len(QO)} requests, queries {QO}, keys {KV}: {bm}; "
          f"max |flexmask - per-request sdpa| = {err:.2e}")
    return err


if __name__ == "__main__":
    main()
