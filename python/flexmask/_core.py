"""Programs, BlockMasks and CPU attention over the C library."""
from __future__ import annotations

import ctypes as C
import itertools
import os
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib as L
from ._lib import lib

BlockSize = Union[int, Tuple[int, int]]
_NOT_YET_SCORES = ("score modifiers are not supported yet: they arrive with language "
                   "version 2 (this library implements version 1, masks only)")


class FlexmaskError(ValueError):
    """An error the flexmask library reported.

    str() is the library's text diagnostics (file:line:col, source line,
    caret, hint); .diagnostics the same as dicts (the keys of
    `fmc --diagnostics json`)."""

    def __init__(self, message: str, diagnostics: Optional[List[Dict[str, Any]]] = None):
        super().__init__(message)
        self.diagnostics: List[Dict[str, Any]] = diagnostics or []


def _raise(status: int, d: "L.Diags", what: str) -> None:
    text = d.text().rstrip("\n")
    recs = d.records()
    if not text:
        reason = lib.fm_status_string(status).decode()
        text = f"{what}: {reason}"
        recs = [{"severity": "error", "message": text}]
    raise FlexmaskError(text, recs)


def _check(status: int, d: "L.Diags", what: str) -> None:
    if status != L.FM_OK:
        _raise(status, d, what)


def _error(message: str) -> FlexmaskError:
    return FlexmaskError(message, [{"severity": "error", "message": message}])


# ---- programs -----------------------------------------------------------------

class Program:
    """A compiled mask file: `masks` are its mask names in file order."""

    def __init__(self, handle: int, name: str, text: str):
        self._h = handle
        self.name = name
        self.text = text
        n = lib.fm_program_mask_count(handle)
        self.masks: List[str] = [lib.fm_program_mask_name(handle, i).decode() for i in range(n)]
        # Score modifiers arrive with language version 2.
        self.scores: List[str] = []

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            lib.fm_program_free(self._h)
            self._h = None

    def __repr__(self) -> str:
        return f"<flexmask.Program {self.name!r} masks={self.masks}>"

    def __str__(self) -> str:
        return L.take_string(lib.fm_program_print(self._h)) or ""


def compile(text: str, name: str = "<string>") -> Program:
    """Compiles mask source text; errors raise FlexmaskError."""
    if not isinstance(text, str):
        raise _error(f"compile: text must be a str, not {type(text).__name__}")
    data = text.encode("utf-8")
    out = C.c_void_p()
    with L.Diags() as d:
        _check(lib.fm_compile_string(name.encode(), data, len(data), d.h, C.byref(out)), d,
               f"compile {name}")
    return Program(out.value, name, text)


