"""A blocked matrix multiply in Numba: a teaching kernel, NOT on the fast path.

It shows what BLAS does for you. C = A B computed naively (for i, j: C_ij = sum_k A_ik B_kj) reads
B down a column (a cache miss per element) and sums into one scalar, which the compiler may not
reorder without fastmath, so it does not vectorise. This kernel applies, one by one, the ideas a
BLAS library is built on:
  1. loop order i, k, j: C[i, :] += A[i, k] * B[k, :] runs along rows of B and C (contiguous) with
     no scalar sum, so the j loop vectorises (8 float32 per AVX2 instruction, 16 with AVX-512). Every inner loop
     indexes a 1-D view from 0 (c_row[j], not c[i, j0 + j]): Numba must otherwise allow for a
     negative index wrapping around, and then it does not vectorise (measured here: 10x slower).
  2. blocking for the caches: C is cut into tiles of MC x NC, and K into slices of KC. One tile of C
     needs an MC x KC block of A and a KC x NC block of B per slice: small enough to stay in the
     L1/L2 caches while they are reused (every row of B is used by MC rows of A, and so on).
  3. packing: both blocks are copied into contiguous local buffers, zero-padded to whole micro-steps.
     Rows of the packed B are adjacent in memory (rows of the real B are N * 4 bytes apart, and when
     N is a power of two they fight over the same cache sets), and the zero padding means the inner
     loops never handle edges.
  4. register blocking (the micro-kernel): the naive i, k, j loop loads and stores C once per
     multiply-add, and the CPU can store only about one vector per cycle. Here one pass updates 4
     rows of C with 4 steps of k at once: C[i:i+4, :] += A[i:i+4, k:k+4] @ B[k:k+4, :]. The 16
     entries of A sit in registers, each loaded vector of B feeds 4 rows, and each load/store of C
     carries 4 multiply-adds instead of 1.
Tiles of C are independent outputs, so they are shared out across the threads (kernels/threads.py).

Measured here (n = 1024, float32, 2 threads each): about 0.55x OpenBLAS (100 against 185 GFLOP/s); the
previous version (i, k, j loops in cache tiles, 4 rows of C per pass, one step of k, no
packing) reached 0.2x. Time it with a pause after any BLAS call:
OpenBLAS's threads keep spinning for about 0.1 s after a call and meanwhile halve this kernel's speed.
Why BLAS still wins:
  - its micro-kernel, written in assembly, keeps a whole block of C in registers for all KC steps
    of k, so C is loaded and stored once per KC steps, not once per 4. Written in Numba (a 4 x 16
    local array of C summed over the whole k loop), that did not even vectorise: LLVM cannot prove
    the local array does not overlap the packed blocks (measured here: 0.1x BLAS);
  - it uses fused multiply-add (one instruction, one rounding); without fastmath the compiler must
    keep multiply and add separate, so that the result equals this Python code bit for bit;
  - block sizes, prefetching and the split between threads are tuned for each CPU model.
"""
import numpy as np
from numba import njit

from .threads import run_tasks

MR = 4      # rows of C per micro-kernel pass (the code below writes these 4 rows out by hand)
KU = 4      # steps of k per micro-kernel pass (idem)
MC = 256    # rows of C in one tile (a multiple of MR)
NC = 256    # columns of C in one tile
KC = 256    # steps of k per slice. In float32 the packed blocks of A (MC x KC) and B (KC x NC) and the
            # tile of C (MC x NC) take 256 KiB each: together they fit the 1 MiB L2 cache of a core.
            # Each tile packs its own blocks, so B is copied M / MC times in all and A N / NC times:
            # on 2 threads at n = 1024, MC = 256 measured a little faster than MC = 64.


