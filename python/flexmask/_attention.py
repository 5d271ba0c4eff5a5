"""fm.attention: tensors described in place (no copy) and one C call.

The call path is kept short because it runs once per layer and step: the
whole fm_attention_args struct is packed by one struct.pack_into into a
per-thread buffer, and diagnostics are collected only when the call fails
(it is then made again with a diagnostics object: the argument checks that
fail are deterministic)."""
from __future__ import annotations

import ctypes as C
import struct
import sys
import threading
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from . import _lib as L
from ._core import BlockMask, _check, _error

_NOT_YET_SCORES = ("score modifiers are not supported yet: they arrive with language "
                   "version 2 (this library implements version 1, masks only)")

num_threads = 0  # set by fm.set_num_threads

# fm_attention_args: struct_size, mask, q, k, v, out (fm_tensor: data, dtype,
# padding, shape[4], strides[4]), lse, scale, num_threads.
_TENSOR = "QiI4q4q"
_ARGS = struct.Struct("=QQ" + _TENSOR * 4 + "Qfi")
assert _ARGS.size == C.sizeof(L.AttentionArgs), "fm_attention_args layout changed"
_SIZE = C.sizeof(L.AttentionArgs)

_raw = L.lib["fm_attention_cpu"]  # its own function object, raw addresses in
_raw.restype = C.c_int
_raw.argtypes = [C.c_void_p, C.c_void_p]

_tls = threading.local()


def _buffer() -> Tuple[Any, int]:
    b = getattr(_tls, "buf", None)
    if b is None:
        arr = C.create_string_buffer(_SIZE)
        b = _tls.buf = (arr, C.addressof(arr))
    return b


_NP_DTYPES = {np.dtype(np.float32): L.FM_FLOAT32, np.dtype(np.float16): L.FM_FLOAT16}
_TORCH_DTYPES: Dict[Any, int] = {}

# (data address, dtype code, shape, element strides, element size)
Desc = Tuple[int, int, Tuple[int, ...], Tuple[int, ...], int]


def _torch_desc(name: str, x: Any, torch: Any) -> Desc:
    if not isinstance(x, torch.Tensor):
        raise _error(f"attention: {name} must be a torch tensor like q, not {type(x).__name__}")
    if not x.is_cpu:
        raise _error(
            f"attention: {name} is on {x.device}: flexmask has no GPU path usable from "
            "Python yet, and it never copies through the host silently; move the tensors "
            "to the CPU, or use bm.to_torch() with torch's flex_attention on the GPU")
    if not _TORCH_DTYPES:
        _TORCH_DTYPES.update({torch.float32: L.FM_FLOAT32, torch.float16: L.FM_FLOAT16,
                              torch.bfloat16: L.FM_BFLOAT16})
    dt = _TORCH_DTYPES.get(x.dtype)
    if dt is None:
        raise _error(f"attention: {name} has dtype {x.dtype}; flexmask takes float32, "
                     "float16 or bfloat16")
    if x.dim() != 4:
        raise _error(f"attention: {name} must have rank 4 [B, H, S, D], got shape "
                     f"{tuple(x.shape)}")
    if x.requires_grad and torch.is_grad_enabled():
        raise _error(f"attention: {name} requires grad, but flexmask has no backward pass "
                     "yet (no autograd); call it under torch.no_grad() or detach")
    return x.data_ptr(), dt, tuple(x.shape), x.stride(), x.element_size()


