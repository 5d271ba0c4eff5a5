"""Torch interop: BlockMask <-> torch's flex_attention BlockMask, mask_mod.

The mask_mod of a compiled mask is Python source the C library generates
from the mask's IR (fm_mask_torch_source); it is exec'd once per mask and
bound to the BlockMask's params and inputs here. Torch is imported only
when one of these is used."""
from __future__ import annotations

import ctypes as C
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from . import _lib as L
from ._core import (BlockMask, FlexmaskError, Program, _error, _int_array, _Mask,
                    _param_value, block_mask_from_dense)
from ._lib import lib

_factories: Dict[int, Callable[..., Any]] = {}


def _factory(m: _Mask) -> Callable[..., Any]:
    key = id(m)
    f = _factories.get(key)
    if f is None or getattr(f, "_fm_mask", None) is not m:
        with L.Diags() as d:
            src = L.take_string(lib.fm_mask_torch_source(m._h, d.h))
            if src is None:
                raise FlexmaskError(d.text() or "fm_mask_torch_source failed", d.records())
        ns: Dict[str, Any] = {}
        exec(compile(src, f"<flexmask mask_mod {m.name}>", "exec"), ns)
        f = ns["fm_make_mask_mod"]
        f._fm_mask = m  # type: ignore[attr-defined]
        f._fm_source = src  # type: ignore[attr-defined]
        _factories[key] = f
    return f


def _bind(m: _Mask, params: Mapping[str, int], inputs: Mapping[str, np.ndarray],
          shape: Tuple[Optional[int], ...], device: Any) -> Callable[..., Any]:
    import torch
    P = []
    for i, name in enumerate(m.params):
        if name in params:
            P.append(params[name])
        elif m.default(i) is not None:
            P.append(m.default(i))
        else:
            raise _error(f"mask '{m.name}': param '{name}' has no default and no value; "
                         "pass params={...}")
    I, D = [], []
    for name in m.inputs:
        if name not in inputs:
            raise _error(f"mask '{m.name}': input '{name}' is not bound; pass inputs={{...}}")
        arr = inputs[name]
        I.append(torch.from_numpy(np.ascontiguousarray(arr)).to(torch.int64).to(device))
        D.append(tuple(int(s) for s in arr.shape))
    SHAPE = tuple(0 if s is None else int(s) for s in shape)
    mm = _factory(m)(torch, P, I, D, SHAPE)
    mm.__name__ = f"flexmask_{m.name}"
    mm.__qualname__ = mm.__name__
    return mm


def mask_mod(prog: Program, mask: Optional[str] = None, *, params: Optional[Mapping[str, Any]] = None,
             inputs: Optional[Mapping[str, Any]] = None, device: Any = None,
             q_len: Optional[int] = None, kv_len: Optional[int] = None, batch: int = 1,
             heads: int = 1) -> Callable[..., Any]:
    """The mask as a torch mask_mod(b, h, q_idx, kv_idx). A mask that reads
    Q_LEN, KV_LEN, BATCH or HEADS needs them here (q_len=, ...)."""
    if not isinstance(prog, Program):
        raise _error(f"mask_mod: prog must be a flexmask.Program, not {type(prog).__name__}")
    m = _Mask(prog, mask)
    pv = {k: _param_value(k, v) for k, v in (params or {}).items()}
    for k in pv:
        if k not in m.params:
            raise _error(f"mask_mod: mask '{m.name}' has no param '{k}' (it reads "
                         f"{m.params or 'none'})")
    arrays = {k: _int_array(k, v) for k, v in (inputs or {}).items()}
    for k in arrays:
        if k not in m.inputs:
            raise _error(f"mask_mod: mask '{m.name}' does not use an input '{k}' (it reads "
                         f"{m.inputs or 'none'})")
    kv = kv_len if kv_len is not None else q_len
    return _bind(m, pv, arrays, (batch, heads, q_len, kv), device)


def _bm_mask_mod(bm: BlockMask, device: Any) -> Callable[..., Any]:
    import torch
    if bm._torch_mask_mod is not None:
        return bm._torch_mask_mod
    if bm._mask is not None:
        return _bind(bm._mask, bm._params, bm._inputs, bm.shape, device)
    assert bm._dense is not None
    dense = torch.from_numpy(bm._dense).to(device)
    B, H = dense.shape[0], dense.shape[1]
    Q, KV = dense.shape[2], dense.shape[3]

    def dense_mask_mod(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
        bi = b.clamp(0, B - 1) if B > 1 else b * 0
        hi = h.clamp(0, H - 1) if H > 1 else h * 0
        return dense[bi, hi, q_idx.clamp(0, Q - 1), kv_idx.clamp(0, KV - 1)]

    return dense_mask_mod


def to_torch(bm: BlockMask, device: Any = None) -> Any:
    import torch
    from torch.nn.attention.flex_attention import BlockMask as TorchBlockMask
    dev = torch.device(device) if device is not None else torch.device("cpu")
    t = {k: torch.from_numpy(v).to(dev) for k, v in bm.tiles().items()}
    _, _, Q, KV = bm.shape
    return TorchBlockMask.from_kv_blocks(
        t["kv_num_blocks"], t["kv_indices"], t["full_kv_num_blocks"], t["full_kv_indices"],
        BLOCK_SIZE=bm.block_size, mask_mod=_bm_mask_mod(bm, dev), seq_lengths=(Q, KV))


def from_torch(block_mask: Any) -> BlockMask:
    """A flexmask BlockMask from torch's, evaluating its mask_mod only inside
    partial tiles (full tiles are taken as they are); the result goes through
    the C dense import, which classifies the tiles again."""
    import torch
    from torch.nn.attention.flex_attention import BlockMask as TorchBlockMask
    if not isinstance(block_mask, TorchBlockMask):
        raise _error(f"from_torch: expected torch's BlockMask, not {type(block_mask).__name__}")
    Q, KV = (int(x) for x in block_mask.seq_lengths)
    bs = block_mask.BLOCK_SIZE
    bq, bk = (int(bs[0]), int(bs[1])) if isinstance(bs, (tuple, list)) else (int(bs), int(bs))
    num = block_mask.kv_num_blocks.cpu()
    idx = block_mask.kv_indices.cpu()
    fnum = block_mask.full_kv_num_blocks
    fidx = block_mask.full_kv_indices
    B, H, nq = (int(s) for s in num.shape)
    dense = torch.zeros((B, H, Q, KV), dtype=torch.bool)
    mm = block_mask.mask_mod
    dev = block_mask.kv_indices.device
    for b in range(B):
        for h in range(H):
            for qb in range(nq):
                q0, q1 = qb * bq, min(Q, (qb + 1) * bq)
                if q0 >= Q:
                    continue
                if fnum is not None:
                    for j in fidx[b, h, qb, : int(fnum[b, h, qb])].tolist():
                        dense[b, h, q0:q1, j * bk: min(KV, (j + 1) * bk)] = True
                for j in idx[b, h, qb, : int(num[b, h, qb])].tolist():
                    k0, k1 = j * bk, min(KV, (j + 1) * bk)
                    if k0 >= KV:
                        continue
                    qq = torch.arange(q0, q1, device=dev)[:, None]
                    kk = torch.arange(k0, k1, device=dev)[None, :]
                    val = mm(torch.tensor(b, device=dev), torch.tensor(h, device=dev), qq, kk)
                    dense[b, h, q0:q1, k0:k1] = torch.as_tensor(val).to("cpu", torch.bool)
    out = block_mask_from_dense(dense.numpy(), block_size=(bq, bk))
    out._torch_mask_mod = mm
    return out
