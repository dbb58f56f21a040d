"""Inverted dropout: zero each entry with probability p, scale the survivors by 1/(1-p)."""
import numpy as np

from .base import Layer


def dropout_forward(x, p, rng, training=True):
    """y = x * mask / (1 - p), mask[i] ~ Bernoulli(1 - p); the identity when not training or p == 0.

    Scaling at training time ("inverted" dropout) keeps E[y] = x, so evaluation needs no rescaling.
    The random generator is passed in, so runs are reproducible and nothing global is touched.
    x: (...) -> y: (...). cache: the scaled mask (same shape as x), or None for the identity.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x, None
    if rng is None:
        raise ValueError("dropout in training mode needs a random generator (rng=np.random.default_rng(seed))")
    keep = rng.random(x.shape) >= p                     # (...) bool
    scaled_mask = keep.astype(x.dtype) / x.dtype.type(1.0 - p)    # (...) 0 or 1/(1-p)
    y = x * scaled_mask                                 # (...)
    return y, scaled_mask


def dropout_backward(dy, cache):
    """dx = dy * the same scaled mask (identity if forward was)."""
    scaled_mask = cache
    if scaled_mask is None:
        return dy
    return dy * scaled_mask


class Dropout(Layer):
    def __init__(self, p=0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x, rng=None):
        y, mask = dropout_forward(x, self.p, rng, self.training)
        self.cache = ("dropout", mask)    # a tuple, so that "forward ran" is never confused with None
        return y

    def backward(self, dy):
        _, mask = self.pop_cache()
        return dropout_backward(dy, mask)
