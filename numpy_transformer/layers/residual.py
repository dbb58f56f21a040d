"""A residual connection with LayerNorm around any sub-layer, in both arrangements.

    post-LN (the 2017 paper):  y = LayerNorm(x + Dropout(sublayer(x)))
    pre-LN  (GPT-2 onwards):   y = x + Dropout(sublayer(LayerNorm(x)))

In both, x reaches y along two paths, the identity and the sub-layer, so dL/dx is the SUM of the
gradient along each. Pre-LN keeps the identity path free of any normalisation, which is why deep
pre-LN stacks train without warmup tricks.
"""
import numpy as np

from .base import Layer
from .dropout import Dropout
from .layernorm import LayerNorm


class Residual(Layer):
    """Wraps a sub-layer whose backward returns dx, or (dx, *extra) (cross-attention adds dmemory)."""

    def __init__(self, sublayer, width, pre_norm=True, dropout=0.0, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.pre_norm = pre_norm
        self.sublayer = sublayer
        self.norm = LayerNorm(width, eps=eps, dtype=dtype)
        self.dropout = Dropout(dropout)

    def children(self):
        return [("sublayer", self.sublayer), ("norm", self.norm), ("dropout", self.dropout)]

    def forward(self, x, rng=None, **sublayer_kwargs):
        """x: (B, T, C) -> y: (B, T, C). Extra keyword arguments go to the sub-layer (masks, memory)."""
        if self.pre_norm:
            normed = self.norm.forward(x)                                  # (B, T, C)
            branch = self.sublayer.forward(normed, **sublayer_kwargs)      # (B, T, C)
            y = x + self.dropout.forward(branch, rng)                      # (B, T, C)
        else:
            branch = self.sublayer.forward(x, **sublayer_kwargs)           # (B, T, C)
            summed = x + self.dropout.forward(branch, rng)                 # (B, T, C)
            y = self.norm.forward(summed)                                  # (B, T, C)
        self.cache = ("residual",)
        return y

    def backward(self, dy):
        """dy: (B, T, C) -> dx (B, T, C), or (dx, *extra) when the sub-layer returns extras."""
        self.pop_cache()
        # ==== exercise 11 residual-backward ====
        if self.pre_norm:
            # y = x + dropout(sublayer(norm(x)))
            dbranch = self.dropout.backward(dy)                            # (B, T, C)
            dnormed, extra = split_extra(self.sublayer.backward(dbranch))
            dx = dy + self.norm.backward(dnormed)                          # identity path + branch path
        else:
            # y = norm(summed), summed = x + dropout(sublayer(x))
            dsummed = self.norm.backward(dy)                               # (B, T, C)
            dbranch = self.dropout.backward(dsummed)                       # (B, T, C)
            dsub_in, extra = split_extra(self.sublayer.backward(dbranch))
            dx = dsummed + dsub_in                                         # identity path + branch path
        # ==== end exercise 11 ====
        return (dx, *extra) if extra else dx


def split_extra(grads):
    """A sub-layer's backward gives dx or (dx, *extra); return (dx, extra tuple)."""
    if isinstance(grads, tuple):
        return grads[0], grads[1:]
    return grads, ()
