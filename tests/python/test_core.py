"""compile, block_mask, BlockMask readers, attention on the CPU, threads."""
from __future__ import annotations

import ctypes
import math
import os

import numpy as np
import pytest
import torch

import flexmask as fm
from conftest import MASKS


def ref_attention(q, k, v, dense, scale=None):
    """float64 softmax attention with a bool mask; empty rows give zeros."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    H, KVH = q.shape[1], k.shape[1]
    k = np.repeat(k, H // KVH, axis=1)
    v = np.repeat(v, H // KVH, axis=1)
    s = q @ k.transpose(0, 1, 3, 2) * (scale if scale else 1 / math.sqrt(q.shape[-1]))
    s = np.where(dense, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.exp(s - m)
    z = p.sum(-1, keepdims=True)
    out = np.where(z > 0, (p @ v) / np.where(z > 0, z, 1), 0)
    lse = np.where(z[..., 0] > 0, np.log(np.where(z[..., 0] > 0, z[..., 0], 1)) + m[..., 0],
                   -np.inf)
    return out, lse


def test_version_matches_library():
    path = fm._lib.lib._name
    if not os.environ.get("FLEXMASK_LIBRARY"):  # the installed package carries its library
        assert path == os.path.join(os.path.dirname(fm.__file__), "libflexmask.so")
    lib = ctypes.CDLL(path)
    lib.fm_version.restype = ctypes.c_char_p
    assert fm.__version__ == lib.fm_version().decode() == "0.1.0"


def test_compile_masks_scores_repr_and_print():
    p = fm.compile("param w = 4;\nmask one = kv <= q;\nmask two = q - kv < w;", name="two.mask")
    assert p.masks == ["one", "two"]
    assert p.scores == []
    assert repr(p) == "<flexmask.Program 'two.mask' masks=['one', 'two']>"
    assert "mask two = q - kv < w;" in str(p)


def test_compile_file():
    p = fm.compile_file(os.path.join(MASKS, "sliding_window.mask"))
    assert p.masks == ["local", "sliding_window"]
    assert p.name.endswith("sliding_window.mask")


def test_block_mask_properties_and_dense():
    p = fm.compile_file(os.path.join(MASKS, "sliding_window.mask"))
    bm = fm.block_mask(p, q_len=300, kv_len=300, block_size=(64, 32), params={"window": 50})
    assert bm.shape == (1, 1, 300, 300)
    assert bm.block_size == (64, 32)
    c = bm.counts
    assert set(c) == {"full", "partial", "empty"}
    assert sum(c.values()) == 5 * 10
    assert bm.evaluations >= 0
    d = bm.to_dense()
    assert d.dtype == np.bool_ and d.shape == (1, 1, 300, 300)
    q, kv = np.mgrid[:300, :300]
    np.testing.assert_array_equal(d[0, 0], (kv <= q) & (q - kv < 50))
    r = repr(bm)
    assert r.startswith("<flexmask.BlockMask mask='sliding_window', shape=(1, 1, 300, 300), "
                        "block_size=(64, 32), full=")
    assert bm.eval(0, 0, 10, 5) and not bm.eval(0, 0, 5, 10)


def test_block_mask_default_mask_params_inputs_numpy_and_torch():
    p = fm.compile_file(os.path.join(MASKS, "document.mask"))
    doc = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    for arr in (doc, doc.astype(np.int16), torch.tensor(doc), torch.tensor(doc, dtype=torch.int32)):
        bm = fm.block_mask(p, q_len=8, block_size=2, inputs={"doc": arr})
        assert bm.mask_name == "document"  # the last mask of the file
        d = bm.to_dense()[0, 0]
        q, kv = np.mgrid[:8, :8]
        np.testing.assert_array_equal(d, (kv <= q) & (doc[q] == doc[kv]))


def test_block_mask_batch_heads_and_max_evaluations():
    p = fm.compile("input n[BATCH];\nmask m = kv < n[b] && (h == 0 || kv <= q);")
    bm = fm.block_mask(p, q_len=64, batch=2, heads=3, block_size=16,
                       inputs={"n": np.array([10, 64])})
    d = bm.to_dense()
    assert d.shape == (2, 3, 64, 64)
    assert d[0, 0, 0, 9] and not d[0, 0, 0, 10] and not d[1, 1, 0, 1] and d[1, 0, 0, 63]
    with pytest.raises(fm.FlexmaskError, match="evaluation"):
        fm.block_mask(fm.compile("mask m = (q * 7 + kv * 3) % 5 != 0;"), q_len=4096,
                      max_evaluations=1000)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 2e-3)])
def test_attention_numpy(dtype, tol):
    p = fm.compile_file(os.path.join(MASKS, "sliding_window.mask"))
    bm = fm.block_mask(p, q_len=150, kv_len=150, batch=2, heads=4, block_size=32,
                       params={"window": 40})
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 4, 150, 64)).astype(dtype)
    k = rng.standard_normal((2, 2, 150, 64)).astype(dtype)  # GQA
    v = rng.standard_normal((2, 2, 150, 64)).astype(dtype)
    out, lse = fm.attention(q, k, v, bm, return_lse=True, scale=0.1)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and lse.dtype == np.float32
    ro, rl = ref_attention(q, k, v, bm.to_dense(), scale=0.1)
    assert np.abs(out.astype(np.float64) - ro).max() < tol
    assert np.abs(lse - rl).max() < 1e-4


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-3),
                                       (torch.bfloat16, 2e-2)])
def test_attention_torch_zero_copy_strides(dtype, tol):
    p = fm.compile("mask causal = kv <= q;")
    bm = fm.block_mask(p, q_len=100, kv_len=130, batch=2, heads=4, block_size=32)
    # [B, S, H, D] memory, as Transformers holds it: permuted strides, no copy.
    base_q = torch.randn(2, 100, 4, 32, dtype=dtype)
    base_k = torch.randn(2, 130, 2, 32, dtype=dtype)
    q, k = base_q.transpose(1, 2), base_k.transpose(1, 2)
    assert not q.is_contiguous()
    out, lse = fm.attention(q, k, k, bm, return_lse=True)
    assert out.dtype == dtype and out.shape == (2, 4, 100, 32) and lse.dtype == torch.float32
    ro, rl = ref_attention(q.float().numpy(), k.float().numpy(), k.float().numpy(), bm.to_dense())
    assert np.abs(out.float().numpy() - ro).max() < tol
    finite = np.isfinite(rl)
    assert np.abs(lse.numpy()[finite] - rl[finite]).max() < 1e-3


def test_attention_broadcast_batch_heads_equals_full_shape():
    p = fm.compile("mask causal = kv <= q;")
    small = fm.block_mask(p, q_len=70, block_size=32)
    big = fm.block_mask(p, q_len=70, batch=3, heads=4, block_size=32)
    q = torch.randn(3, 4, 70, 16)
    k = torch.randn(3, 2, 70, 16)
    o1, l1 = fm.attention(q, k, k, small, return_lse=True)
    o2, l2 = fm.attention(q, k, k, big, return_lse=True)
    assert torch.equal(o1, o2) and torch.equal(l1, l2)


def test_empty_rows_give_zeros_and_minus_inf_lse():
    p = fm.compile("mask m = q >= 10 && kv <= q;")
    bm = fm.block_mask(p, q_len=32, block_size=16)
    q = torch.randn(1, 1, 32, 8)
    out, lse = fm.attention(q, q, q, bm, return_lse=True)
    assert torch.all(out[0, 0, :10] == 0) and torch.all(torch.isinf(lse[0, 0, :10]))


def test_threads_and_determinism():
    assert fm.get_num_threads() >= 1
    p = fm.compile("mask causal = kv <= q;")
    bm = fm.block_mask(p, q_len=256, heads=2, block_size=64)
    q = torch.randn(1, 2, 256, 64)
    try:
        fm.set_num_threads(1)
        assert fm.get_num_threads() == 1
        a = fm.attention(q, q, q, bm)
        fm.set_num_threads(2)
        assert fm.get_num_threads() == 2
        b = fm.attention(q, q, q, bm)
    finally:
        fm.set_num_threads(0)
    assert torch.equal(a, b)  # bit for bit for every thread count
    with pytest.raises(fm.FlexmaskError):
        fm.set_num_threads(-1)


def test_tree_tables():
    enter, leave, depth = fm.tree_tables([-1, 0, 1, 0, 3, 3])
    assert depth.tolist() == [0, 1, 2, 1, 2, 2]
    assert enter.tolist() == [0, 1, 2, 3, 4, 5] and leave.tolist() == [5, 2, 2, 5, 4, 5]


def test_calls_release_the_gil():
    # ctypes releases the GIL around a foreign call unless the function is
    # flagged as a Python-API one (PyDLL); every call goes through these.
    from flexmask import _attention
    assert type(fm._lib.lib) is ctypes.CDLL
    for f in (_attention._raw, fm._lib.lib.fm_blockmask_build, fm._lib.lib.fm_compile_string):
        assert f._flags_ & ctypes._FUNCFLAG_PYTHONAPI == 0
