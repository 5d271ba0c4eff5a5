"""Shared fixtures of the Python tests: the standard masks of examples/masks
with their equivalent hand-written torch mask_mods and inputs for a shape."""
from __future__ import annotations

import os
import random
import sys
from typing import Any, Callable, Dict, List, NamedTuple, Tuple

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASKS = os.path.join(REPO, "examples", "masks")
# The seeds scripts live in examples/python; tests import them as modules.
sys.path.insert(0, os.path.join(REPO, "examples", "python"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch
        torch.manual_seed(0)
    except ImportError:  # pragma: no cover - torch is pinned in requirements.txt
        pass


class Std(NamedTuple):
    file: str
    mask: str
    # (B, H, Q, KV, rng) -> (params, inputs as int arrays, reference mask_mod)
    make: Callable[..., Tuple[Dict[str, int], Dict[str, np.ndarray], Callable[..., Any]]]


def _doc_ids(n: int, rng: np.random.Generator) -> np.ndarray:
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(3, n - 1), replace=False))
    return np.searchsorted(cuts, np.arange(n), side="right").astype(np.int32)


def _lens(B: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(1, n + 1, size=B).astype(np.int32)


def _std() -> List[Std]:
    def causal(B, H, Q, KV, rng):
        return {}, {}, lambda b, h, q, kv: kv <= q

    def causal_br(B, H, Q, KV, rng):
        return {}, {}, lambda b, h, q, kv: kv <= q + KV - Q

    def chunked(B, H, Q, KV, rng):
        return {"chunk": 96}, {}, lambda b, h, q, kv: (kv <= q) & (q // 96 == kv // 96)

    def cross(B, H, Q, KV, rng):
        import torch
        ln = _lens(B, KV, rng)
        t = torch.from_numpy(ln).long()
        return {}, {"src_len": ln}, lambda b, h, q, kv: kv < t[b]

    def decoder_self(B, H, Q, KV, rng):
        import torch
        ln = _lens(B, Q, rng)
        t = torch.from_numpy(ln).long()
        return {}, {"tgt_len": ln}, lambda b, h, q, kv: (kv <= q) & (q < t[b])

    def dilated(B, H, Q, KV, rng):
        return ({"window": 150, "dilation": 3}, {},
                lambda b, h, q, kv: (kv <= q) & (q - kv < 150) & ((q - kv) % 3 == 0))

    def document(B, H, Q, KV, rng):
        import torch
        d = _doc_ids(KV, rng)
        t = torch.from_numpy(d).long()
        return {}, {"doc": d}, lambda b, h, q, kv: (kv <= q) & (t[q] == t[kv])

    def same_document(B, H, Q, KV, rng):
        import torch
        d = _doc_ids(KV, rng)
        t = torch.from_numpy(d).long()
        return {}, {"doc": d}, lambda b, h, q, kv: t[q] == t[kv]

    def full(B, H, Q, KV, rng):
        return {}, {}, lambda b, h, q, kv: (q >= 0) & (kv >= 0)

    def padding(B, H, Q, KV, rng):
        import torch
        ln = _lens(B, KV, rng)
        t = torch.from_numpy(ln).long()
        return {}, {"kv_len_of": ln}, lambda b, h, q, kv: kv < t[b]

    def per_head(B, H, Q, KV, rng):
        import torch
        return ({"window": 100}, {},
                lambda b, h, q, kv: torch.where(h % 2 == 0, (kv <= q) & (q - kv < 100), kv <= q))

    def prefix_lm(B, H, Q, KV, rng):
        return {"prefix": 70}, {}, lambda b, h, q, kv: (kv < 70) | (kv <= q)

    def set_padding(B, H, Q, KV, rng):
        import torch
        s = _doc_ids(KV, rng)
        s[rng.random(KV) < 0.2] = -1
        t = torch.from_numpy(s).long()
        return {}, {"set_id": s}, lambda b, h, q, kv: (t[q] >= 0) & (t[q] == t[kv])

    def sliding(B, H, Q, KV, rng):
        return {"window": 100}, {}, lambda b, h, q, kv: (kv <= q) & (q - kv < 100)

    def local(B, H, Q, KV, rng):
        return {"window": 100}, {}, lambda b, h, q, kv: (q - kv).abs() < 100

    def sinks(B, H, Q, KV, rng):
        return ({"window": 100, "sinks": 4}, {},
                lambda b, h, q, kv: (kv <= q) & ((q - kv < 100) | (kv < 4)))

    def batched_prefill(B, H, Q, KV, rng):
        import torch
        # two requests: request 0 gets q0 queries over k0 keys, request 1 the rest
        q0 = Q // 3
        k0 = KV - (Q - q0) - 7 if KV - (Q - q0) - 7 >= q0 else q0
        qr = np.r_[np.zeros(q0), np.ones(Q - q0)].astype(np.int32)
        kr = np.r_[np.zeros(k0), np.ones(KV - k0)].astype(np.int32)
        qp = np.r_[np.arange(k0 - q0, k0), np.arange(KV - k0 - (Q - q0), KV - k0)].astype(np.int32)
        kp = np.r_[np.arange(k0), np.arange(KV - k0)].astype(np.int32)
        t = [torch.from_numpy(x).long() for x in (qr, qp, kr, kp)]
        return ({}, {"q_req": qr, "q_pos": qp, "kv_req": kr, "kv_pos": kp},
                lambda b, h, q, kv: (t[0][q] == t[2][kv]) & (t[3][kv] <= t[1][q]))

    def tree(B, H, Q, KV, rng):
        import flexmask as fm
        import torch
        prefix = KV - Q
        parent = [-1] + [int(rng.integers(0, i)) for i in range(1, Q)]
        enter, leave, _ = fm.tree_tables(parent)
        te, tl = torch.from_numpy(enter).long(), torch.from_numpy(leave).long()

        def mm(b, h, q, kv):
            node = (kv - prefix).clamp(min=0)
            return (kv < prefix) | ((te[node] <= te[q]) & (tl[q] <= tl[node]))
        return {"prefix": prefix}, {"enter": enter, "leave": leave}, mm

    return [
        Std("causal.mask", "causal", causal),
        Std("causal_bottom_right.mask", "causal_bottom_right", causal_br),
        Std("chunked_causal.mask", "chunked_causal", chunked),
        Std("cross_attention.mask", "cross_attention", cross),
        Std("decoder_self.mask", "decoder_self", decoder_self),
        Std("dilated_sliding.mask", "dilated_sliding", dilated),
        Std("document.mask", "document", document),
        Std("document.mask", "same_document", same_document),
        Std("full.mask", "full", full),
        Std("padding.mask", "padding", padding),
        Std("per_head.mask", "per_head", per_head),
        Std("prefix_lm.mask", "prefix_lm", prefix_lm),
        Std("set_padding.mask", "set_padding", set_padding),
        Std("sliding_window.mask", "sliding_window", sliding),
        Std("sliding_window.mask", "local", local),
        Std("sliding_with_sinks.mask", "sliding_with_sinks", sinks),
        Std("batched_prefill.mask", "batched_prefill", batched_prefill),
        Std("tree.mask", "tree", tree),
    ]


STD = _std()
STD_IDS = [s.mask for s in STD]
# (B, H, Q_LEN, KV_LEN): square, Q < KV and both not block multiples, Q == KV odd.
SHAPES = [(2, 2, 256, 256), (2, 2, 200, 333), (1, 2, 257, 257)]
