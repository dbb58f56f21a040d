"""The original encoder-decoder Transformer (Vaswani et al., 2017).

    memory = Encoder(src)                    (B, S, C), padding keys of src masked
    y = Decoder(trg_in, memory)              (B, T, C), causal self-attention + cross-attention
    logits = y E^T + b                       (B, T, V_trg)
Paper details kept: sinusoidal positions, embeddings scaled by sqrt(C), post-LN, ReLU FFN,
the target embedding tied to the output projection, label smoothing available.
"""
from dataclasses import dataclass

import numpy as np

from ..flat import gather_model
from ..layers.base import Layer
from ..layers.input_embedding import InputEmbedding
from ..layers.layernorm import LayerNorm
from ..layers.loss import CrossEntropyLoss
from ..layers.output import OutputProjection
from ..layers.transformer_layers import DecoderLayer, EncoderLayer
from .common import check_config, check_ids, hidden_width, output_gradient
from .gpt import kv_cache_length


@dataclass
class TransformerConfig:
    src_vocab_size: int = 32
    trg_vocab_size: int = 32
    max_len: int = 64
    width: int = 64
    num_heads: int = 4
    num_layers: int = 2           # encoder layers and decoder layers each
    ffn_hidden: int = 0           # 0 means 4 C
    dropout: float = 0.0
    activation: str = "relu"
    positional: str = "sinusoidal"
    pre_norm: bool = False        # the paper is post-LN
    tie_weights: bool = True
    pad_id: int = 0               # padding id in src and trg; padded keys are masked, padded targets ignored
    layer_norm_eps: float = 1e-5
    label_smoothing: float = 0.0
    dtype: str = "float32"
    seed: int = 0


