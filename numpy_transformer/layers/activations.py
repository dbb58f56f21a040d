"""Element-wise non-linearities: ReLU, GELU (exact and tanh approximation) and tanh."""
import math

import numpy as np
from scipy.special import erf

from .base import Layer

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def relu_forward(x):
    """y = max(x, 0). x: (...) -> y: (...). cache: the mask x > 0."""
    positive = x > 0                                    # (...) bool
    y = np.where(positive, x, 0).astype(x.dtype)        # (...)
    return y, positive


def relu_backward(dy, cache):
    """dx = dy where x > 0, else 0 (the gradient at exactly 0 is taken as 0)."""
    positive = cache
    # ==== exercise 02 activation-backward ====
    dx = np.where(positive, dy, 0).astype(dy.dtype)     # (...)
    # ==== end exercise 02 ====
    return dx


def gelu_forward(x, approximate="none"):
    """GELU(x) = x * Phi(x), Phi the standard normal CDF (Hendrycks and Gimpel, 2016).

    approximate="none":  Phi(x) = (1 + erf(x / sqrt 2)) / 2          (BERT, PyTorch default)
    approximate="tanh":  Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2   (GPT-2)
    x: (...) -> y: (...). cache: (x, approximate).
    """
    if approximate == "none":
        cdf = 0.5 * (1.0 + erf(x * INV_SQRT_2))                        # (...)
    elif approximate == "tanh":
        inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)            # (...)
        cdf = 0.5 * (1.0 + np.tanh(inner))                             # (...)
    else:
        raise ValueError(f"GELU approximate must be 'none' or 'tanh', got {approximate!r}")
    y = (x * cdf).astype(x.dtype)                                      # (...)
    return y, (x, approximate)


def gelu_backward(dy, cache):
    """dGELU/dx by the product rule: d(x * Phi(x)) = Phi(x) + x * Phi'(x).

    exact: Phi'(x) = exp(-x^2 / 2) / sqrt(2 pi)
    tanh:  with u = sqrt(2/pi) (x + 0.044715 x^3), t = tanh(u):
           d/dx [x (1 + t) / 2] = (1 + t) / 2 + x (1 - t^2) u' / 2,  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    """
    x, approximate = cache
    # ==== exercise 02 activation-backward ====
    if approximate == "none":
        cdf = 0.5 * (1.0 + erf(x * INV_SQRT_2))                        # (...)
        pdf = INV_SQRT_2PI * np.exp(-0.5 * x * x)                      # (...)
        dydx = cdf + x * pdf                                           # (...)
    else:
        inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)            # (...)
        t = np.tanh(inner)                                             # (...)
        dinner = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)         # (...)
        dydx = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner      # (...)
    # ==== end exercise 02 ====
    dx = (dy * dydx).astype(dy.dtype)                                  # (...)
    return dx


def tanh_forward(x):
    """y = tanh(x); the cache is y itself, since dtanh/dx = 1 - y^2."""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    y = cache
    return dy * (1.0 - y * y)


class ReLU(Layer):
    def forward(self, x):
        y, self.cache = relu_forward(x)
        return y

    def backward(self, dy):
        return relu_backward(dy, self.pop_cache())


class GELU(Layer):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        y, self.cache = gelu_forward(x, self.approximate)
        return y

    def backward(self, dy):
        return gelu_backward(dy, self.pop_cache())


class Tanh(Layer):
    def forward(self, x):
        y, self.cache = tanh_forward(x)
        return y

    def backward(self, dy):
        return tanh_backward(dy, self.pop_cache())


def make_activation(name):
    """'relu' | 'gelu' | 'gelu_tanh' -> a fresh activation layer."""
    if name == "relu":
        return ReLU()
    if name == "gelu":
        return GELU("none")
    if name == "gelu_tanh":
        return GELU("tanh")
    raise ValueError(f"unknown activation {name!r}; choose 'relu', 'gelu' or 'gelu_tanh'")
