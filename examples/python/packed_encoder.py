"""Seed: a Llama-architecture model as a bidirectional encoder over packed
sequences with padding, no model code edited: the user's BlockMask
(set_padding.mask: a token sees every real token of its own sequence) is
the whole mask, so the model's causal mask is not applied.

    python examples/python/packed_encoder.py"""
from __future__ import annotations

import os

import numpy as np
import torch

import flexmask as fm
import tiny_models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LENGTHS = [7, 3, 9]  # three sequences packed in one row, then padding
PAD = 5


def main() -> float:
    fm.transformers.register()
    set_id = np.concatenate([np.full(n, i) for i, n in enumerate(LENGTHS)] + [np.full(PAD, -1)])
    n = set_id.size
    prog = fm.compile_file(os.path.join(REPO, "examples", "masks", "set_padding.mask"))
    bm = fm.block_mask(prog, q_len=n, block_size=8, inputs={"set_id": set_id})
    pos = torch.from_numpy(np.concatenate([np.arange(k) for k in LENGTHS] + [np.zeros(PAD)])
                           .astype(np.int64))[None]
    model, ref = tiny_models.pair(tiny_models.configs()["llama"])
    ids = torch.randint(0, 128, (1, n), generator=torch.Generator().manual_seed(1))
    dense = torch.from_numpy(bm.to_dense())
    with torch.no_grad():
        mine = model(ids, attention_mask=bm, position_ids=pos).logits[0]
        theirs = ref(ids, attention_mask=tiny_models.additive(dense), position_ids=pos).logits[0]
        # The first sequence alone, bidirectional, must give the same rows.
        alone = ref(ids[:, :7], attention_mask=torch.zeros(1, 1, 7, 7),
                    position_ids=pos[:, :7]).logits[0]
    real = torch.from_numpy(set_id >= 0)
    err = (mine[real] - theirs[real]).abs().max().item()
    err_alone = (mine[:7] - alone).abs().max().item()
    assert err < 1e-4 and err_alone < 1e-4, (err, err_alone)
    print(f"packed encoder: sequences {LENGTHS} + {PAD} padding, bidirectional; "
          f"max |flexmask - sdpa| = {err:.2e}, vs the first sequence alone {err_alone:.2e}")
    return err


if __name__ == "__main__":
    main()
