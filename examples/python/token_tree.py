"""Seed: a speculative-decoding token tree through a Transformers model,
without a dense mask. Six tokens, parents -1 0 1 0 3 3, so position ids
0 1 2 1 2 2; tokens 1 and 3 are the same word after the same root, and so
are tokens 2 and 4 after it: their logits must be equal. All logits must
equal sdpa's with the equivalent 4-D mask.

    python examples/python/token_tree.py"""
from __future__ import annotations

import os

import numpy as np
import torch

import flexmask as fm
import tiny_models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARENT = [-1, 0, 1, 0, 3, 3]
TOKENS = [5, 17, 42, 17, 42, 99]  # "how are you are you they"


def tree_block_mask() -> tuple:
    enter, leave, depth = fm.tree_tables(PARENT)
    prog = fm.compile_file(os.path.join(REPO, "examples", "masks", "tree.mask"))
    bm = fm.block_mask(prog, q_len=len(PARENT), block_size=16,
                       inputs={"enter": enter, "leave": leave})
    return bm, depth


def main(name: str = "llama") -> float:
    fm.transformers.register()
    bm, depth = tree_block_mask()
    model, ref = tiny_models.pair(tiny_models.configs()[name])
    ids = torch.tensor([TOKENS])
    pos = torch.from_numpy(depth.astype(np.int64))[None]
    dense = torch.from_numpy(bm.to_dense())
    with torch.no_grad():
        mine = model(ids, attention_mask=bm, position_ids=pos).logits[0]
        theirs = ref(ids, attention_mask=tiny_models.additive(dense), position_ids=pos).logits[0]
    err = (mine - theirs).abs().max().item()
    assert torch.equal(mine[1], mine[3]) and torch.equal(mine[2], mine[4]), "tree rows differ"
    assert err < 1e-4, err
    print(f"token tree ({name}): position ids {depth.tolist()}, rows 1 == 3 and 2 == 4, "
          f"max |flexmask - sdpa| = {err:.2e}")
    return err


if __name__ == "__main__":
    main()
