"""The two kinds of Transformer layer, each a stack of residual sub-layers.

EncoderLayer:  self-attention, then FFN             (also the GPT block, with causal=True)
DecoderLayer:  masked self-attention, cross-attention over the encoder output, then FFN
"""
import numpy as np

from .base import Layer
from .ffn import FeedForward
from .multihead import MultiHeadAttention
from .residual import Residual


class EncoderLayer(Layer):
    """x -> Residual(self-attention) -> Residual(FFN). With causal=True this is a GPT block."""

    def __init__(self, width, num_heads, hidden, rng, pre_norm=True, dropout=0.0, activation="relu",
                 eps=1e-5, dtype=np.float32):
        super().__init__()
        self.attn = Residual(MultiHeadAttention(width, num_heads, rng, dtype), width, pre_norm, dropout, eps, dtype)
        self.ffn = Residual(FeedForward(width, hidden, rng, activation, dtype), width, pre_norm, dropout, eps, dtype)

    def children(self):
        return [("attn", self.attn), ("ffn", self.ffn)]

    @property
    def attention_weights(self):
        """(B, H, T, T) weights of the last forward."""
        return self.attn.sublayer.attention_weights

    def forward(self, x, causal=False, key_padding_mask=None, rng=None, kv_cache=None):
        """x: (B, T, C) -> (B, T, C). kv_cache: see MultiHeadAttention.forward (generation only)."""
        attn_kwargs = dict(causal=causal, key_padding_mask=key_padding_mask)
        if kv_cache is not None:
            attn_kwargs["kv_cache"] = kv_cache
        h = self.attn.forward(x, rng, **attn_kwargs)                                        # (B, T, C)
        y = self.ffn.forward(h, rng)                                                        # (B, T, C)
        self.cache = ("encoder layer",) if kv_cache is None else None
        return y

    def backward(self, dy):
        self.pop_cache()
        dh = self.ffn.backward(dy)         # (B, T, C)
        dx = self.attn.backward(dh)        # (B, T, C)
        return dx


class DecoderLayer(Layer):
    """y -> Residual(causal self-attention) -> Residual(cross-attention to memory) -> Residual(FFN)."""

    def __init__(self, width, num_heads, hidden, rng, pre_norm=True, dropout=0.0, activation="relu",
                 eps=1e-5, dtype=np.float32):
        super().__init__()
        self.self_attn = Residual(MultiHeadAttention(width, num_heads, rng, dtype), width, pre_norm, dropout, eps, dtype)
        self.cross_attn = Residual(MultiHeadAttention(width, num_heads, rng, dtype), width, pre_norm, dropout, eps, dtype)
        self.ffn = Residual(FeedForward(width, hidden, rng, activation, dtype), width, pre_norm, dropout, eps, dtype)

    def children(self):
        return [("self_attn", self.self_attn), ("cross_attn", self.cross_attn), ("ffn", self.ffn)]

    @property
    def self_attention_weights(self):
        """(B, H, T, T)"""
        return self.self_attn.sublayer.attention_weights

    @property
    def cross_attention_weights(self):
        """(B, H, T, S)"""
        return self.cross_attn.sublayer.attention_weights

    def forward(self, y, memory, memory_padding_mask=None, target_padding_mask=None, rng=None, kv_cache=None):
        """y: (B, T, C) target stream, memory: (B, S, C) encoder output -> (B, T, C).

        kv_cache: for generation only, this layer's self-attention cache (see MultiHeadAttention.forward);
        y is then only the NEW target positions. Cross-attention recomputes its keys from memory.
        """
        self_kwargs = dict(causal=True, key_padding_mask=target_padding_mask)
        if kv_cache is not None:
            self_kwargs["kv_cache"] = kv_cache
        h1 = self.self_attn.forward(y, rng, **self_kwargs)                                           # (B, T, C)
        h2 = self.cross_attn.forward(h1, rng, memory=memory, key_padding_mask=memory_padding_mask)   # (B, T, C)
        out = self.ffn.forward(h2, rng)                                                              # (B, T, C)
        self.cache = ("decoder layer",)
        return out

    def backward(self, dout):
        """dout: (B, T, C) -> dy: (B, T, C), dmemory: (B, S, C)."""
        self.pop_cache()
        dh2 = self.ffn.backward(dout)                      # (B, T, C)
        dh1, dmemory = self.cross_attn.backward(dh2)       # (B, T, C), (B, S, C)
        dy = self.self_attn.backward(dh1)                  # (B, T, C)
        return dy, dmemory
