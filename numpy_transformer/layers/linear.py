"""Linear (fully connected) layer: y = x W + b."""
import math

import numpy as np

from .. import backend
from .base import Layer


def linear_forward(x, weight, bias):
    """y = x @ W + b, applied to the last axis.

    x: (..., C_in), weight: (C_in, C_out), bias: (C_out,) or None -> y: (..., C_out).
    cache: (x, weight, has_bias).
    """
    y = x @ weight                                      # (..., C_out)
    if bias is not None:
        y = y + bias                                    # (..., C_out)
    return y, (x, weight, bias is not None)


def linear_backward(dy, cache):
    """Gradients of y = x W + b.

    dx = dy W^T,  dW = sum over rows of x^T dy,  db = sum over rows of dy.
    dy: (..., C_out) -> dx: (..., C_in), dweight: (C_in, C_out), dbias: (C_out,) or None.
    """
    x, weight, has_bias = cache
    # ==== exercise 01 linear-backward ====
    dx = dy @ weight.T                                  # (..., C_in)
    x_rows = x.reshape(-1, x.shape[-1])                 # (N, C_in), N = product of leading axes
    dy_rows = dy.reshape(-1, dy.shape[-1])              # (N, C_out)
    dweight = x_rows.T @ dy_rows                        # (C_in, C_out)
    dbias = dy_rows.sum(axis=0) if has_bias else None   # (C_out,)
    # ==== end exercise 01 ====
    return dx, dweight, dbias


class Linear(Layer):
    """y = x W + b with W initialised uniformly in +-1/sqrt(C_in) (the usual default)."""

    def __init__(self, in_features, out_features, rng, bias=True, dtype=np.float32):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.add_param("weight", rng.uniform(-bound, bound, (in_features, out_features)).astype(dtype))
        if bias:
            self.add_param("bias", np.zeros(out_features, dtype=dtype))

    def forward(self, x):
        forward = backend.dispatch(linear_forward)                  # the reference or kernels/linear.py
        y, self.cache = forward(x, self.params["weight"], self.params.get("bias"))
        return y

    def backward(self, dy):
        dx, dweight, dbias = backend.dispatch(linear_backward)(dy, self.pop_cache())
        self.dparams["weight"] += dweight
        if dbias is not None:
            self.dparams["bias"] += dbias
        return dx
