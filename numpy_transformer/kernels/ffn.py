"""The feed-forward network with Numba around BLAS: FFN(x) = act(x W1 + b1) W2 + b2.

The two matmuls stay in BLAS (a hand-written Numba matmul reaches well under half its speed, see
kernels/matmul.py); Numba fuses what surrounds them, work that NumPy would do in several passes
over (N, F) arrays, each allocating a temporary:
    forward:  pre = x W1 (BLAS), then ONE pass: pre += b1, hidden = act(pre)
    backward: dhidden = dout W2^T (BLAS), then ONE pass: dpre = dhidden * act'(pre),
              and db1 = sum over rows of dpre (a reduction split by columns, so threads never share a sum)
Activations: "relu", "gelu" (exact, x Phi(x) with erf) and "gelu_tanh" (GPT-2's approximation),
with the same formulas as layers/activations.py.
"""
import math

import numpy as np
from numba import njit, prange

ACTIVATION_CODES = {"relu": 0, "gelu": 1, "gelu_tanh": 2}
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_CUBIC = 0.044715
COLUMN_CHUNK = 64       # columns per parallel task of the bias-gradient reduction


def bias_act_forward_loops(pre, bias, code, hidden):
    """In place: pre[n, f] += bias[f]; then hidden[n, f] = act(pre[n, f]).

    pre: (N, F) the BLAS output x W1, owned by the caller and turned into x W1 + b1 (the cache
    keeps it: the backward needs the activation's input); bias: (F,); hidden: (N, F) output.
    code: 0 relu, 1 gelu (exact), 2 gelu_tanh.
    """
    N, F = pre.shape
    half = pre.dtype.type(0.5)
    one = pre.dtype.type(1)
    zero = pre.dtype.type(0)
    inv_sqrt_2 = pre.dtype.type(INV_SQRT_2)
    sqrt_2_over_pi = pre.dtype.type(SQRT_2_OVER_PI)
    cubic = pre.dtype.type(GELU_CUBIC)
    for n in prange(N):                                 # rows are independent
        for f in range(F):
            z = pre[n, f] + bias[f]
            pre[n, f] = z
            if code == 0:
                hidden[n, f] = z if z > zero else zero
            elif code == 1:
                hidden[n, f] = z * (half * (one + math.erf(z * inv_sqrt_2)))
            else:
                inner = sqrt_2_over_pi * (z + cubic * z * z * z)
                hidden[n, f] = z * (half * (one + math.tanh(inner)))


def bias_act_backward_loops(dhidden, pre, code, dpre, dbias):
    """dpre = dhidden * act'(pre) (N, F), and dbias = sum over rows of dpre (F,), overwritten.

    act'(z): relu 1 if z > 0 else 0;  gelu Phi(z) + z phi(z);
    gelu_tanh (1 + t) / 2 + z (1 - t^2) u' / 2 with u = sqrt(2/pi)(z + 0.044715 z^3), t = tanh(u).
    """
    N, F = pre.shape
    half = pre.dtype.type(0.5)
    one = pre.dtype.type(1)
    zero = pre.dtype.type(0)
    inv_sqrt_2 = pre.dtype.type(INV_SQRT_2)
    inv_sqrt_2pi = pre.dtype.type(INV_SQRT_2PI)
    sqrt_2_over_pi = pre.dtype.type(SQRT_2_OVER_PI)
    cubic = pre.dtype.type(GELU_CUBIC)
    cubic3 = pre.dtype.type(3 * GELU_CUBIC)
    for n in prange(N):
        for f in range(F):
            z = pre[n, f]
            if code == 0:
                slope = one if z > zero else zero
            elif code == 1:
                cdf = half * (one + math.erf(z * inv_sqrt_2))
                pdf = inv_sqrt_2pi * math.exp(-half * z * z)
                slope = cdf + z * pdf
            else:
                inner = sqrt_2_over_pi * (z + cubic * z * z * z)
                t = math.tanh(inner)
                dinner = sqrt_2_over_pi * (one + cubic3 * z * z)
                slope = half * (one + t) + half * z * (one - t * t) * dinner
            dpre[n, f] = dhidden[n, f] * slope
    num_chunks = (F + COLUMN_CHUNK - 1) // COLUMN_CHUNK
    for chunk in prange(num_chunks):                    # each task owns its columns: no shared sums
        first = chunk * COLUMN_CHUNK
        last = min(first + COLUMN_CHUNK, F)
        dbias[first:last] = zero
        for n in range(N):
            for f in range(first, last):
                dbias[f] += dpre[n, f]


