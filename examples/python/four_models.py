"""Seed: one flexmask BlockMask object used unchanged by four model classes
(Llama, Qwen2, Mistral, Gemma 2): a document mask over a packed row, passed
as attention_mask; each model's logits equal sdpa's with the 4-D mask.

    python examples/python/four_models.py"""
from __future__ import annotations

import os

import numpy as np
import torch

import flexmask as fm
import tiny_models

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> dict:
    fm.transformers.register()
    doc = np.repeat(np.arange(3), [6, 10, 8])
    prog = fm.compile_file(os.path.join(REPO, "examples", "masks", "document.mask"))
    bm = fm.block_mask(prog, "document", q_len=doc.size, block_size=8, inputs={"doc": doc})
    dense = tiny_models.additive(torch.from_numpy(bm.to_dense()))
    pos = torch.from_numpy(np.concatenate([np.arange(n) for n in (6, 10, 8)]))[None]
    ids = torch.randint(0, 128, (1, doc.size), generator=torch.Generator().manual_seed(2))
    errs = {}
    for name, cfg in tiny_models.configs().items():
        model, ref = tiny_models.pair(cfg)
        with torch.no_grad():
            mine = model(ids, attention_mask=bm, position_ids=pos).logits
            theirs = ref(ids, attention_mask=dense, position_ids=pos).logits
        errs[name] = (mine - theirs).abs().max().item()
        assert errs[name] < 1e-4, (name, errs[name])
    print("one BlockMask, four model classes: " +
          ", ".join(f"{k} {v:.2e}" for k, v in errs.items()) + f" (max |flexmask - sdpa|); {bm}")
    return errs


if __name__ == "__main__":
    main()