def matmul_tiled_loops(first, last, a, b, c):
    """c = a @ b for a: (M, K), b: (K, N), c: (M, N) (overwritten); all C-contiguous, one dtype.
    This call fills the tiles numbered first..last-1 (row-major over the grid of MC x NC tiles)."""
    M, K = a.shape
    N = b.shape[1]
    zero = c.dtype.type(0)
    depth_max = min(KC, (K + KU - 1) // KU * KU)        # K rounded up to whole micro-steps, at most KC
    col_tiles = (N + NC - 1) // NC
    for tile in range(first, last):                     # tiles of c: independent outputs
        i0 = (tile // col_tiles) * MC
        j0 = (tile % col_tiles) * NC
        rows = min(MC, M - i0)
        cols = min(NC, N - j0)
        rows_pad = (rows + MR - 1) // MR * MR
        a_pack = np.zeros((rows_pad, depth_max), dtype=c.dtype)   # (rows_pad, depth_max) block of a
        b_pack = np.zeros((depth_max, cols), dtype=c.dtype)       # (depth_max, cols) block of b
        c_pack = np.zeros((rows_pad, cols), dtype=c.dtype)        # (rows_pad, cols) tile of c, summed here
        for k0 in range(0, K, KC):                      # slices of k: a_pack, b_pack refilled each time
            depth = min(KC, K - k0)
            depth_pad = (depth + KU - 1) // KU * KU
            # pack: a[i0:i0+rows, k0:k0+depth] and b[k0:k0+depth, j0:j0+cols], zeros past the edges
            for i in range(rows):                       # rows rows..rows_pad stay zero from np.zeros
                a_row = a[i0 + i, k0:k0 + depth]        # (depth,)
                a_pack_row = a_pack[i]                  # (depth_max,)
                for kk in range(depth):
                    a_pack_row[kk] = a_row[kk]
                for kk in range(depth, depth_pad):
                    a_pack_row[kk] = zero
            for kk in range(depth):
                b_row = b[k0 + kk, j0:j0 + cols]        # (cols,)
                b_pack_row = b_pack[kk]                 # (cols,)
                for j in range(cols):
                    b_pack_row[j] = b_row[j]
            for kk in range(depth, depth_pad):
                b_pack_row = b_pack[kk]                 # (cols,)
                for j in range(cols):
                    b_pack_row[j] = zero
            # micro-kernel: c_pack[i:i+4, :] += a_pack[i:i+4, kk:kk+4] @ b_pack[kk:kk+4, :]
            for i in range(0, rows_pad, MR):
                c0 = c_pack[i]                          # (cols,) the 4 rows of c being summed
                c1 = c_pack[i + 1]
                c2 = c_pack[i + 2]
                c3 = c_pack[i + 3]
                for kk in range(0, depth_pad, KU):
                    # the 4 x 4 block of a, held in registers for the whole j loop
                    a00, a01, a02, a03 = a_pack[i, kk], a_pack[i, kk + 1], a_pack[i, kk + 2], a_pack[i, kk + 3]
                    a10, a11, a12, a13 = a_pack[i + 1, kk], a_pack[i + 1, kk + 1], a_pack[i + 1, kk + 2], a_pack[i + 1, kk + 3]
                    a20, a21, a22, a23 = a_pack[i + 2, kk], a_pack[i + 2, kk + 1], a_pack[i + 2, kk + 2], a_pack[i + 2, kk + 3]
                    a30, a31, a32, a33 = a_pack[i + 3, kk], a_pack[i + 3, kk + 1], a_pack[i + 3, kk + 2], a_pack[i + 3, kk + 3]
                    b0 = b_pack[kk]                     # (cols,) the 4 rows of b
                    b1 = b_pack[kk + 1]
                    b2 = b_pack[kk + 2]
                    b3 = b_pack[kk + 3]
                    for j in range(cols):               # vectorised: 8 or 16 columns per instruction
                        x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
                        c0[j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                        c1[j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
                        c2[j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                        c3[j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
        for i in range(rows):                           # unpack: the valid part of the tile into c
            c_pack_row = c_pack[i]                      # (cols,)
            c_row = c[i0 + i, j0:j0 + cols]             # (cols,)
            for j in range(cols):
                c_row[j] = c_pack_row[j]

matmul_tiled_jit = njit(cache=True, nogil=True)(matmul_tiled_loops)


def tile_count(M, N):
    """How many MC x NC tiles cover an (M, N) result: the tasks run_tasks shares out."""
    return ((M + MC - 1) // MC) * ((N + NC - 1) // NC)


def matmul_tiled(a, b):
    """a: (M, K) @ b: (K, N) -> (M, N), computed by the blocked Numba loops above."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"cannot multiply shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise ValueError(f"dtypes differ: {a.dtype} and {b.dtype}")
    a = np.ascontiguousarray(a)                         # (M, K)
    b = np.ascontiguousarray(b)                         # (K, N)
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)   # (M, N)
    run_tasks(matmul_tiled_jit, tile_count(a.shape[0], b.shape[1]), a, b, c,
              work_ns=0.1 * a.size * b.shape[1])        # ~0.1 ns per multiply-add on one thread
    return c
