"""LayerNorm in Numba: the twin of layers/layernorm.py (same arguments, outputs and cache).

A few passes over blocks of rows instead of NumPy's six array-wide passes and temporaries:
    forward:  mu = mean(x), var = mean((x - mu)^2), inv_std = 1 / sqrt(var + eps),
              xhat = (x - mu) inv_std, y = gamma xhat + beta
    backward: dxhat = dy gamma
              dx = inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
              dgamma = sum_rows dy xhat,  dbeta = sum_rows dy   (each block of rows sums its part,
              then the parts are added in order)

The row sums (of x, of (x - mu)^2, of dxhat, of dxhat xhat) are matrix-vector products with a
vector of ones, in BLAS: (rows, C) x (C,). Why: a sum written as a loop along a row cannot vectorise
(each addition waits for the one before; reordering them would change the rounding, so the compiler
may not), while BLAS keeps many partial sums at once. Measured here: the forward 3.7x faster in float32
(441 -> 119 us for 2048 x 128), the backward 1.6x. Everything else is element by element along rows,
and vectorises.
"""
import math

import numpy as np
from numba import njit

from .threads import run_tasks

ROW_BLOCK = 64          # rows per task; each block of the backward sums its own part of dgamma and dbeta,
                        # and the parts are added in block order: the same result on any number of threads
NS_PER_ENTRY = 0.5      # one thread's time per entry of the forward or backward, roughly (run_tasks' estimate):
                        # the reference config's LayerNorm (2048 x 128) stays on the calling thread


def layernorm_forward_loops(first, last, x, gamma, beta, eps, y, xhat, inv_std):
    """x: (N, C) -> fills y (N, C), xhat (N, C), inv_std (N, 1) for the blocks of ROW_BLOCK rows
    first..last-1. y holds the squares (x - mu)^2 for a moment before its final values. (Tasks are
    whole blocks, so every row is summed in the same block however the threads share them: BLAS
    may round a row's sum differently in a block of another size.)

    Loops run over 1-D row views indexed from 0 (x_row[c], not x[n, c]), so they vectorise."""
    N, C = x.shape
    one = x.dtype.type(1)
    eps = x.dtype.type(eps)
    count = x.dtype.type(C)
    ones = np.ones(C, dtype=x.dtype)                    # (C,) row sums are products with it
    sums = np.empty(ROW_BLOCK, dtype=x.dtype)           # (ROW_BLOCK,) one sum per row of the block
    for block in range(first, last):
        r0 = block * ROW_BLOCK
        rows = min(N, r0 + ROW_BLOCK) - r0
        row_sums = sums[:rows]                          # (rows,)
        np.dot(x[r0:r0 + rows], ones, row_sums)         # sum_c x, BLAS
        for i in range(rows):                           # rows are independent
            mu = row_sums[i] / count
            x_row = x[r0 + i]                           # (C,) views
            xhat_row = xhat[r0 + i]                     # (C,)
            square_row = y[r0 + i]                      # (C,) the squares, until overwritten below
            for c in range(C):
                centred = x_row[c] - mu
                xhat_row[c] = centred                   # x - mu for now, normalised below
                square_row[c] = centred * centred
        np.dot(y[r0:r0 + rows], ones, row_sums)         # sum_c (x - mu)^2, BLAS
        for i in range(rows):
            row_inv_std = one / math.sqrt(row_sums[i] / count + eps)
            inv_std[r0 + i, 0] = row_inv_std
            xhat_row = xhat[r0 + i]                     # (C,)
            y_row = y[r0 + i]                           # (C,)
            for c in range(C):
                normed = xhat_row[c] * row_inv_std
                xhat_row[c] = normed
                y_row[c] = normed * gamma[c] + beta[c]