class Transformer(Layer):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        for name in ("src_vocab_size", "trg_vocab_size"):
            value = getattr(config, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_config(config)
        self.config = config
        rng = np.random.default_rng(config.seed)
        dtype = np.dtype(config.dtype)
        C, H, F, eps = config.width, config.num_heads, hidden_width(config), config.layer_norm_eps
        layer_args = dict(pre_norm=config.pre_norm, dropout=config.dropout, activation=config.activation,
                          eps=eps, dtype=dtype)
        self.src_embed = InputEmbedding(config.src_vocab_size, config.max_len, C, rng, config.positional,
                                        scale_by_sqrt_width=True, dropout=config.dropout, dtype=dtype)
        self.trg_embed = InputEmbedding(config.trg_vocab_size, config.max_len, C, rng, config.positional,
                                        scale_by_sqrt_width=True, dropout=config.dropout, dtype=dtype)
        self.encoder_layers = [EncoderLayer(C, H, F, rng, **layer_args) for _ in range(config.num_layers)]
        self.decoder_layers = [DecoderLayer(C, H, F, rng, **layer_args) for _ in range(config.num_layers)]
        self.encoder_norm = LayerNorm(C, eps, dtype) if config.pre_norm else None
        self.decoder_norm = LayerNorm(C, eps, dtype) if config.pre_norm else None
        self.head = OutputProjection(C, config.trg_vocab_size, rng,
                                     tie_to=self.trg_embed.tokens if config.tie_weights else None, dtype=dtype)
        self.loss_fn = CrossEntropyLoss(ignore_index=config.pad_id, label_smoothing=config.label_smoothing)
        gather_model(self)      # parameters in one buffer, gradients in another: faster optimiser steps (flat.py)

    def children(self):
        kids = [("src_embed", self.src_embed), ("trg_embed", self.trg_embed)]
        kids += [(f"encoder_layers.{i}", layer) for i, layer in enumerate(self.encoder_layers)]
        kids += [(f"decoder_layers.{i}", layer) for i, layer in enumerate(self.decoder_layers)]
        if self.encoder_norm is not None:
            kids += [("encoder_norm", self.encoder_norm), ("decoder_norm", self.decoder_norm)]
        return kids + [("head", self.head)]

    def padding_mask(self, ids):
        """(B, T) bool, True where ids == pad_id; None if pad_id is None."""
        if self.config.pad_id is None:
            return None
        return ids == self.config.pad_id

    def encode(self, src, rng=None):
        """src: (B, S) -> memory: (B, S, C), and the source padding mask used."""
        src_padding = self.padding_mask(src)                          # (B, S)
        x = self.src_embed.forward(src, rng=rng)                      # (B, S, C)
        for layer in self.encoder_layers:
            x = layer.forward(x, causal=False, key_padding_mask=src_padding, rng=rng)   # (B, S, C)
        if self.encoder_norm is not None:
            x = self.encoder_norm.forward(x)
        return x, src_padding

    def decode(self, trg_in, memory, src_padding, rng=None, kv_cache=None):
        """trg_in: (B, T), memory: (B, S, C) -> logits: (B, T, V).

        kv_cache: for generation, the list from new_kv_cache(); trg_in is then only the NEW target
        tokens, placed after the cached ones (generated targets hold no padding, so none is masked).
        """
        offset = 0 if kv_cache is None else kv_cache_length(kv_cache)
        trg_padding = self.padding_mask(trg_in) if kv_cache is None else None   # (B, T)
        y = self.trg_embed.forward(trg_in, offset=offset, rng=rng)    # (B, T, C)
        for i, layer in enumerate(self.decoder_layers):
            layer_cache = None if kv_cache is None else kv_cache[i]
            y = layer.forward(y, memory, memory_padding_mask=src_padding, target_padding_mask=trg_padding,
                              rng=rng, kv_cache=layer_cache)          # (B, T, C)
        if self.decoder_norm is not None:
            y = self.decoder_norm.forward(y)
        return self.head.forward(y)                                   # (B, T, V)

    def forward(self, src, trg, targets=None, rng=None):
        """src: (B, S), trg: (B, T) decoder input (starts with BOS) -> (logits (B, T, V), loss or None).

        targets: (B, T), trg shifted left by one; pad_id positions are ignored by the loss.
        """
        src = check_ids(src, self.config.max_len, "source ids")
        trg = check_ids(trg, self.config.max_len, "target ids")
        if src.shape[0] != trg.shape[0]:
            raise ValueError(f"source batch {src.shape[0]} and target batch {trg.shape[0]} differ")
        memory, src_padding = self.encode(src, rng)                   # (B, S, C)
        logits = self.decode(trg, memory, src_padding, rng)           # (B, T, V)
        loss = None
        if targets is not None:
            loss = self.loss_fn.forward(logits, targets)
        self.cache = (targets is not None,)
        return logits, loss

    def backward(self, dlogits=None):
        (has_loss,) = self.pop_cache()
        dlogits = output_gradient(self.loss_fn, has_loss, dlogits)            # (B, ...) from the loss
        dy = self.head.backward(dlogits)                              # (B, T, C)
        if self.decoder_norm is not None:
            dy = self.decoder_norm.backward(dy)
        dmemory = 0                                                   # every decoder layer read memory
        for layer in reversed(self.decoder_layers):
            dy, dmemory_layer = layer.backward(dy)                    # (B, T, C), (B, S, C)
            dmemory = dmemory + dmemory_layer
        self.trg_embed.backward(dy)
        dx = dmemory                                                  # (B, S, C)
        if self.encoder_norm is not None:
            dx = self.encoder_norm.backward(dx)
        for layer in reversed(self.encoder_layers):
            dx = layer.backward(dx)
        self.src_embed.backward(dx)

    def new_kv_cache(self):
        """An empty decoder self-attention cache: one dict per decoder layer, filled by decode(..., kv_cache=)."""
        return [{"k": None, "v": None} for _ in self.decoder_layers]

    def attention_maps(self):
        """{"encoder": [(B,H,S,S)], "decoder_self": [(B,H,T,T)], "decoder_cross": [(B,H,T,S)]} per layer."""
        return {
            "encoder": [layer.attention_weights for layer in self.encoder_layers],
            "decoder_self": [layer.self_attention_weights for layer in self.decoder_layers],
            "decoder_cross": [layer.cross_attention_weights for layer in self.decoder_layers],
        }