def compile_file(path: Union[str, "os.PathLike[str]"]) -> Program:
    """Compiles the mask file at path."""
    p = os.fspath(path)
    out = C.c_void_p()
    with L.Diags() as d:
        _check(lib.fm_compile_file(p.encode(), d.h, C.byref(out)), d, f"compile {p}")
    with open(p, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return Program(out.value, p, text)


class _Mask:
    """An fm_mask handle (one selected, lowered mask)."""

    def __init__(self, prog: Program, name: Optional[str]):
        if name is not None and not isinstance(name, str):
            raise _error(f"mask must be a mask name (str) or None, not {type(name).__name__}")
        out = C.c_void_p()
        with L.Diags() as d:
            st = lib.fm_mask_select(prog._h, name.encode() if name else None, d.h, C.byref(out))
            if st == L.FM_ERR_NOT_FOUND and d.count() == 0:
                raise _error(f"{prog.name}: the file declares no mask")
            _check(st, d, "mask")
        self._h = out.value
        self.prog = prog
        self.name: str = lib.fm_mask_name(self._h).decode()
        self.params = [lib.fm_mask_param_name(self._h, i).decode()
                       for i in range(lib.fm_mask_param_count(self._h))]
        self.inputs = [lib.fm_mask_input_name(self._h, i).decode()
                       for i in range(lib.fm_mask_input_count(self._h))]

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            lib.fm_mask_free(self._h)
            self._h = None

    def default(self, i: int) -> Optional[int]:
        v = C.c_int64()
        return int(v.value) if lib.fm_mask_param_default(self._h, i, C.byref(v)) else None


def _int_array(name: str, value: Any) -> np.ndarray:
    """An input array as C-order int32 (from NumPy or a torch tensor)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int32)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating):
            raise _error(f"input '{name}': float arrays are for float inputs, which arrive "
                         "with language version 2; int inputs take integer arrays")
        raise _error(f"input '{name}': expected an integer array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise _error(f"input '{name}': expected an array, got a scalar")
    if arr.size and (arr.min() < -2**31 or arr.max() > 2**31 - 1):
        raise _error(f"input '{name}': values must fit int32 (range {arr.min()}..{arr.max()})")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _param_value(name: str, v: Any) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise _error(f"param '{name}': expected an int, got a bool")
    if isinstance(v, (int, np.integer)):
        iv = int(v)
        if not -2**63 <= iv < 2**63:
            raise _error(f"param '{name}': {iv} does not fit 64 bits")
        return iv
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0 and "int" in str(getattr(v, "dtype", "")):
        return int(v.item())
    if isinstance(v, float):
        raise _error(f"param '{name}': expected an int, got the float {v!r} (float params "
                     "arrive with language version 2)")
    raise _error(f"param '{name}': expected an int, got {type(v).__name__}")


def _pair(block_size: Any) -> Tuple[int, int]:
    if isinstance(block_size, (int, np.integer)) and not isinstance(block_size, bool):
        return int(block_size), int(block_size)
    if (isinstance(block_size, (tuple, list)) and len(block_size) == 2
            and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
                    for x in block_size)):
        return int(block_size[0]), int(block_size[1])
    raise _error(f"block_size must be an int or a (q, kv) pair of ints, not {block_size!r}")


def _int_arg(what: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise _error(f"{what} must be an int, not {type(v).__name__}")
    return int(v)


def _options(block_size: BlockSize, max_evaluations: Optional[int]) -> L.BuildOptions:
    bq, bkv = _pair(block_size)
    if bq <= 0 or bkv <= 0:
        raise _error(f"block_size must be positive, got {block_size!r}")
    mx = 0 if max_evaluations is None else _int_arg("max_evaluations", max_evaluations)
    if max_evaluations is not None and mx <= 0:
        raise _error(f"max_evaluations must be positive, got {mx}")
    return L.BuildOptions(C.sizeof(L.BuildOptions), bq, bkv, 0, mx)


# ---- BlockMask ------------------------------------------------------------------

# BlockMasks by number, for the torch custom operator (python/flexmask/_ops.py).
_by_id: "weakref.WeakValueDictionary[int, BlockMask]" = weakref.WeakValueDictionary()
_next_id = itertools.count(1)


def blockmask_by_id(i: int) -> "BlockMask":
    bm = _by_id.get(i)
    if bm is None:
        raise _error(f"flexmask::attention: BlockMask #{i} no longer exists")
    return bm


class BlockMask:
    """A built tile map (full / partial / empty tiles) for one shape."""

    def __init__(self, handle: int, *, mask: Optional[_Mask] = None,
                 params: Optional[Dict[str, int]] = None,
                 inputs: Optional[Dict[str, np.ndarray]] = None,
                 dense: Optional[np.ndarray] = None, torch_mask_mod: Any = None):
        self._h = handle
        self._mask = mask
        self._params = params or {}
        self._inputs = inputs or {}
        self._dense = dense  # the bool array of a dense import (for to_torch)
        self._torch_mask_mod = torch_mask_mod  # from_torch keeps the user's
        self._op_id = next(_next_id)
        _by_id[self._op_id] = self
        info = L.BlockMaskInfo()
        with L.Diags() as d:
            _check(lib.fm_blockmask_get_info(handle, C.byref(info)), d, "blockmask info")
        self._info = info
        sh = info.shape
        self._shape = (int(sh.batch), int(sh.heads), int(sh.q_len), int(sh.kv_len))

    def __del__(self) -> None:
        if getattr(self, "_h", None):
            lib.fm_blockmask_free(self._h)
            self._h = None

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        return self._shape

    @property
    def block_size(self) -> Tuple[int, int]:
        return (int(self._info.block_q), int(self._info.block_kv))

    @property
    def counts(self) -> Dict[str, int]:
        i = self._info
        return {"full": int(i.full_tiles), "partial": int(i.partial_tiles),
                "empty": int(i.empty_tiles)}

    @property
    def evaluations(self) -> int:
        return int(self._info.evaluations)

    @property
    def mask_name(self) -> Optional[str]:
        return self._mask.name if self._mask else None

    @property
    def broadcast(self) -> Tuple[bool, bool]:
        """(batch, heads): whether one slice serves every batch entry / head."""
        return bool(self._info.broadcast_batch), bool(self._info.broadcast_heads)

    # Transformers checks these on attention masks.
    @property
    def ndim(self) -> int:
        return 4

    def __repr__(self) -> str:
        c = self.counts
        total = max(1, sum(c.values()))
        name = f"mask={self.mask_name!r}, " if self.mask_name else ""
        return (f"<flexmask.BlockMask {name}shape={self.shape}, block_size={self.block_size}, "
                f"full={c['full']}, partial={c['partial']}, empty={c['empty']} "
                f"({100.0 * (c['full'] + c['partial']) / total:.1f}% of tiles computed)>")

    def eval(self, b: int, h: int, q: int, kv: int) -> bool:
        """The mask at one point (the C evaluator)."""
        v = C.c_bool()
        with L.Diags() as d:
            _check(lib.fm_blockmask_eval(self._h, b, h, q, kv, C.byref(v)), d, "eval")
        return bool(v.value)

    def to_dense(self) -> np.ndarray:
        """The mask as NumPy bool [B, H, Q_LEN, KV_LEN]."""
        p = C.c_void_p()
        n = C.c_size_t()
        with L.Diags() as d:
            _check(lib.fm_blockmask_to_dense(self._h, C.byref(p), C.byref(n), d.h), d, "to_dense")
        try:
            arr = np.ctypeslib.as_array(C.cast(p, C.POINTER(C.c_uint8)), (n.value,)).copy()
        finally:
            lib.fm_free(p)
        return arr.astype(bool).reshape(self.shape)

    def tiles(self) -> Dict[str, np.ndarray]:
        """The tile lists as from_kv_blocks' arguments (int32; B or H of size 1 where
        the BlockMask broadcasts): kv_num_blocks, kv_indices, full_kv_num_blocks,
        full_kv_indices. Listed blocks come first in each row, ascending."""
        B, H, _, _ = self.shape
        bb, bh = self.broadcast
        B1, H1 = (1 if bb else B), (1 if bh else H)
        nq, nk = int(self._info.num_q_blocks), int(self._info.num_kv_blocks)
        out = {k: np.zeros((B1, H1, nq) if "num" in k else (B1, H1, nq, nk), np.int32)
               for k in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices")}
        full, partial = C.POINTER(C.c_int32)(), C.POINTER(C.c_int32)()
        nf, npart = C.c_int64(), C.c_int64()
        with L.Diags() as d:
            for b in range(B1):
                for h in range(H1):
                    for qb in range(nq):
                        _check(lib.fm_blockmask_row(self._h, b, h, qb, C.byref(full),
                                                    C.byref(nf), C.byref(partial),
                                                    C.byref(npart)), d, "tiles")
                        for lst, n, key in ((partial, npart.value, "kv"),
                                            (full, nf.value, "full_kv")):
                            out[key + "_num_blocks"][b, h, qb] = n
                            if n:
                                out[key + "_indices"][b, h, qb, :n] = np.ctypeslib.as_array(
                                    lst, (n,))
        return out

    def to_torch(self, device: Any = None) -> Any:
        """torch's BlockMask with the same tiles and a generated mask_mod."""
        from ._torch import to_torch
        return to_torch(self, device)


