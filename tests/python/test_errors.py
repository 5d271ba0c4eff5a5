"""Bad input from Python raises FlexmaskError with the library's message;
nothing crashes the interpreter (each case runs in this process)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import flexmask as fm

CAUSAL = "mask causal = kv <= q;"


@pytest.fixture
def bm():
    return fm.block_mask(fm.compile(CAUSAL), q_len=64, heads=2, block_size=32)


def test_error_is_value_error_with_located_text_and_json_records():
    with pytest.raises(fm.FlexmaskError) as ei:
        fm.compile("param w = 3;\nmask x = kv <= qq;", name="t.mask")
    e = ei.value
    assert isinstance(e, ValueError)
    assert str(e) == ("t.mask:2:16: error: unknown name 'qq'\nmask x = kv <= qq;\n"
                      "               ^^\nhint: did you mean 'q'?")
    assert e.diagnostics == [{"file": "t.mask", "line": 2, "col": 16, "end_line": 2,
                              "end_col": 18, "severity": "error",
                              "message": "unknown name 'qq'", "hint": "did you mean 'q'?"}]


def test_compile_file_missing():
    with pytest.raises(fm.FlexmaskError, match="no_such.mask"):
        fm.compile_file("/nonexistent/no_such.mask")


def test_unknown_mask_name():
    p = fm.compile("mask causal = kv <= q;\nmask full = true;", name="m.mask")
    with pytest.raises(fm.FlexmaskError, match="no mask named 'casual'") as ei:
        fm.block_mask(p, "casual", q_len=8)
    assert ei.value.diagnostics[0]["hint"] == "did you mean 'causal'?"


@pytest.mark.parametrize("value,match", [(1.5, "got the float 1.5"), ("8", "got str"),
                                         (True, "got a bool"), (None, "got NoneType")])
def test_param_of_wrong_type(value, match):
    p = fm.compile("param w = 4;\nmask m = q - kv < w;")
    with pytest.raises(fm.FlexmaskError, match=match):
        fm.block_mask(p, q_len=8, params={"w": value})


def test_unknown_param_and_input_names():
    p = fm.compile("param w = 4;\ninput d[KV_LEN];\nmask m = q - kv < w && d[kv] > 0;")
    with pytest.raises(fm.FlexmaskError, match="no param named 'ww'"):
        fm.block_mask(p, q_len=8, params={"ww": 1}, inputs={"d": np.ones(8)})
    with pytest.raises(fm.FlexmaskError, match="no input named 'dd'"):
        fm.block_mask(p, q_len=8, inputs={"dd": np.ones(8, np.int32)})


def test_bad_inputs():
    p = fm.compile("input d[KV_LEN];\nmask m = d[q] == d[kv];")
    with pytest.raises(fm.FlexmaskError, match=r"bound with shape \[5\]"):
        fm.block_mask(p, q_len=8, inputs={"d": np.zeros(5, np.int32)})
    with pytest.raises(fm.FlexmaskError, match="float arrays"):
        fm.block_mask(p, q_len=8, inputs={"d": np.zeros(8, np.float32)})
    with pytest.raises(fm.FlexmaskError, match="fit int32"):
        fm.block_mask(p, q_len=8, inputs={"d": np.full(8, 2**40)})
    with pytest.raises(fm.FlexmaskError, match="is not bound|no value|not bound"):
        fm.block_mask(p, q_len=8)


def test_safety_violation_is_reported():
    p = fm.compile("input d[KV_LEN];\nmask m = d[q + 1] > 0;")
    with pytest.raises(fm.FlexmaskError, match="reaches 8"):
        fm.block_mask(p, q_len=8, inputs={"d": np.zeros(8, np.int32)})


@pytest.mark.parametrize("kw,match", [({"q_len": 0}, "."), ({"q_len": 8.0}, "q_len must be an int"),
                                      ({"q_len": 8, "block_size": 0}, "positive"),
                                      ({"q_len": 8, "block_size": (8, 8, 8)}, "pair"),
                                      ({"q_len": 8, "max_evaluations": 0}, "positive")])
def test_bad_shapes_and_options(kw, match):
    with pytest.raises(fm.FlexmaskError, match=match):
        fm.block_mask(fm.compile(CAUSAL), **kw)


def test_attention_wrong_dtype(bm):
    q = torch.zeros(1, 2, 64, 16, dtype=torch.int32)
    with pytest.raises(fm.FlexmaskError, match="dtype torch.int32"):
        fm.attention(q, q, q, bm)
    with pytest.raises(fm.FlexmaskError, match="dtype float64"):
        x = np.zeros((1, 2, 64, 16))
        fm.attention(x, x, x, bm)


def test_attention_wrong_rank_and_shape(bm):
    q = torch.zeros(2, 64, 16)
    with pytest.raises(fm.FlexmaskError, match="rank 4"):
        fm.attention(q, q, q, bm)
    q = torch.zeros(1, 2, 63, 16)
    with pytest.raises(fm.FlexmaskError, match="Q_LEN 64"):
        fm.attention(q, q, q, bm)
    q = torch.zeros(1, 2, 64, 16)
    k = torch.zeros(1, 2, 64, 8)
    with pytest.raises(fm.FlexmaskError):
        fm.attention(q, k, k, bm)


def test_attention_device(bm):
    q = torch.zeros(1, 2, 64, 16, device="meta")
    with pytest.raises(fm.FlexmaskError, match="no GPU path usable from Python"):
        fm.attention(q, q, q, bm)


def test_attention_strides_it_cannot_take(bm):
    x = np.zeros((1, 2, 64, 16), np.float32)[:, :, ::-1]  # negative stride
    with pytest.raises(fm.FlexmaskError, match="negative stride"):
        fm.attention(x, x, x, bm)
    raw = np.zeros(1 * 2 * 64 * 16 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(1, 2, 64, 16)
    fm.attention(raw, raw, raw, bm)  # unaligned but element strides: accepted


def test_attention_mixed_types_and_bad_mask(bm):
    q = torch.zeros(1, 2, 64, 16)
    with pytest.raises(fm.FlexmaskError, match="must be a torch tensor"):
        fm.attention(q, np.zeros((1, 2, 64, 16), np.float32), q, bm)
    with pytest.raises(fm.FlexmaskError, match="flexmask.BlockMask"):
        fm.attention(q, q, q, "causal")


def test_no_autograd_yet(bm):
    q = torch.zeros(1, 2, 64, 16, requires_grad=True)
    with pytest.raises(fm.FlexmaskError, match="no backward pass"):
        fm.attention(q, q, q, bm)
    with torch.no_grad():
        fm.attention(q, q, q, bm)


def test_score_modifiers_not_supported_yet(bm):
    q = torch.zeros(1, 2, 64, 16)
    with pytest.raises(fm.FlexmaskError, match="score modifiers are not supported yet"):
        fm.attention(q, q, q, bm, score="softcap")
    with pytest.raises(fm.FlexmaskError, match="score modifiers are not supported yet"):
        fm.score_mod(fm.compile(CAUSAL), "softcap")
    with pytest.raises(fm.FlexmaskError, match="positive"):
        fm.attention(q, q, q, bm, scale=-1.0)
