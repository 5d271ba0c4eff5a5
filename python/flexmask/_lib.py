"""ctypes declarations of include/flexmask.h (only what the package calls).

ctypes, not an extension module: the library has a plain C ABI, so the
package needs no compiler for the Python ABI, one wheel serves every
CPython (py3-none), and ctypes releases the GIL around every foreign call.
"""
from __future__ import annotations

import ctypes as C
import json
import os
from typing import Any, Dict, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load() -> C.CDLL:
    override = os.environ.get("FLEXMASK_LIBRARY")
    path = override or os.path.join(_HERE, "libflexmask.so")
    if not os.path.exists(path):
        raise ImportError(
            f"flexmask: the C library is missing ({path}); install the package with "
            "`pip install .` from the repository root (it builds the library with CMake), "
            "or point FLEXMASK_LIBRARY at a libflexmask.so"
        )
    return C.CDLL(path)


lib = _load()

# status codes (fm_status)
FM_OK = 0
FM_ERR_INVALID_ARGUMENT = 1
FM_ERR_NOT_FOUND = 3

FM_FLOAT32, FM_FLOAT16, FM_BFLOAT16 = 0, 1, 2
FM_BORROW, FM_COPY = 0, 1
FM_DENSE_BOOL, FM_DENSE_ADDITIVE = 0, 1

vp = C.c_void_p
i64 = C.c_int64
sz = C.c_size_t
cstr = C.c_char_p


class Shape(C.Structure):
    _fields_ = [("batch", i64), ("heads", i64), ("q_len", i64), ("kv_len", i64)]


class BuildOptions(C.Structure):
    _fields_ = [("struct_size", sz), ("block_q", i64), ("block_kv", i64),
                ("memory_budget", i64), ("max_evaluations", i64)]


class BlockMaskInfo(C.Structure):
    _fields_ = [("shape", Shape), ("block_q", i64), ("block_kv", i64),
                ("num_q_blocks", i64), ("num_kv_blocks", i64),
                ("broadcast_batch", C.c_bool), ("broadcast_heads", C.c_bool),
                ("full_tiles", i64), ("partial_tiles", i64), ("empty_tiles", i64),
                ("evaluations", i64), ("regions_decided", i64), ("tiles_by_analysis", i64),
                ("tiles_by_points", i64), ("true_positions", i64), ("bytes", i64)]


class Tensor(C.Structure):
    _fields_ = [("data", vp), ("dtype", C.c_int), ("shape", i64 * 4), ("strides", i64 * 4)]


class AttentionArgs(C.Structure):
    _fields_ = [("struct_size", sz), ("mask", vp), ("q", Tensor), ("k", Tensor),
                ("v", Tensor), ("out", Tensor), ("lse", C.POINTER(C.c_float)),
                ("scale", C.c_float), ("num_threads", C.c_int)]


def _fn(name: str, restype: Any, *argtypes: Any) -> None:
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_fn("fm_version", cstr)
_fn("fm_status_string", cstr, C.c_int)
_fn("fm_diagnostics_create", vp)
_fn("fm_diagnostics_free", None, vp)
_fn("fm_diagnostics_count", sz, vp)
_fn("fm_diagnostics_format", vp, vp, C.c_bool)
_fn("fm_free", None, vp)
_fn("fm_compile_string", C.c_int, cstr, cstr, sz, vp, C.POINTER(vp))
_fn("fm_compile_file", C.c_int, cstr, vp, C.POINTER(vp))
_fn("fm_program_free", None, vp)
_fn("fm_program_mask_count", sz, vp)
_fn("fm_program_mask_name", cstr, vp, sz)
_fn("fm_program_print", vp, vp)
_fn("fm_mask_select", C.c_int, vp, cstr, vp, C.POINTER(vp))
_fn("fm_mask_free", None, vp)
_fn("fm_mask_name", cstr, vp)
_fn("fm_mask_reads_batch", C.c_bool, vp)
_fn("fm_mask_reads_heads", C.c_bool, vp)
_fn("fm_mask_param_count", sz, vp)
_fn("fm_mask_param_name", cstr, vp, sz)
_fn("fm_mask_param_default", C.c_bool, vp, sz, C.POINTER(i64))
_fn("fm_mask_input_count", sz, vp)
_fn("fm_mask_input_name", cstr, vp, sz)
_fn("fm_mask_input_rank", sz, vp, sz)
_fn("fm_mask_torch_source", vp, vp, vp)
_fn("fm_bindings_create", C.c_int, vp, C.POINTER(vp))
_fn("fm_bindings_free", None, vp)
_fn("fm_bindings_set_param", C.c_int, vp, cstr, i64, vp)
_fn("fm_bindings_set_input", C.c_int, vp, cstr, vp, sz, C.POINTER(i64), C.c_int, vp)
_fn("fm_blockmask_build", C.c_int, vp, vp, Shape, C.POINTER(BuildOptions), vp, C.POINTER(vp))
_fn("fm_blockmask_free", None, vp)
_fn("fm_blockmask_get_info", C.c_int, vp, C.POINTER(BlockMaskInfo))
_fn("fm_blockmask_row", C.c_int, vp, i64, i64, i64, C.POINTER(C.POINTER(C.c_int32)),
    C.POINTER(i64), C.POINTER(C.POINTER(C.c_int32)), C.POINTER(i64))
_fn("fm_blockmask_eval", C.c_int, vp, i64, i64, i64, i64, C.POINTER(C.c_bool))
_fn("fm_blockmask_to_dense", C.c_int, vp, C.POINTER(vp), C.POINTER(sz), vp)
_fn("fm_blockmask_from_dense", C.c_int, vp, C.c_int, sz, C.POINTER(i64), C.POINTER(Shape),
    C.POINTER(BuildOptions), vp, C.POINTER(vp))
_fn("fm_attention_cpu", C.c_int, C.POINTER(AttentionArgs), vp)
_fn("fm_tree_tables", C.c_int, C.POINTER(C.c_int32), i64, C.POINTER(C.c_int32),
    C.POINTER(C.c_int32), C.POINTER(C.c_int32), vp)

try:  # OpenMP's default thread count, read from the runtime the library uses
    _omp_max = lib.omp_get_max_threads
    _omp_max.restype = C.c_int
    _omp_max.argtypes = []
except AttributeError:  # pragma: no cover - a library built without OpenMP
    _omp_max = None


def omp_default_threads() -> int:
    return int(_omp_max()) if _omp_max is not None else (os.cpu_count() or 1)


def take_string(p: Optional[int]) -> Optional[str]:
    """A library-allocated string, copied and freed."""
    if not p:
        return None
    try:
        return C.string_at(p).decode("utf-8", "replace")
    finally:
        lib.fm_free(p)


class Diags:
    """One fm_diagnostics for one call (a context manager)."""

    def __init__(self) -> None:
        self.h = lib.fm_diagnostics_create()
        if not self.h:
            raise MemoryError("flexmask: out of memory creating diagnostics")

    def __enter__(self) -> "Diags":
        return self

    def __exit__(self, *exc: Any) -> None:
        lib.fm_diagnostics_free(self.h)
        self.h = None

    def text(self) -> str:
        return take_string(lib.fm_diagnostics_format(self.h, False)) or ""

    def records(self) -> List[Dict[str, Any]]:
        out = take_string(lib.fm_diagnostics_format(self.h, True)) or ""
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def count(self) -> int:
        return int(lib.fm_diagnostics_count(self.h))
