"""to_torch / mask_mod / from_torch / dense import against torch's own."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

import flexmask as fm
from conftest import MASKS, SHAPES, STD, STD_IDS

BS = 64


def _build(std, shape, rng):
    B, H, Q, KV = shape
    params, inputs, ref = std.make(B, H, Q, KV, rng)
    prog = fm.compile_file(os.path.join(MASKS, std.file))
    bm = fm.block_mask(prog, std.mask, batch=B, heads=H, q_len=Q, kv_len=KV, block_size=BS,
                       params=params, inputs=inputs)
    return prog, bm, params, inputs, ref


def _rows(num, idx):
    """Each row's listed blocks as a sorted tuple (order past the count is free)."""
    B, H, nq = num.shape
    return [[[tuple(sorted(idx[b, h, i, : int(num[b, h, i])].tolist())) for i in range(nq)]
             for h in range(H)] for b in range(B)]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[2]}x{s[3]}" for s in SHAPES])
@pytest.mark.parametrize("std", STD, ids=STD_IDS)
def test_to_torch_tiles_equal_create_block_mask(std, shape):
    rng = np.random.default_rng(1)
    _, bm, _, _, ref = _build(std, shape, rng)
    B, H, Q, KV = shape
    mine = bm.to_torch()
    theirs = create_block_mask(ref, B, H, Q, KV, device="cpu", BLOCK_SIZE=BS)
    assert mine.BLOCK_SIZE == theirs.BLOCK_SIZE == (BS, BS)
    assert tuple(mine.seq_lengths) == (Q, KV)
    for num, idx in (("kv_num_blocks", "kv_indices"), ("full_kv_num_blocks", "full_kv_indices")):
        a_num = getattr(mine, num).expand(B, H, -1)
        a_idx = getattr(mine, idx).expand(B, H, -1, -1)
        b_num, b_idx = getattr(theirs, num), getattr(theirs, idx)
        assert torch.equal(a_num, b_num), (num, a_num, b_num)
        assert _rows(a_num, a_idx) == _rows(b_num, b_idx)


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[2]}x{s[3]}" for s in SHAPES])
@pytest.mark.parametrize("std", STD, ids=STD_IDS)
def test_flex_attention_equals_fm_attention_and_sdpa(std, shape):
    rng = np.random.default_rng(2)
    _, bm, _, _, _ = _build(std, shape, rng)
    B, H, Q, KV = shape
    q = torch.randn(B, H, Q, 32)
    k = torch.randn(B, H, KV, 32)
    v = torch.randn(B, H, KV, 32)
    dense = torch.from_numpy(bm.to_dense())
    mine = fm.attention(q, k, v, bm)
    flex = flex_attention(q, k, v, block_mask=bm.to_torch())
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense)
    empty = ~dense.any(-1, keepdim=True)  # SDPA gives NaN on rows that see nothing
    sdpa = torch.where(empty, 0.0, sdpa)
    assert (mine - sdpa).abs().max().item() < 1e-5
    assert (flex - sdpa).abs().max().item() < 1e-5
    assert (flex - mine).abs().max().item() < 1e-5


def _points(shape, n, gen):
    B, H, Q, KV = shape
    return [torch.randint(0, s, (n,), generator=gen) for s in (B, H, Q, KV)]


@pytest.mark.parametrize("std", STD, ids=STD_IDS)
def test_generated_mask_mod_equals_c_evaluator_1e5_points(std):
    shape = (2, 2, 333, 400)
    rng = np.random.default_rng(3)
    _, bm, _, _, _ = _build(std, shape, rng)
    mm = bm.to_torch().mask_mod
    dense = torch.from_numpy(bm.to_dense())  # partial tiles evaluated by the C evaluator
    b, h, q, kv = _points(shape, 100_000, torch.Generator().manual_seed(4))
    got = mm(b, h, q, kv)
    assert got.dtype == torch.bool
    assert torch.equal(got, dense[b, h, q, kv])
    for i in range(0, 100_000, 9973):  # and point by point through fm_blockmask_eval
        assert bool(got[i]) == bm.eval(int(b[i]), int(h[i]), int(q[i]), int(kv[i]))


ARITH = """
param c = -7;
param z = 0;
input t[KV_LEN];
mask neg_div   = (q - kv) / 3 % 2 == 0;
mask neg_mod   = (kv - q) % -5 > -3 && (q - kv) / -4 != 2;
mask by_minus1 = (q - 3 * kv) / -1 > 0 || (q + kv) % -1 != 0;
mask params    = (q + c) / 2 < (kv + c) % 3 + kv / 4;
mask guarded   = kv != 0 && q / kv > 1 && t[q % 7 + kv - kv] < 3;
mask guarded2  = (z != 0 && q / z > 1) || kv <= q;
mask sel       = q > kv ? t[kv] == t[q] : min(q, kv) / max(1, abs(q - kv - 5)) % 2 == 0;
mask arr       = q < 10 || t[q - 10] > t[kv];
"""


@pytest.mark.parametrize("name", ["neg_div", "neg_mod", "by_minus1", "params", "guarded",
                                  "guarded2", "sel", "arr"])
