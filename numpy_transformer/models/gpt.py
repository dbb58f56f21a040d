"""GPT: a decoder-only, causal language model (Radford et al., 2018/2019).

    x = Embed(ids) + Pos                         (B, T, C)
    x = Block_l(x), l = 1..L                     causal self-attention + FFN, pre-LN
    logits = LayerNorm(x) E^T (+ b)              (B, T, V), E tied to the embedding by default
    loss = cross-entropy(logits[:, t], ids[:, t+1])   (the caller shifts the targets)
"""
from dataclasses import dataclass

import numpy as np

from ..flat import gather_model
from ..layers.base import Layer
from ..layers.input_embedding import InputEmbedding
from ..layers.layernorm import LayerNorm
from ..layers.loss import CrossEntropyLoss
from ..layers.output import OutputProjection
from ..layers.transformer_layers import EncoderLayer
from .common import check_config, check_ids, hidden_width, output_gradient


@dataclass
class GPTConfig:
    vocab_size: int = 65
    max_len: int = 128          # the longest sequence (block size)
    width: int = 128            # C
    num_heads: int = 4          # H; head size D = C / H
    num_layers: int = 4         # L
    ffn_hidden: int = 0         # F; 0 means 4 C
    dropout: float = 0.0
    activation: str = "gelu_tanh"
    positional: str = "learned"
    pre_norm: bool = True
    tie_weights: bool = True
    layer_norm_eps: float = 1e-5
    ignore_index: int = -100
    label_smoothing: float = 0.0
    dtype: str = "float32"
    seed: int = 0


def kv_cache_length(kv_cache):
    """How many positions a KV cache already holds."""
    k = kv_cache[0]["k"]
    return 0 if k is None else k.shape[2]


class GPT(Layer):
    def __init__(self, config: GPTConfig):
        super().__init__()
        check_config(config)
        self.config = config
        rng = np.random.default_rng(config.seed)
        dtype = np.dtype(config.dtype)
        C = config.width
        self.embed = InputEmbedding(config.vocab_size, config.max_len, C, rng, positional=config.positional,
                                    dropout=config.dropout, dtype=dtype)
        self.blocks = [EncoderLayer(C, config.num_heads, hidden_width(config), rng, pre_norm=config.pre_norm,
                                    dropout=config.dropout, activation=config.activation,
                                    eps=config.layer_norm_eps, dtype=dtype)
                       for _ in range(config.num_layers)]
        # pre-LN leaves the residual stream un-normalised, so a final LayerNorm comes before the head
        self.final_norm = LayerNorm(C, config.layer_norm_eps, dtype) if config.pre_norm else None
        self.head = OutputProjection(C, config.vocab_size, rng, tie_to=self.embed.tokens if config.tie_weights else None,
                                     bias=False, dtype=dtype)
        self.loss_fn = CrossEntropyLoss(config.ignore_index, config.label_smoothing)
        gather_model(self)      # parameters in one buffer, gradients in another: faster optimiser steps (flat.py)

    def children(self):
        kids = [("embed", self.embed)]
        kids += [(f"blocks.{i}", block) for i, block in enumerate(self.blocks)]
        if self.final_norm is not None:
            kids.append(("final_norm", self.final_norm))
        return kids + [("head", self.head)]

    def forward(self, ids, targets=None, rng=None, kv_cache=None):
        """ids: (B, T) -> (logits (B, T, V), loss or None). targets: (B, T), already shifted.

        kv_cache: for generation, the list from new_kv_cache(); ids are then only the NEW tokens,
        placed after the cached ones. No backward is possible after such a forward.
        """
        offset = 0 if kv_cache is None else kv_cache_length(kv_cache)
        ids = check_ids(ids, self.config.max_len - offset)
        x = self.embed.forward(ids, offset=offset, rng=rng)         # (B, T, C)
        for i, block in enumerate(self.blocks):
            layer_cache = None if kv_cache is None else kv_cache[i]
            x = block.forward(x, causal=True, rng=rng, kv_cache=layer_cache)   # (B, T, C)
        if self.final_norm is not None:
            x = self.final_norm.forward(x)                          # (B, T, C)
        logits = self.head.forward(x)                               # (B, T, V)
        loss = None
        if targets is not None:
            loss = self.loss_fn.forward(logits, targets)            # scalar
        self.cache = (targets is not None,)
        return logits, loss

    def backward(self, dlogits=None):
        """Fill every parameter's gradient (added into dparams). Starts from the loss, or from dlogits."""
        (has_loss,) = self.pop_cache()
        dlogits = output_gradient(self.loss_fn, has_loss, dlogits)            # (B, ...) from the loss
        dx = self.head.backward(dlogits)                            # (B, T, C)
        if self.final_norm is not None:
            dx = self.final_norm.backward(dx)                       # (B, T, C)
        for block in reversed(self.blocks):
            dx = block.backward(dx)                                 # (B, T, C)
        self.embed.backward(dx)

    def new_kv_cache(self):
        """An empty key/value cache: one dict per block, filled by forward(..., kv_cache=cache)."""
        return [{"k": None, "v": None} for _ in self.blocks]

    def attention_maps(self):
        """[(B, H, T, T) per layer] from the last forward: row t is what position t attended to."""
        return [block.attention_weights for block in self.blocks]
