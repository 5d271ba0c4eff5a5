"""Transformers: attn_implementation="flexmask" against sdpa (eager for
Gemma 2) on tiny random models; the seeds of examples/python."""
from __future__ import annotations

import copy

import pytest
import torch

import flexmask as fm
import tiny_models
from tiny_models import NAMES

fm.transformers.register()


def test_register_installs_both_hooks():
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface
    assert AttentionInterface._global_mapping["flexmask"] is fm.transformers.attention_function
    assert AttentionMaskInterface._global_mapping["flexmask"] is fm.transformers.mask_function
    fm.transformers.register(name="fm2")
    assert AttentionInterface._global_mapping["fm2"] is fm.transformers.attention_function


def _batch():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 128, (3, 19), generator=g)
    am = torch.ones(3, 19, dtype=torch.long)
    am[0, :6] = 0  # left padding
    am[2, :1] = 0
    return ids, am


@pytest.mark.parametrize("name", NAMES)
def test_own_masks_left_padding_and_sliding_layers(name):
    model, ref = tiny_models.pair(tiny_models.configs()[name])
    ids, am = _batch()
    with torch.no_grad():
        mine = model(ids, attention_mask=am).logits
        theirs = ref(ids, attention_mask=am).logits
        plain_mine = model(ids).logits  # no padding mask at all
        plain_theirs = ref(ids).logits
    real = am.bool()
    assert (mine[real] - theirs[real]).abs().max().item() < 1e-4
    assert (plain_mine - plain_theirs).abs().max().item() < 1e-4


def test_sliding_layers_are_built_from_the_mask_language():
    """Transformers' sliding-window mask function is recognised (not evaluated
    densely): the BlockMask comes from the mask program and equals the dense
    evaluation of Transformers' own function."""
    from transformers import masking_utils as mu
    fn = mu.sliding_window_causal_mask_function(5)
    assert fm.transformers._sliding_window_of(fn) == 5
    assert fm.transformers._sliding_window_of(mu.causal_mask_function) is None
    assert fm.transformers._sliding_window_of(mu.and_masks(mu.causal_mask_function,
                                                           mu.causal_mask_function)) is None
    am = torch.ones(2, 40, dtype=torch.long)
    am[1, :3] = 0
    for q_len, kv_len, q_off in ((40, 40, 0), (1, 41, 40)):
        pad = am if kv_len == 40 else torch.cat([am, torch.ones(2, 1, dtype=torch.long)], 1)
        bm = fm.transformers.mask_function(batch_size=2, q_length=q_len, kv_length=kv_len,
                                           q_offset=q_off, kv_offset=0, mask_function=fn,
                                           attention_mask=pad)
        assert bm.mask_name == "sliding_padded"  # the mask program, not a dense import
        dense = mu.sdpa_mask(batch_size=2, q_length=q_len, kv_length=kv_len, q_offset=q_off,
                             kv_offset=0, mask_function=fn, attention_mask=pad,
                             allow_is_causal_skip=False, allow_is_bidirectional_skip=False,
                             use_vmap=False, device="cpu")
        got = bm.to_dense()
        assert (got == dense.expand(got.shape).numpy()).all()


@pytest.mark.parametrize("name", NAMES)
def test_greedy_generate_20_tokens_with_kv_cache(name):
    model, ref = tiny_models.pair(tiny_models.configs()[name])
    ids, am = _batch()
    kw = dict(attention_mask=am, max_new_tokens=20, do_sample=False, use_cache=True,
              pad_token_id=0)
    with torch.no_grad():
        mine = model.generate(ids, **kw)
        theirs = ref.generate(ids, **kw)
    assert mine.shape == (3, 39)
    assert torch.equal(mine, theirs)


@pytest.mark.parametrize("name", NAMES)
def test_user_block_mask_is_the_whole_mask(name):
    import token_tree
    token_tree.main(name)


def test_seed_token_tree():
    import token_tree
    assert token_tree.main() < 1e-4


def test_seed_batched_prefill():
    import batched_prefill
    assert batched_prefill.main() < 1e-5


def test_seed_packed_encoder():
    import packed_encoder
    assert packed_encoder.main() < 1e-4


def test_seed_four_models():
    import four_models
    errs = four_models.main()
    assert set(errs) == set(NAMES) and max(errs.values()) < 1e-4


def test_softcap_is_refused():
    cfg = copy.deepcopy(tiny_models.configs()["gemma2"])
    cfg.attn_logit_softcapping = 50.0
    model, _ = tiny_models.pair(cfg)
    with torch.no_grad(), pytest.raises(fm.FlexmaskError, match="softcap=50.0"):
        model(torch.tensor([[1, 2, 3]]))


def test_dropout_and_wrong_mask_are_refused():
    q = torch.zeros(1, 2, 4, 8)
    bm = fm.block_mask(fm.compile("mask causal = kv <= q;"), q_len=4)
    with pytest.raises(fm.FlexmaskError, match="dropout=0.1"):
        fm.transformers.attention_function(None, q, q, q, bm, dropout=0.1)
    with pytest.raises(fm.FlexmaskError, match="must be a flexmask BlockMask"):
        fm.transformers.attention_function(None, q, q, q, torch.zeros(1, 1, 4, 4))
    out, w = fm.transformers.attention_function(None, q, q, q, bm, scaling=0.5)
    assert out.shape == (1, 4, 2, 8) and w is None


def test_own_masks_are_built_for_the_models_batch_and_heads():
    from transformers import masking_utils as mu
    cfg = tiny_models.configs()["llama"]
    am = torch.ones(3, 9, dtype=torch.bool)
    am[0, :4] = False
    bm = fm.transformers.mask_function(batch_size=3, q_length=5, kv_length=9, q_offset=4,
                                       kv_offset=0, mask_function=mu.causal_mask_function,
                                       attention_mask=am, config=cfg)
    assert bm.mask_name == "causal_padded" and bm.shape == (3, 4, 5, 9)
    assert bm.broadcast == (False, True)  # one slice for every head
    d = bm.to_dense()
    assert not d[0, 0, :, :4].any() and d[0, 0, 4, 4:].tolist() == [True] * 5
    assert d[1, 3, 0].tolist() == [True] * 5 + [False] * 4  # query 0 sits at position 4
    sw = fm.transformers.mask_function(batch_size=1, q_length=9, kv_length=9,
                                       mask_function=mu.sliding_window_causal_mask_function(3),
                                       attention_mask=None, config=cfg)
    assert sw.shape == (1, 4, 9, 9)
    assert sw.to_dense()[0, 0, 8].tolist() == [False] * 6 + [True] * 3