def _numpy_desc(name: str, x: Any) -> Desc:
    if not isinstance(x, np.ndarray):
        raise _error(f"attention: {name} must be a NumPy array like q, not {type(x).__name__}")
    dt = _NP_DTYPES.get(x.dtype)
    if dt is None:
        raise _error(f"attention: {name} has dtype {x.dtype}; flexmask takes float32 or "
                     "float16 (bfloat16 through torch)")
    if x.ndim != 4:
        raise _error(f"attention: {name} must have rank 4 [B, H, S, D], got shape {x.shape}")
    if any(s % x.itemsize for s in x.strides):
        raise _error(f"attention: {name} has strides {x.strides} (bytes) that are not a "
                     "multiple of its element size")
    return (x.ctypes.data, dt, x.shape, tuple(s // x.itemsize for s in x.strides), x.itemsize)


def _call(bm: BlockMask, q: Desc, k: Desc, v: Desc, out: Desc, lse_ptr: int,
          scale: float) -> None:
    arr, addr = _buffer()
    _ARGS.pack_into(arr, 0, _SIZE, bm._h,
                    q[0], q[1], 0, *q[2], *q[3], k[0], k[1], 0, *k[2], *k[3],
                    v[0], v[1], 0, *v[2], *v[3], out[0], out[1], 0, *out[2], *out[3],
                    lse_ptr, scale, num_threads)
    if _raw(addr, None) != L.FM_OK:
        with L.Diags() as d:
            _check(_raw(addr, d.h), d, "attention")


def _slice(t: Desc, b: Optional[int], h: Optional[int]) -> Desc:
    """The [1 or B, 1 or H, S, D] view of t at batch b / head h (None: all)."""
    ptr, dt, shape, st, item = t
    off = (b or 0) * st[0] + (h or 0) * st[1]
    shape = (1 if b is not None else shape[0], 1 if h is not None else shape[1],
             shape[2], shape[3])
    return ptr + off * item, dt, shape, st, item


def _run(bm: BlockMask, q: Desc, k: Desc, v: Desc, out: Desc, lse: Any, lse_ptr: int,
         scale: float) -> None:
    """One call when the shapes match; a BlockMask built with batch=1 or
    heads=1 applies to every batch entry / head: one call per entry / head
    (the C API takes tensors of the BlockMask's own BATCH and HEADS)."""
    mB, mH = bm._shape[0], bm._shape[1]
    B, H = q[2][0], q[2][1]
    loop_b = mB == 1 and B != 1
    loop_h = mH == 1 and H != 1
    KVH = k[2][1]
    if (not loop_b and not loop_h) or KVH <= 0 or H % KVH:
        _call(bm, q, k, v, out, lse_ptr, scale)  # the library names any mismatch
        return
    tmp = (np.empty((1 if loop_b else B, 1 if loop_h else H, q[2][2]), np.float32)
           if lse_ptr else None)
    for b in (range(B) if loop_b else [None]):
        for h in (range(H) if loop_h else [None]):
            hk = None if h is None else h // (H // KVH)
            _call(bm, _slice(q, b, h), _slice(k, b, hk), _slice(v, b, hk), _slice(out, b, h),
                  tmp.ctypes.data if tmp is not None else 0, scale)
            if tmp is not None:
                dst = (slice(None) if b is None else b, slice(None) if h is None else h)
                src = (slice(None) if b is None else 0, slice(None) if h is None else 0)
                part = tmp[src]
                if not isinstance(lse, np.ndarray):
                    import torch
                    part = torch.from_numpy(part.copy())
                lse[dst] = part


def attention(q: Any, k: Any, v: Any, bm: BlockMask, *, scale: Optional[float] = None,
              score: Any = None, params: Optional[Mapping[str, Any]] = None,
              inputs: Optional[Mapping[str, Any]] = None, return_lse: bool = False) -> Any:
    torch = sys.modules.get("torch")
    if (torch is not None and score is None and not params and not inputs
            and isinstance(q, torch.Tensor) and torch.compiler.is_compiling()):
        from ._ops import traced_attention
        return traced_attention(q, k, v, bm, scale, return_lse)
    return attention_eager(q, k, v, bm, scale=scale, score=score, params=params,
                           inputs=inputs, return_lse=return_lse)


def attention_eager(q: Any, k: Any, v: Any, bm: BlockMask, *, scale: Optional[float] = None,
                    score: Any = None, params: Optional[Mapping[str, Any]] = None,
                    inputs: Optional[Mapping[str, Any]] = None, return_lse: bool = False) -> Any:
    if score is not None or params or inputs:
        raise _error(f"attention: {_NOT_YET_SCORES}")
    if not isinstance(bm, BlockMask):
        raise _error(f"attention: bm must be a flexmask.BlockMask, not {type(bm).__name__}")
    if scale is None:
        sc = 0.0
    elif isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise _error(f"attention: scale must be a number, not {type(scale).__name__}")
    else:
        sc = float(scale)
        if not sc > 0.0:
            raise _error(f"attention: scale must be positive, got {scale}")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(q, torch.Tensor):
        dq = _torch_desc("q", q, torch)
        dk, dv = _torch_desc("k", k, torch), _torch_desc("v", v, torch)
        B, H, S = dq[2][0], dq[2][1], dq[2][2]
        out = torch.empty((B, H, S, dv[2][3]), dtype=q.dtype)
        do = (out.data_ptr(), dq[1], tuple(out.shape), out.stride(), dq[4])
        lse = torch.empty((B, H, S), dtype=torch.float32) if return_lse else None
        lse_ptr = lse.data_ptr() if lse is not None else 0
    else:
        dq = _numpy_desc("q", q)
        dk, dv = _numpy_desc("k", k), _numpy_desc("v", v)
        B, H, S = dq[2][0], dq[2][1], dq[2][2]
        out = np.empty((B, H, S, dv[2][3]), dtype=q.dtype)
        do = (out.ctypes.data, dq[1], out.shape, tuple(s // out.itemsize for s in out.strides),
              dq[4])
        lse = np.empty((B, H, S), dtype=np.float32) if return_lse else None
        lse_ptr = lse.ctypes.data if lse is not None else 0
    _run(bm, dq, dk, dv, do, lse, lse_ptr, sc)
    return (out, lse) if return_lse else out
