"""fm.attention as a torch custom operator (torch.library), so that
torch.compile traces a model calling it without a graph break. The
BlockMask is not a tensor: the operator takes its registry number (an int
the compiled graph specialises on) and looks it up here."""
from __future__ import annotations

from typing import Any, Tuple

import torch

from . import _core


@torch.library.custom_op("flexmask::attention", mutates_args=())
def attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask_id: int,
                 scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    bm = _core.blockmask_by_id(mask_id)
    from ._attention import attention_eager
    out, lse = attention_eager(q, k, v, bm, scale=scale if scale > 0 else None,
                                      return_lse=True)
    return out, lse


@attention_op.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask_id: int,
      scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    B, H, S = q.shape[0], q.shape[1], q.shape[2]
    return (q.new_empty((B, H, S, v.shape[3])),
            q.new_empty((B, H, S), dtype=torch.float32))


def traced_attention(q: Any, k: Any, v: Any, bm: Any, scale: Any, return_lse: bool) -> Any:
    out, lse = attention_op(q, k, v, bm._op_id, float(scale) if scale is not None else 0.0)
    return (out, lse) if return_lse else out
