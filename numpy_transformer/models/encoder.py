"""A BERT-style bidirectional encoder (Devlin et al., 2019) with a masked-LM and a classification head.

    x = LayerNorm(Embed(ids) + Pos (+ TokenType))        (B, T, C)
    x = EncoderLayer_l(x, padding mask), l = 1..L        bidirectional self-attention + FFN, post-LN
    head="mlm":      logits = LayerNorm(GELU(x Wt + bt)) E^T + b      (B, T, V)
    head="classify": logits = tanh(x[:, 0] Wp + bp) Wc + bc           (B, num_classes), x[:, 0] = [CLS]
    head="hidden":   the final hidden states x themselves              (B, T, C)
"""
from dataclasses import dataclass

import numpy as np

from ..layers.activations import GELU, Tanh
from ..flat import gather_model
from ..layers.base import Layer
from ..layers.input_embedding import InputEmbedding
from ..layers.layernorm import LayerNorm
from ..layers.linear import Linear
from ..layers.loss import CrossEntropyLoss
from ..layers.output import OutputProjection
from ..layers.transformer_layers import EncoderLayer
from .common import check_config, check_ids, hidden_width, output_gradient

HEADS = ("mlm", "classify", "hidden")


@dataclass
class EncoderConfig:
    vocab_size: int = 65
    max_len: int = 128
    width: int = 128
    num_heads: int = 4
    num_layers: int = 4
    ffn_hidden: int = 0           # 0 means 4 C
    num_classes: int = 2          # for the classification head
    type_vocab_size: int = 0      # > 0 adds segment embeddings (BERT uses 2)
    dropout: float = 0.0
    activation: str = "gelu"
    positional: str = "learned"
    pre_norm: bool = False        # BERT is post-LN
    layer_norm_eps: float = 1e-5  # BERT uses 1e-12
    ignore_index: int = -100      # MLM targets: -100 on positions that were not masked
    label_smoothing: float = 0.0
    dtype: str = "float32"
    seed: int = 0


class Encoder(Layer):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        check_config(config)
        if config.num_classes <= 0:
            raise ValueError(f"num_classes must be a positive integer, got {config.num_classes}")
        self.config = config
        rng = np.random.default_rng(config.seed)
        dtype = np.dtype(config.dtype)
        C, eps = config.width, config.layer_norm_eps
        self.embed = InputEmbedding(config.vocab_size, config.max_len, C, rng, positional=config.positional,
                                    type_vocab_size=config.type_vocab_size, dropout=config.dropout, dtype=dtype)
        self.embed_norm = LayerNorm(C, eps, dtype)
        self.layers = [EncoderLayer(C, config.num_heads, hidden_width(config), rng, pre_norm=config.pre_norm,
                                    dropout=config.dropout, activation=config.activation, eps=eps, dtype=dtype)
                       for _ in range(config.num_layers)]
        self.final_norm = LayerNorm(C, eps, dtype) if config.pre_norm else None
        # masked-LM head: transform, then score every vocabulary entry with the tied embedding
        self.mlm_transform = Linear(C, C, rng, dtype=dtype)
        self.mlm_act = GELU("none")
        self.mlm_norm = LayerNorm(C, eps, dtype)
        self.mlm_out = OutputProjection(C, config.vocab_size, rng, tie_to=self.embed.tokens, dtype=dtype)
        # classification head: "pool" the first ([CLS]) position, then a linear classifier
        self.pooler = Linear(C, C, rng, dtype=dtype)
        self.pooler_act = Tanh()
        self.classifier = Linear(C, config.num_classes, rng, dtype=dtype)
        self.loss_fn = CrossEntropyLoss(config.ignore_index, config.label_smoothing)
        gather_model(self)      # parameters in one buffer, gradients in another: faster optimiser steps (flat.py)

    def children(self):
        kids = [("embed", self.embed), ("embed_norm", self.embed_norm)]
        kids += [(f"layers.{i}", layer) for i, layer in enumerate(self.layers)]
        if self.final_norm is not None:
            kids.append(("final_norm", self.final_norm))
        return kids + [("mlm_transform", self.mlm_transform), ("mlm_act", self.mlm_act),
                       ("mlm_norm", self.mlm_norm), ("mlm_out", self.mlm_out), ("pooler", self.pooler),
                       ("pooler_act", self.pooler_act), ("classifier", self.classifier)]

    def forward(self, ids, targets=None, padding_mask=None, token_type_ids=None, head="mlm", rng=None):
        """ids: (B, T); padding_mask: (B, T) bool, True = padding. -> (logits, loss or None).

        targets: (B, T) for "mlm" (ignore_index where not predicted), (B,) for "classify".
        """
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        ids = check_ids(ids, self.config.max_len)
        x = self.embed.forward(ids, token_type_ids, rng=rng)         # (B, T, C)
        x = self.embed_norm.forward(x)                               # (B, T, C)
        for layer in self.layers:
            x = layer.forward(x, causal=False, key_padding_mask=padding_mask, rng=rng)   # (B, T, C)
        if self.final_norm is not None:
            x = self.final_norm.forward(x)                           # (B, T, C)
        if head == "mlm":
            h = self.mlm_transform.forward(x)                        # (B, T, C)
            h = self.mlm_norm.forward(self.mlm_act.forward(h))       # (B, T, C)
            logits = self.mlm_out.forward(h)                         # (B, T, V)
        elif head == "classify":
            cls = x[:, :1, :]                                        # (B, 1, C) the [CLS] position
            pooled = self.pooler_act.forward(self.pooler.forward(cls))   # (B, 1, C)
            logits = self.classifier.forward(pooled)[:, 0, :]        # (B, num_classes)
        else:
            logits = x                                               # (B, T, C)
        loss = None
        if targets is not None:
            if head == "hidden":
                raise ValueError("targets given with head='hidden': there is no loss on hidden states")
            loss = self.loss_fn.forward(logits, targets)             # scalar
        self.cache = (head, targets is not None, x.shape)
        return logits, loss

    def backward(self, dlogits=None):
        """Fill every gradient along the path the last forward took."""
        head, has_loss, x_shape = self.pop_cache()
        dlogits = output_gradient(self.loss_fn, has_loss, dlogits)            # (B, ...) from the loss
        if head == "mlm":
            dh = self.mlm_out.backward(dlogits)                      # (B, T, C)
            dh = self.mlm_act.backward(self.mlm_norm.backward(dh))   # (B, T, C)
            dx = self.mlm_transform.backward(dh)                     # (B, T, C)
        elif head == "classify":
            dpooled = self.classifier.backward(dlogits[:, None, :])  # (B, 1, C)
            dcls = self.pooler.backward(self.pooler_act.backward(dpooled))   # (B, 1, C)
            dx = np.zeros(x_shape, dtype=dcls.dtype)                 # (B, T, C): only [CLS] was read
            dx[:, :1, :] = dcls
        else:
            dx = dlogits                                             # (B, T, C)
        if self.final_norm is not None:
            dx = self.final_norm.backward(dx)
        for layer in reversed(self.layers):
            dx = layer.backward(dx)                                  # (B, T, C)
        dx = self.embed_norm.backward(dx)                            # (B, T, C)
        self.embed.backward(dx)

    def attention_maps(self):
        """[(B, H, T, T) per layer] from the last forward."""
        return [layer.attention_weights for layer in self.layers]