def block_mask(prog: Program, mask: Optional[str] = None, *, q_len: int,
               kv_len: Optional[int] = None, batch: int = 1, heads: int = 1,
               block_size: BlockSize = 128, params: Optional[Mapping[str, Any]] = None,
               inputs: Optional[Mapping[str, Any]] = None,
               max_evaluations: Optional[int] = None) -> BlockMask:
    """Builds the BlockMask of `mask` (None: the last of the file) for a shape."""
    if not isinstance(prog, Program):
        raise _error(f"block_mask: prog must be a flexmask.Program (fm.compile), "
                     f"not {type(prog).__name__}")
    q_len = _int_arg("q_len", q_len)
    kv_len = q_len if kv_len is None else _int_arg("kv_len", kv_len)
    batch, heads = _int_arg("batch", batch), _int_arg("heads", heads)
    opts = _options(block_size, max_evaluations)
    m = _Mask(prog, mask)
    bind = C.c_void_p()
    with L.Diags() as d:
        _check(lib.fm_bindings_create(m._h, C.byref(bind)), d, "bindings")
    try:
        pvals: Dict[str, int] = {}
        arrays: Dict[str, np.ndarray] = {}
        with L.Diags() as d:
            for k, v in (params or {}).items():
                iv = _param_value(k, v)
                _check(lib.fm_bindings_set_param(bind, str(k).encode(), iv, d.h), d,
                       f"param '{k}'")
                pvals[k] = iv
            for k, v in (inputs or {}).items():
                arr = _int_array(k, v)
                dims = (C.c_int64 * arr.ndim)(*arr.shape)
                _check(lib.fm_bindings_set_input(bind, str(k).encode(),
                                                 arr.ctypes.data_as(C.c_void_p), arr.ndim,
                                                 dims, L.FM_COPY, d.h), d, f"input '{k}'")
                arrays[k] = arr
            out = C.c_void_p()
            _check(lib.fm_blockmask_build(m._h, bind, L.Shape(batch, heads, q_len, kv_len),
                                          C.byref(opts), d.h, C.byref(out)), d, "block_mask")
    finally:
        lib.fm_bindings_free(bind)
    # Resolve defaults so to_torch knows every value the build used.
    for i, name in enumerate(m.params):
        if name not in pvals:
            dv = m.default(i)
            if dv is not None:
                pvals[name] = dv
    return BlockMask(out.value, mask=m, params=pvals, inputs=arrays)


