"""flexmask as a Transformers attention backend.

    import flexmask as fm
    fm.transformers.register()                    # attn_implementation="flexmask"
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="flexmask")
    with torch.no_grad():
        logits = model(ids, attention_mask=bm).logits   # bm: a flexmask BlockMask

Two hooks are registered under one name: an attention function
(transformers.AttentionInterface) that runs fm.attention, and a mask
function (transformers.masking_utils.AttentionMaskInterface) that decides
what the attention function receives: a user's flexmask BlockMask unchanged
(it is the whole mask), or the model's own mask built as a flexmask
BlockMask. Forward only: there is no backward pass yet, so run models under
torch.no_grad() (generate() does)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from ._core import BlockMask, FlexmaskError, Program, _error, attention, block_mask
from ._core import block_mask_from_dense
from ._core import compile as _compile

# The models' standard masks in the mask language. q_off / kv_off are the
# absolute positions of the first query and key (a KV cache shifts them);
# pad[b, kv] is 1 for a real token of the 2-D padding mask.
_SOURCE = """
param q_off = 0;
param kv_off = 0;
input pad[BATCH, KV_LEN];
mask causal = kv + kv_off <= q + q_off;
mask causal_padded = kv + kv_off <= q + q_off && pad[b, kv] != 0;
param window = 1;
let sliding_causal = kv + kv_off <= q + q_off && kv + kv_off > q + q_off - window;
mask sliding = sliding_causal;
mask sliding_padded = sliding_causal && pad[b, kv] != 0;
mask bidirectional = true;
mask bidirectional_padded = pad[b, kv] != 0;
"""
_program: Optional[Program] = None


def _prog() -> Program:
    global _program
    if _program is None:
        _program = _compile(_SOURCE, name="<flexmask.transformers>")
    return _program


def _block_size(q_len: int, kv_len: int) -> Tuple[int, int]:
    # Decoding steps have one query: a 1-row tile wastes nothing.
    return (min(128, max(1, q_len)), 128)


def _sliding_window_of(fn: Any) -> Optional[int]:
    """The window of Transformers' sliding_window_causal_mask_function(w), or
    None for anything else. It is and_masks(sliding_window_overlay(w),
    causal_mask_function): recognised by its closure, so that sliding layers
    get a BlockMask decided by analysis instead of a dense [Q, KV] array.
    Anything that does not match exactly (packed sequences, overlays, another
    Transformers version) takes the dense path below, which is always exact."""
    from transformers import masking_utils as mu
    try:
        if getattr(fn, "__qualname__", "") != "and_masks.<locals>.and_mask":
            return None
        cells = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__)))
        parts = cells.get("mask_functions")
        if not isinstance(parts, tuple) or len(parts) != 2 or parts[1] is not mu.causal_mask_function:
            return None
        overlay = parts[0]
        if getattr(overlay, "__qualname__", "") != "sliding_window_overlay.<locals>.inner_mask":
            return None
        inner = dict(zip(overlay.__code__.co_freevars,
                         (c.cell_contents for c in overlay.__closure__)))
        w = inner.get("sliding_window")
        return int(w) if isinstance(w, int) and not isinstance(w, bool) and w > 0 else None
    except (AttributeError, TypeError, ValueError):
        return None


def mask_function(batch_size: int, q_length: int, kv_length: int, q_offset: Any = 0,
                  kv_offset: int = 0, mask_function: Any = None, attention_mask: Any = None,
                  **kwargs: Any) -> BlockMask:
    """AttentionMaskInterface hook: what the attention function receives."""
    if isinstance(attention_mask, BlockMask):
        return attention_mask
    from transformers import masking_utils as mu
    q_off, kv_off = int(q_offset), int(kv_offset)
    pad = None
    if attention_mask is not None:
        pm = mu.prepare_padding_mask(attention_mask, kv_length, kv_off)
        pad = pm[:, kv_off: kv_off + kv_length]
        if bool(pad.all()):
            pad = None
    kind = None
    window = None
    if mask_function is mu.causal_mask_function:
        kind = "causal"
    elif mask_function is getattr(mu, "bidirectional_mask_function", None):
        kind = "bidirectional"
    else:
        window = _sliding_window_of(mask_function)
        if window is not None:
            kind = "sliding"
    bs = _block_size(q_length, kv_length)
    # Built for the model's whole [B, H] (the mask reads no h, so one slice is
    # stored for every head): fm.attention is then one C call per layer.
    heads = int(getattr(kwargs.get("config"), "num_attention_heads", 1) or 1)
    if kind is not None:
        name = kind + ("_padded" if pad is not None else "")
        inputs = {"pad": pad.to("cpu", dtype=__import__("torch").int32)} if pad is not None else None
        params = {"q_off": q_off, "kv_off": kv_off} if kind != "bidirectional" else None
        if window is not None:
            params["window"] = window
        return block_mask(_prog(), name, q_len=q_length, kv_len=kv_length,
                          batch=batch_size, heads=heads, block_size=bs,
                          params=params, inputs=inputs)
    # Any other pattern (packed sequences, chunked attention, a model's own
    # overlays) is Transformers' index-based mask function, evaluated once
    # into a bool array that flexmask classifies into tiles.
    dense = mu.sdpa_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length,
                         q_offset=q_off, kv_offset=kv_off, mask_function=mask_function,
                         attention_mask=attention_mask, allow_is_causal_skip=False,
                         allow_is_bidirectional_skip=False, use_vmap=kwargs.get("use_vmap", False),
                         device="cpu")
    return block_mask_from_dense(dense.cpu().numpy(), block_size=bs, batch=batch_size,
                                 heads=heads)


def attention_function(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                       scaling: Optional[float] = None, dropout: float = 0.0,
                       softcap: Optional[float] = None, sliding_window: Optional[int] = None,
                       **kwargs: Any) -> Tuple[Any, None]:
    """AttentionInterface hook: query/key/value [B, H, S, D] -> ([B, S, H, D], None)."""
    if softcap is not None:
        raise _error(f"flexmask attention: this model passes softcap={softcap} (attention "
                     "logit soft-capping), a score modifier, and score modifiers are not "
                     "supported yet; set the config's attn_logit_softcapping to None or use "
                     "another attn_implementation")
    if dropout and float(dropout) > 0.0:
        raise _error(f"flexmask attention: dropout={dropout} is not supported (forward-only "
                     "inference backend); call model.eval()")
    import torch
    if attention_mask is None:
        # A model that built no mask: causal (aligned to the bottom right, as
        # a KV cache needs) unless the layer says it is not causal.
        q_len, kv_len = int(query.shape[2]), int(key.shape[2])
        causal = getattr(module, "is_causal", True)
        attention_mask = block_mask(_prog(), "causal" if causal else "bidirectional",
                                    q_len=q_len, kv_len=kv_len, block_size=_block_size(q_len, kv_len),
                                    params={"q_off": kv_len - q_len, "kv_off": 0} if causal else None)
    if not isinstance(attention_mask, BlockMask):
        raise _error("flexmask attention: attention_mask must be a flexmask BlockMask (register() "
                     f"installs the mask hook that makes one), got {type(attention_mask).__name__}")
    # A user's BlockMask is the whole mask: sliding_window is not applied on
    # top of it; the model's own sliding layers got a sliding BlockMask from
    # the mask hook.
    out = attention(query, key, value, attention_mask, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


_registered: Dict[str, bool] = {}


def register(name: str = "flexmask") -> None:
    """Makes attn_implementation=name run through flexmask (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface
    AttentionInterface.register(name, attention_function)
    AttentionMaskInterface.register(name, mask_function)
    _registered[name] = True


__all__ = ["register", "attention_function", "mask_function", "FlexmaskError"]
