"""Layer normalisation (Ba, Kiros and Hinton, 2016): normalise each token's vector, then scale and shift."""
import numpy as np

from .. import backend
from .base import Layer


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, statistics over the last axis.

    The variance is the biased one (divide by C, not C - 1), as in the paper and every framework.
    x: (..., C), gamma/beta: (C,) -> y: (..., C). cache: (xhat, gamma, inv_std).
    """
    # ==== exercise 07 layernorm ====
    mu = x.mean(axis=-1, keepdims=True)                 # (..., 1)
    xc = x - mu                                         # (..., C)
    var = (xc * xc).mean(axis=-1, keepdims=True)        # (..., 1)
    inv_std = 1.0 / np.sqrt(var + eps)                  # (..., 1)
    xhat = xc * inv_std                                 # (..., C)
    y = xhat * gamma + beta                             # (..., C)
    # ==== end exercise 07 ====
    return y, (xhat, gamma, inv_std)


def layernorm_backward(dy, cache):
    """Gradients of layernorm_forward.

    With xhat = (x - mu) * inv_std and dxhat = dy * gamma, over the C entries of one row:
        dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    The two means are the paths through mu and through var; see docs/derivations/layernorm.md.
    dy: (..., C) -> dx: (..., C), dgamma: (C,), dbeta: (C,).
    """
    xhat, gamma, inv_std = cache
    C = xhat.shape[-1]
    # ==== exercise 07 layernorm ====
    dbeta = dy.reshape(-1, C).sum(axis=0)               # (C,)
    dgamma = (dy * xhat).reshape(-1, C).sum(axis=0)     # (C,)
    dxhat = dy * gamma                                  # (..., C)
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)                 # (..., 1)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)   # (..., 1)
    dx = inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)    # (..., C)
    # ==== end exercise 07 ====
    return dx, dgamma, dbeta


class LayerNorm(Layer):
    """LayerNorm over the last axis with a learned gain (ones) and bias (zeros)."""

    def __init__(self, width, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.eps = eps
        self.add_param("gamma", np.ones(width, dtype=dtype))
        self.add_param("beta", np.zeros(width, dtype=dtype))

    def forward(self, x):
        forward = backend.dispatch(layernorm_forward)      # NumPy reference or its Numba twin
        y, self.cache = forward(x, self.params["gamma"], self.params["beta"], self.eps)
        return y

    def backward(self, dy):
        dx, dgamma, dbeta = backend.dispatch(layernorm_backward)(dy, self.pop_cache())
        self.dparams["gamma"] += dgamma
        self.dparams["beta"] += dbeta
        return dx