bias_act_forward_jit = njit(cache=True, parallel=True)(bias_act_forward_loops)
bias_act_backward_jit = njit(cache=True, parallel=True)(bias_act_backward_loops)


def activation_code(activation):
    if activation not in ACTIVATION_CODES:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATION_CODES)}")
    return ACTIVATION_CODES[activation]


def bias_act_forward(pre, bias, activation):
    """hidden = act(pre + bias), with pre (N, F) updated in place to pre + bias. -> (hidden, pre)."""
    hidden = np.empty_like(pre)                         # (N, F)
    bias_act_forward_jit(pre, bias, activation_code(activation), hidden)
    return hidden, pre


def bias_act_backward(dhidden, pre, activation):
    """-> dpre (N, F), dbias (F,) for hidden = act(pre), pre = x W1 + b1."""
    dpre = np.empty_like(pre)                           # (N, F)
    dbias = np.empty(pre.shape[1], dtype=pre.dtype)     # (F,)
    bias_act_backward_jit(np.ascontiguousarray(dhidden), pre, activation_code(activation), dpre, dbias)
    return dpre, dbias


def ffn_forward(x, w1, b1, w2, b2, activation="relu"):
    """out = act(x W1 + b1) W2 + b2.

    x: (..., C), w1: (C, F), b1: (F,), w2: (F, C), b2: (C,) -> out: (..., C).
    cache: (x_rows, w1, pre, hidden, w2, activation, x.shape) with pre = x W1 + b1, hidden = act(pre).
    """
    C = x.shape[-1]
    x_rows = np.ascontiguousarray(x.reshape(-1, C))     # (N, C), N = product of leading axes
    pre = x_rows @ w1                                   # (N, F)  BLAS
    hidden, pre = bias_act_forward(pre, b1, activation)   # (N, F), (N, F)  one fused pass
    out = hidden @ w2                                   # (N, C)  BLAS
    out += b2                                           # (N, C)
    return out.reshape(x.shape), (x_rows, w1, pre, hidden, w2, activation, x.shape)


def ffn_backward(dout, cache):
    """Gradients of ffn_forward -> dx (..., C), dw1 (C, F), db1 (F,), dw2 (F, C), db2 (C,).

        out = hidden W2 + b2      ->  dhidden = dout W2^T,  dW2 = hidden^T dout,  db2 = sum_rows dout
        hidden = act(pre)         ->  dpre = dhidden * act'(pre)
        pre = x W1 + b1           ->  dx = dpre W1^T,  dW1 = x^T dpre,  db1 = sum_rows dpre
    """
    x_rows, w1, pre, hidden, w2, activation, x_shape = cache
    dout_rows = dout.reshape(-1, dout.shape[-1])        # (N, C)
    dw2 = hidden.T @ dout_rows                          # (F, C)
    db2 = dout_rows.sum(axis=0)                         # (C,)
    dhidden = dout_rows @ w2.T                          # (N, F)
    dpre, db1 = bias_act_backward(dhidden, pre, activation)   # (N, F), (F,)  one fused pass
    dw1 = x_rows.T @ dpre                               # (C, F)
    dx = dpre @ w1.T                                    # (N, C)
    return dx.reshape(x_shape), dw1, db1, dw2, db2
