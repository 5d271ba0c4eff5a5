"""flexmask: block-sparse attention masks written in a small language.

    import flexmask as fm
    prog = fm.compile("mask causal = kv <= q;")
    bm = fm.block_mask(prog, q_len=4096)
    out = fm.attention(q, k, v, bm)          # CPU, forward only (no autograd yet)
    torch_bm = bm.to_torch()                 # for torch's flex_attention
"""
from __future__ import annotations

from typing import Any

from ._lib import lib as _clib
from ._attention import attention
from ._core import (BlockMask, FlexmaskError, Program, block_mask,
                    block_mask_from_dense, compile, compile_file, get_num_threads,
                    score_mod, set_num_threads, tree_tables)
from ._torch import from_torch, mask_mod

__version__: str = _clib.fm_version().decode()

__all__ = ["BlockMask", "FlexmaskError", "Program", "attention", "block_mask",
           "block_mask_from_dense", "compile", "compile_file", "from_torch",
           "get_num_threads", "mask_mod", "score_mod", "set_num_threads", "tree_tables",
           "transformers", "__version__"]


def __getattr__(name: str) -> Any:
    # flexmask.transformers without importing Transformers until it is used.
    if name == "transformers":
        import importlib
        return importlib.import_module(__name__ + ".transformers")
    raise AttributeError(f"module 'flexmask' has no attribute {name!r}")
