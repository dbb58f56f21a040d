"""Softmax over the last axis, with an optional mask of entries that get zero probability."""
import numpy as np

from .base import Layer


def softmax_forward(x, mask=None):
    """p_i = exp(x_i - max_j x_j) / sum_j exp(x_j - max_j x_j) over the last axis.

    Subtracting the row maximum changes nothing mathematically (softmax is shift invariant) and
    keeps exp() from overflowing. ``mask`` (broadcastable to x, True = excluded) gives excluded
    entries probability exactly 0; a row with every entry excluded becomes all zeros, not NaN.
    x: (..., N) -> p: (..., N). cache: p.
    """
    if mask is not None:
        x = np.where(mask, -np.inf, x)                  # (..., N)
    # ==== exercise 03 softmax ====
    row_max = x.max(axis=-1, keepdims=True)             # (..., 1)
    row_max = np.where(np.isfinite(row_max), row_max, 0).astype(x.dtype)   # fully masked rows
    exps = np.exp(x - row_max)                          # (..., N)
    denom = exps.sum(axis=-1, keepdims=True)            # (..., 1)
    denom = np.where(denom == 0, 1, denom).astype(x.dtype)
    p = exps / denom                                    # (..., N)
    # ==== end exercise 03 ====
    return p, p


def softmax_backward(dp, cache):
    """dx_i = p_i (dp_i - sum_j dp_j p_j): the Jacobian diag(p) - p p^T applied to dp.

    Masked entries have p = 0, so they receive no gradient.
    dp: (..., N) -> dx: (..., N).
    """
    p = cache
    # ==== exercise 03 softmax ====
    weighted_sum = (dp * p).sum(axis=-1, keepdims=True)   # (..., 1)
    dx = p * (dp - weighted_sum)                           # (..., N)
    # ==== end exercise 03 ====
    return dx


class Softmax(Layer):
    def forward(self, x, mask=None):
        p, self.cache = softmax_forward(x, mask)
        return p

    def backward(self, dp):
        return softmax_backward(dp, self.pop_cache())