def block_mask_from_dense(mask: Any, *, block_size: BlockSize = 128,
                          batch: Optional[int] = None, heads: Optional[int] = None,
                          max_evaluations: Optional[int] = None) -> BlockMask:
    """A BlockMask from a bool or additive (0 / -inf) mask of rank 2, 3 or 4."""
    if hasattr(mask, "detach") and hasattr(mask, "cpu"):
        import torch
        t = mask.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16, torch.float64):
            t = t.float()
        mask = t.numpy()
    arr = np.asarray(mask)
    if arr.ndim not in (2, 3, 4):
        raise _error(f"block_mask_from_dense: expected rank 2, 3 or 4, got rank {arr.ndim}")
    if arr.dtype == np.bool_ or arr.dtype == np.uint8:
        data, kind = np.ascontiguousarray(arr, dtype=np.uint8), L.FM_DENSE_BOOL
    elif np.issubdtype(arr.dtype, np.floating):
        data, kind = np.ascontiguousarray(arr, dtype=np.float32), L.FM_DENSE_ADDITIVE
    else:
        raise _error(f"block_mask_from_dense: expected a bool array or an additive float "
                     f"mask (0 / -inf), got dtype {arr.dtype}")
    opts = _options(block_size, max_evaluations)
    dims = (C.c_int64 * arr.ndim)(*arr.shape)
    shape = L.Shape(0 if batch is None else _int_arg("batch", batch),
                    0 if heads is None else _int_arg("heads", heads),
                    arr.shape[-2], arr.shape[-1])
    out = C.c_void_p()
    with L.Diags() as d:
        _check(lib.fm_blockmask_from_dense(data.ctypes.data_as(C.c_void_p), kind, arr.ndim, dims,
                                           C.byref(shape), C.byref(opts), d.h, C.byref(out)),
               d, "block_mask_from_dense")
    keep = data.astype(bool) if kind == L.FM_DENSE_BOOL else (data == 0)
    while keep.ndim < 4:
        keep = keep[None]
    return BlockMask(out.value, dense=keep)


def tree_tables(parent: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(enter, leave, depth) of a token forest (fm_tree_tables): the inputs of
    examples/masks/tree.mask and the tokens' position ids."""
    par = np.ascontiguousarray(np.asarray(parent), dtype=np.int32)
    n = par.size
    enter, leave, depth = (np.zeros(n, np.int32) for _ in range(3))
    P = C.POINTER(C.c_int32)
    with L.Diags() as d:
        _check(lib.fm_tree_tables(par.ctypes.data_as(P), n, enter.ctypes.data_as(P),
                                  leave.ctypes.data_as(P), depth.ctypes.data_as(P), d.h), d,
               "tree_tables")
    return enter, leave, depth


# ---- attention ------------------------------------------------------------------

_num_threads = 0


def set_num_threads(n: int) -> None:
    """CPU threads fm.attention uses (0: OpenMP's default)."""
    global _num_threads
    from . import _attention
    n = _int_arg("set_num_threads: n", n)
    if n < 0:
        raise _error(f"set_num_threads: n must be >= 0, got {n}")
    _num_threads = n
    _attention.num_threads = n


def get_num_threads() -> int:
    return _num_threads if _num_threads > 0 else L.omp_default_threads()


def attention(q: Any, k: Any, v: Any, bm: "BlockMask", *, scale: Optional[float] = None,
              score: Any = None, params: Optional[Mapping[str, Any]] = None,
              inputs: Optional[Mapping[str, Any]] = None, return_lse: bool = False) -> Any:
    """Attention forward over bm on the CPU (no backward pass yet). Under
    torch.compile it is the custom operator flexmask::attention."""
    from ._attention import attention as impl
    return impl(q, k, v, bm, scale=scale, score=score, params=params, inputs=inputs,
                return_lse=return_lse)


def score_mod(prog: Program, score: str, **kwargs: Any) -> Any:
    raise _error(f"score_mod: {_NOT_YET_SCORES}")
