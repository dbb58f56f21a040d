"""LayerNorm in Numba: the twin of layers/layernorm.py (same arguments, outputs and cache).

One pass per row instead of NumPy's six array-wide passes and temporaries:
    forward:  mu = mean(x), var = mean((x - mu)^2), inv_std = 1 / sqrt(var + eps),
              xhat = (x - mu) inv_std, y = gamma xhat + beta
    backward: dxhat = dy gamma
              dx = inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
              dgamma = sum_rows dy xhat,  dbeta = sum_rows dy   (each block of rows sums its part,
              then the parts are added in order)
"""
import math

import numpy as np
from numba import njit

from .threads import run_tasks

ROW_BLOCK = 64          # rows per task of the backward; each block sums its own part of dgamma and dbeta,
                        # and the parts are added in block order: the same result on any number of threads
NS_PER_ENTRY = 2.0      # one thread's time per entry of a LayerNorm pass, roughly (run_tasks' estimate)


def layernorm_forward_loops(first, last, x, gamma, beta, eps, y, xhat, inv_std):
    """x: (N, C) -> fills rows first..last-1 of y (N, C), xhat (N, C), inv_std (N, 1).

    Loops run over 1-D row views indexed from 0 (x_row[c], not x[n, c]), so they vectorise."""
    N, C = x.shape
    zero = x.dtype.type(0)
    one = x.dtype.type(1)
    eps = x.dtype.type(eps)
    count = x.dtype.type(C)
    for n in range(first, last):                        # rows are independent
        x_row = x[n]                                    # (C,) views
        xhat_row = xhat[n]                              # (C,)
        y_row = y[n]                                    # (C,)
        total = zero
        for c in range(C):
            total += x_row[c]
        mu = total / count
        square_sum = zero
        for c in range(C):
            centred = x_row[c] - mu
            xhat_row[c] = centred                       # x - mu for now, normalised below
            square_sum += centred * centred
        row_inv_std = one / math.sqrt(square_sum / count + eps)
        inv_std[n, 0] = row_inv_std
        for c in range(C):
            normed = xhat_row[c] * row_inv_std
            xhat_row[c] = normed
            y_row[c] = normed * gamma[c] + beta[c]


def layernorm_backward_loops(first, last, dy, xhat, gamma, inv_std, dx, dgamma_blocks, dbeta_blocks):
    """dy, xhat: (N, C), inv_std: (N, 1) -> fills dx (N, C) for the blocks of ROW_BLOCK rows
    first..last-1, and each block's part of dgamma and dbeta: dgamma_blocks[block] (C,) = the sum
    of dy xhat over its rows, dbeta_blocks[block] = the sum of dy."""
    N, C = dy.shape
    zero = dy.dtype.type(0)
    count = dy.dtype.type(C)
    for block in range(first, last):
        dgamma_sum = dgamma_blocks[block]               # (C,) this block's parts
        dbeta_sum = dbeta_blocks[block]                 # (C,)
        dgamma_sum[:] = zero
        dbeta_sum[:] = zero
        for n in range(block * ROW_BLOCK, min(N, (block + 1) * ROW_BLOCK)):
            dy_row = dy[n]                              # (C,) views, indexed from 0 so the loops vectorise
            xhat_row = xhat[n]                          # (C,)
            dx_row = dx[n]                              # (C,)
            sum_dxhat = zero
            sum_dxhat_xhat = zero
            for c in range(C):
                dxhat = dy_row[c] * gamma[c]
                sum_dxhat += dxhat
                sum_dxhat_xhat += dxhat * xhat_row[c]
            mean_dxhat = sum_dxhat / count
            mean_dxhat_xhat = sum_dxhat_xhat / count
            row_inv_std = inv_std[n, 0]
            for c in range(C):
                dxhat = dy_row[c] * gamma[c]
                dx_row[c] = row_inv_std * (dxhat - mean_dxhat - xhat_row[c] * mean_dxhat_xhat)
                dgamma_sum[c] += dy_row[c] * xhat_row[c]
                dbeta_sum[c] += dy_row[c]


layernorm_forward_jit = njit(cache=True, nogil=True, error_model="numpy")(layernorm_forward_loops)
layernorm_backward_jit = njit(cache=True, nogil=True, error_model="numpy")(layernorm_backward_loops)


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Numba twin of layers.layernorm.layernorm_forward. x: (..., C) -> y, cache (xhat, gamma, inv_std)."""
    C = x.shape[-1]
    if np.shape(gamma) != (C,) or np.shape(beta) != (C,):   # the loops would read past their ends
        raise ValueError(f"gamma {np.shape(gamma)} and beta {np.shape(beta)} must both be ({C},) for x {x.shape}")
    rows = np.ascontiguousarray(x.reshape(-1, C))       # (N, C)
    y = np.empty_like(rows)                             # (N, C)
    xhat = np.empty_like(rows)                          # (N, C)
    inv_std = np.empty((rows.shape[0], 1), dtype=x.dtype)   # (N, 1)
    run_tasks(layernorm_forward_jit, rows.shape[0], rows, gamma.astype(x.dtype, copy=False),
              beta.astype(x.dtype, copy=False), eps, y, xhat, inv_std, work_ns=NS_PER_ENTRY * rows.size)
    lead = x.shape[:-1]
    return y.reshape(x.shape), (xhat.reshape(x.shape), gamma, inv_std.reshape(lead + (1,)))


def layernorm_backward(dy, cache):
    """Numba twin of layers.layernorm.layernorm_backward -> dx (..., C), dgamma (C,), dbeta (C,)."""
    xhat, gamma, inv_std = cache
    C = xhat.shape[-1]
    dy_rows = np.ascontiguousarray(dy.reshape(-1, C), dtype=xhat.dtype)   # (N, C)
    xhat_rows = np.ascontiguousarray(xhat.reshape(-1, C))                 # (N, C)
    inv_std_rows = np.ascontiguousarray(inv_std.reshape(-1, 1))           # (N, 1)
    blocks = (dy_rows.shape[0] + ROW_BLOCK - 1) // ROW_BLOCK
    dx = np.empty_like(dy_rows)                         # (N, C)
    dgamma_blocks = np.empty((blocks, C), dtype=xhat.dtype)   # (blocks, C)
    dbeta_blocks = np.empty((blocks, C), dtype=xhat.dtype)    # (blocks, C)
    run_tasks(layernorm_backward_jit, blocks, dy_rows, xhat_rows, gamma.astype(xhat.dtype, copy=False),
              inv_std_rows, dx, dgamma_blocks, dbeta_blocks, work_ns=NS_PER_ENTRY * dy_rows.size)
    return dx.reshape(xhat.shape), dgamma_blocks.sum(axis=0), dbeta_blocks.sum(axis=0)