def test_mask_mod_negative_division_and_guards_1e5_points(name):
    prog = fm.compile(ARITH, name="arith.mask")
    Q, KV = 300, 310
    t = np.random.default_rng(5).integers(-4, 6, KV)
    inputs = {"t": t} if name in ("guarded", "sel", "arr") else {}
    bm = fm.block_mask(prog, name, q_len=Q, kv_len=KV, block_size=32, inputs=inputs)
    dense = torch.from_numpy(bm.to_dense())
    mm = fm.mask_mod(prog, name, inputs=inputs, q_len=Q, kv_len=KV)
    b, h, q, kv = _points((1, 1, Q, KV), 100_000, torch.Generator().manual_seed(6))
    assert torch.equal(mm(b, h, q, kv), dense[b, h, q, kv])
    # Python's own integers are the spec's: check the negative operands directly.
    qq, kk = 5, 17
    if name == "neg_div":
        assert bool(mm(*(torch.tensor(x) for x in (0, 0, qq, kk)))) == ((qq - kk) // 3 % 2 == 0)


def test_mask_mod_params_override_and_source():
    prog = fm.compile_file(os.path.join(MASKS, "sliding_window.mask"))
    mm = fm.mask_mod(prog, params={"window": 3})
    q, kv = torch.arange(10)[:, None], torch.arange(10)[None, :]
    z = torch.tensor(0)
    np.testing.assert_array_equal(mm(z, z, q, kv).numpy(),
                                  ((kv <= q) & (q - kv < 3)).numpy())
    with pytest.raises(fm.FlexmaskError, match="no param 'windw'"):
        fm.mask_mod(prog, params={"windw": 3})


def test_to_torch_under_torch_compile():
    prog = fm.compile_file(os.path.join(MASKS, "document.mask"))
    doc = np.repeat(np.arange(4), 64).astype(np.int32)
    bm = fm.block_mask(prog, q_len=256, block_size=128, inputs={"doc": doc})
    q = torch.randn(1, 2, 256, 16)
    compiled = torch.compile(flex_attention)
    out = compiled(q, q, q, block_mask=bm.to_torch())
    assert (out - fm.attention(q, q, q, bm)).abs().max().item() < 1e-5


def test_from_torch_round_trip():
    doc = torch.repeat_interleave(torch.arange(3), torch.tensor([50, 90, 60]))

    def mm(b, h, q, kv):
        return (kv <= q) & (doc[q] == doc[kv])

    tbm = create_block_mask(mm, 1, 1, 200, 200, device="cpu", BLOCK_SIZE=64)
    bm = fm.from_torch(tbm)
    assert bm.shape == (1, 1, 200, 200) and bm.block_size == (64, 64)
    q, kv = torch.arange(200)[:, None], torch.arange(200)[None, :]
    np.testing.assert_array_equal(bm.to_dense()[0, 0], mm(0, 0, q, kv).numpy())
    back = bm.to_torch()
    assert torch.equal(back.kv_num_blocks, tbm.kv_num_blocks)
    assert torch.equal(back.full_kv_num_blocks, tbm.full_kv_num_blocks)
    with pytest.raises(fm.FlexmaskError, match="torch's BlockMask"):
        fm.from_torch(bm)


@pytest.mark.parametrize("kind", ["bool", "additive", "torch-bool", "rank2", "rank3"])
def test_block_mask_from_dense(kind):
    rng = np.random.default_rng(7)
    m = rng.random((2, 3, 70, 90)) < 0.3
    m[:, :, :, :20] = True
    if kind == "bool":
        arr, want = m, m
    elif kind == "additive":
        arr, want = np.where(m, 0.0, -np.inf).astype(np.float32), m
    elif kind == "torch-bool":
        arr, want = torch.from_numpy(m), m
    elif kind == "rank2":
        arr, want = m[0, 0], m[:1, :1]
    else:
        arr, want = m[0], m[:1]
    bm = fm.block_mask_from_dense(arr, block_size=32)
    np.testing.assert_array_equal(bm.to_dense(), want)
    q = torch.randn(*bm.shape[:2], 70, 16)
    k = torch.randn(*bm.shape[:2], 90, 16)
    flex = flex_attention(q, k, k, block_mask=bm.to_torch())
    assert (flex - fm.attention(q, k, k, bm)).abs().max().item() < 1e-5
    with pytest.raises(fm.FlexmaskError, match=r"element \[0, 0\] is 0.5"):
        fm.block_mask_from_dense(np.full((4, 4), 0.5, np.float32))


def test_attention_is_a_custom_op_without_graph_break():
    prog = fm.compile("mask causal = kv <= q;")
    bm = fm.block_mask(prog, q_len=64, heads=2, block_size=32)

    def layer(x, w):
        q = x @ w
        return fm.attention(q, q, q, bm, scale=0.25).relu() + 1

    x, w = torch.randn(1, 2, 64, 16), torch.randn(16, 16)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")  # fails on a break
    with torch.no_grad():
        assert torch.equal(compiled(x, w), layer(x, w))
    out, lse = torch.ops.flexmask.attention(x, x, x, bm._op_id, 0.0)
    assert torch.equal(out, fm.attention(x, x, x, bm))
