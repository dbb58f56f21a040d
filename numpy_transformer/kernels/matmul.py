"""A tiled matrix multiply in Numba: a teaching kernel, NOT on the fast path.

It shows what BLAS does for you. C = A B computed naively (for i, j: C_ij = sum_k A_ik B_kj) reads
B down a column: a cache miss per element, and a sum into one scalar, which the compiler may not
reorder (no fastmath), so it does not vectorise. Two changes fix most of that:
  1. loop order i, k, j: C[i, :] += A[i, k] * B[k, :] runs along rows of B and C, contiguous,
     with no scalar sum: it vectorises (AVX-512 processes 16 float32 at once);
     Index from zero over slices (c_row[j], not c[i, j0 + j]): Numba must otherwise allow for a
     negative index wrapping around, and then it does not vectorise (measured here: 10x slower);
  2. tiles: work on TILE_K rows of B and TILE_J columns at a time, so the tile of B (TILE_K x TILE_J)
     stays in the L1/L2 cache while every row of the block of A streams past it.
Rows of C are independent, so blocks of rows are spread over the threads with prange.
What is still missing compared to BLAS: packing the tiles into contiguous buffers, a register-blocked
micro-kernel (several rows of C held in registers at once), and fused multiply-add.
"""
import numpy as np
from numba import njit, prange

TILE_I = 32
TILE_K = 128
TILE_J = 256


def matmul_tiled_loops(a, b, c):
    """c = a @ b for a: (M, K), b: (K, N), c: (M, N) (overwritten); all C-contiguous, one dtype."""
    M, K = a.shape
    N = b.shape[1]
    zero = c.dtype.type(0)
    num_row_blocks = (M + TILE_I - 1) // TILE_I
    for row_block in prange(num_row_blocks):            # blocks of rows of c: independent outputs
        i0 = row_block * TILE_I
        i1 = min(i0 + TILE_I, M)
        c[i0:i1, :] = zero
        for k0 in range(0, K, TILE_K):
            k1 = min(k0 + TILE_K, K)
            for j0 in range(0, N, TILE_J):
                j1 = min(j0 + TILE_J, N)
                width = j1 - j0
                for i in range(i0, i1, 4):              # four rows of c share each load of b_row
                    if i + 4 <= i1:
                        c_row0 = c[i, j0:j1]            # (width,) views; indices from 0 let it vectorise
                        c_row1 = c[i + 1, j0:j1]
                        c_row2 = c[i + 2, j0:j1]
                        c_row3 = c[i + 3, j0:j1]
                        for kk in range(k0, k1):
                            a0 = a[i, kk]
                            a1 = a[i + 1, kk]
                            a2 = a[i + 2, kk]
                            a3 = a[i + 3, kk]
                            b_row = b[kk, j0:j1]        # (width,)
                            for j in range(width):
                                b_kj = b_row[j]
                                c_row0[j] += a0 * b_kj
                                c_row1[j] += a1 * b_kj
                                c_row2[j] += a2 * b_kj
                                c_row3[j] += a3 * b_kj
                    else:                               # the last 1-3 rows, one at a time
                        for ii in range(i, i1):
                            c_row = c[ii, j0:j1]        # (width,)
                            for kk in range(k0, k1):
                                a_ik = a[ii, kk]
                                b_row = b[kk, j0:j1]    # (width,)
                                for j in range(width):
                                    c_row[j] += a_ik * b_row[j]

matmul_tiled_jit = njit(cache=True, parallel=True)(matmul_tiled_loops)


def matmul_tiled(a, b):
    """a: (M, K) @ b: (K, N) -> (M, N), computed by the tiled Numba loops above."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"cannot multiply shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise ValueError(f"dtypes differ: {a.dtype} and {b.dtype}")
    a = np.ascontiguousarray(a)                         # (M, K)
    b = np.ascontiguousarray(b)                         # (K, N)
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)   # (M, N)
    matmul_tiled_jit(a, b, c)
    return c