def layernorm_backward_loops(first, last, dy, xhat, gamma, inv_std, dx, dgamma_blocks, dbeta_blocks):
    """dy, xhat: (N, C), inv_std: (N, 1) -> fills dx (N, C) for the blocks of ROW_BLOCK rows
    first..last-1, and each block's part of dgamma and dbeta: dgamma_blocks[block] (C,) = the sum
    of dy xhat over its rows, dbeta_blocks[block] = the sum of dy. dx holds dxhat = dy gamma for a
    moment before its final values."""
    N, C = dy.shape
    zero = dy.dtype.type(0)
    count = dy.dtype.type(C)
    ones = np.ones(C, dtype=dy.dtype)                   # (C,) row sums are products with it
    products = np.empty((ROW_BLOCK, C), dtype=dy.dtype)   # (ROW_BLOCK, C) dxhat xhat
    sums_dxhat = np.empty(ROW_BLOCK, dtype=dy.dtype)    # (ROW_BLOCK,) per row: sum_c dxhat
    sums_product = np.empty(ROW_BLOCK, dtype=dy.dtype)  # (ROW_BLOCK,) per row: sum_c dxhat xhat
    for block in range(first, last):
        r0 = block * ROW_BLOCK
        rows = min(N, r0 + ROW_BLOCK) - r0
        for i in range(rows):
            dy_row = dy[r0 + i]                         # (C,) views, indexed from 0 so the loops vectorise
            xhat_row = xhat[r0 + i]                     # (C,)
            dxhat_row = dx[r0 + i]                      # (C,) dxhat, until overwritten below
            product_row = products[i]                   # (C,)
            for c in range(C):
                dxhat = dy_row[c] * gamma[c]
                dxhat_row[c] = dxhat
                product_row[c] = dxhat * xhat_row[c]
        np.dot(dx[r0:r0 + rows], ones, sums_dxhat[:rows])            # sum_c dxhat, BLAS
        np.dot(products[:rows], ones, sums_product[:rows])          # sum_c dxhat xhat, BLAS
        dgamma_sum = dgamma_blocks[block]               # (C,) this block's parts
        dbeta_sum = dbeta_blocks[block]                 # (C,)
        dgamma_sum[:] = zero
        dbeta_sum[:] = zero
        for i in range(rows):
            mean_dxhat = sums_dxhat[i] / count
            mean_dxhat_xhat = sums_product[i] / count
            row_inv_std = inv_std[r0 + i, 0]
            dy_row = dy[r0 + i]                         # (C,)
            xhat_row = xhat[r0 + i]                     # (C,)
            dx_row = dx[r0 + i]                         # (C,)
            for c in range(C):
                dx_row[c] = row_inv_std * (dx_row[c] - mean_dxhat - xhat_row[c] * mean_dxhat_xhat)
                dgamma_sum[c] += dy_row[c] * xhat_row[c]
                dbeta_sum[c] += dy_row[c]


layernorm_forward_jit = njit(cache=True, nogil=True, error_model="numpy")(layernorm_forward_loops)
layernorm_backward_jit = njit(cache=True, nogil=True, error_model="numpy")(layernorm_backward_loops)


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Numba twin of layers.layernorm.layernorm_forward. x: (..., C) -> y, cache (xhat, gamma, inv_std)."""
    C = x.shape[-1]
    if np.shape(gamma) != (C,) or np.shape(beta) != (C,):   # the loops would read past their ends
        raise ValueError(f"gamma {np.shape(gamma)} and beta {np.shape(beta)} must both be ({C},) for x {x.shape}")
    x_rows = np.ascontiguousarray(x.reshape(-1, C))     # (N, C)
    y = np.empty_like(x_rows)                           # (N, C)
    xhat = np.empty_like(x_rows)                        # (N, C)
    inv_std = np.empty((x_rows.shape[0], 1), dtype=x.dtype)   # (N, 1)
    blocks = (x_rows.shape[0] + ROW_BLOCK - 1) // ROW_BLOCK
    run_tasks(layernorm_forward_jit, blocks, x_rows, gamma.astype(x.dtype, copy=False),
              beta.astype(x.dtype, copy=False), eps, y, xhat, inv_std, work_ns=NS_PER_ENTRY * x_rows.size)
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
