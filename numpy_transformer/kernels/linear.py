"""Linear layer on the fast path: the twin of layers/linear.py, with no Numba in it.

The work of y = x W + b is the matmul, and BLAS does that best. What the fast path changes is how
BLAS is called: the reference writes ``x @ W`` on a (B, T, C_in) array, which NumPy runs as B
separate (T, C_in) x (C_in, C_out) products; here the leading axes are folded into rows first, so
there is ONE (B*T, C_in) x (C_in, C_out) product, and the bias is added in place instead of into a
new array. Same arguments, outputs, dtypes and cache as the reference.
"""
import numpy as np


def as_rows(x):
    """(..., C) -> (N, C), N = product of the leading axes (a view whenever the layout allows)."""
    return x.reshape(-1, x.shape[-1])


def linear_forward(x, weight, bias):
    """y = x @ W + b on the last axis. x: (..., C_in) -> y: (..., C_out); cache (x, weight, has_bias)."""
    y_rows = as_rows(x) @ weight                        # (N, C_out): one BLAS call
    if bias is not None:
        y_rows += bias                                  # (N, C_out) in place
    y = y_rows.reshape(x.shape[:-1] + (weight.shape[1],))   # (..., C_out)
    return y, (x, weight, bias is not None)


def linear_backward(dy, cache):
    """dx = dy W^T, dW = x^T dy (summed over rows), db = sum over rows of dy, each one BLAS call or one pass."""
    x, weight, has_bias = cache
    x_rows = as_rows(x)                                 # (N, C_in)
    dy_rows = as_rows(dy)                               # (N, C_out)
    dx = (dy_rows @ weight.T).reshape(x.shape)          # (..., C_in)
    dweight = x_rows.T @ dy_rows                        # (C_in, C_out)
    dbias = dy_rows.sum(axis=0) if has_bias else None   # (C_out,)
    return dx, dweight, dbias
