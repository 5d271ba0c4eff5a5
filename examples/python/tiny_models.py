"""Tiny random decoder models of four Transformers families (nothing is
downloaded), built in pairs with identical weights: one per attention
implementation."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Tuple

import torch
from transformers import (AutoModelForCausalLM, Gemma2Config, LlamaConfig, MistralConfig,
                          Qwen2Config)

COMMON: Dict[str, Any] = dict(vocab_size=128, hidden_size=64, intermediate_size=128,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              max_position_embeddings=512)


def configs() -> Dict[str, Any]:
    """The four model classes; Mistral and Gemma 2 with small sliding windows
    so their sliding layers mask something, Gemma 2 without soft-capping
    (a score modifier flexmask does not support yet)."""
    return {
        "llama": LlamaConfig(**COMMON),
        "qwen2": Qwen2Config(**COMMON),
        "mistral": MistralConfig(**COMMON, sliding_window=7),
        "gemma2": Gemma2Config(**COMMON, head_dim=16, sliding_window=6,
                               attn_logit_softcapping=None, final_logit_softcapping=None,
                               query_pre_attn_scalar=20,
                               layer_types=["sliding_attention", "full_attention"]),
    }


def reference(cfg: Any) -> str:
    """sdpa, or eager for the classes Transformers gives no sdpa (Gemma 2)."""
    return "eager" if cfg.model_type == "gemma2" else "sdpa"


def pair(cfg: Any, impl: str = "flexmask", ref: str = "", seed: int = 0) -> Tuple[Any, Any]:
    """(model with impl, model with ref: sdpa or eager) sharing random weights;
    each gets its own copy of the config (from_config writes the choice into it)."""
    ref = ref or reference(cfg)
    torch.manual_seed(seed)
    a = AutoModelForCausalLM.from_config(copy.deepcopy(cfg), attn_implementation=ref).eval()
    b = AutoModelForCausalLM.from_config(copy.deepcopy(cfg), attn_implementation=impl).eval()
    b.load_state_dict(a.state_dict())
    return b, a


def additive(dense: torch.Tensor) -> torch.Tensor:
    """A bool [B, H, Q, KV] mask as the 4-D float mask sdpa models take."""
    return torch.where(dense, 0.0, float("-inf"))


NAMES: List[str] = ["llama", "qwen2", "mistral", "gemma2"]
