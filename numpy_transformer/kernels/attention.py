"""Fused scaled dot-product attention in Numba: the twin of layers/attention.py.

Same names, arguments, shapes, dtypes and cache (an AttentionCache) as the NumPy reference, so a
forward on either backend feeds the backward of the other. What changes is how the work is done.
Each (batch, head) pair is one parallel task; inside it, queries go in blocks of QUERY_BLOCK rows and
keys in tiles of 64 to 256 (key_tile_cols), and every product of a block with a tile is a small matmul in BLAS
(np.dot inside the kernel). Numba fuses what lies between the matmuls: scaling, masking, the
exponentials and the running sums.

forward ("online softmax"), for a block of queries Q_i against the tiles K_j, V_j it may see:
    m = -inf, l = 0, A = 0                          per row: running max, sum of exp, p-weighted v
    for each tile j:
        S = scale * Q_i K_j^T  (masked entries -inf)                (block, tile)  BLAS, held as (tile, block)
        m_new = max(m, rowmax S);  c = exp(m - m_new)               rescale what was summed so far
        P = exp(S - m_new);  l = c l + rowsum P;  A = c A + P V_j                             BLAS
        m = m_new
    out_i = A / l,  lse_i = m + log(l)
  Only (block, tile) scores exist at a time: no (T, S) matrix unless weights are requested. The
  forward holds them transposed, keys by queries (S^T = K_j Q_i^T): the running max and sum of each
  query then run along a contiguous row of queries, one independent sum per query, and vectorise;
  along a row of keys every addition waits for the one before (measured: the forward 1.2x faster).
backward, recomputing the weights of each block and tile from q, k and the saved lse:
    P = exp(scale * Q_i K_j^T - lse_i)                                                      BLAS
    dV_j += P^T dO_i                                    from out = P V                      BLAS
    dP = dO_i V_j^T                                                                          BLAS
    dS = P * (dP - delta_i),  delta_t = dout_t . out_t = sum_s p_ts dp_ts       (softmax backward)
    dQ_i += scale dS K_j,  dK_j += scale dS^T Q_i                   (scores = scale q k^T)  BLAS

Layouts: q, k, v may be any strided (B, H, T, D) views (the multi-head layer passes views of its
(B, T, C) projections); each task copies its heads into contiguous (T, D) buffers first, one pass
along each sequence's rows for all its heads in the slice (memory order), so no transposed copy of a
whole array is ever made; its outputs are stored back the same way. The wrappers allocate outputs
in (B, T, H, D) memory order and return (B, H, T, D) views of them, so merging the heads afterwards
is free.

Each loop function is plain Python (run it with NUMBA_DISABLE_JIT=1 to step through it in a debugger)
and is compiled by alias below. The outer loop runs over a slice of the (batch, head) pairs, and
kernels/threads.py gives each thread its slice: the pairs' outputs are independent, so the result does
not depend on how the threads share them.
"""
import math

import numpy as np
from numba import njit

from ..layers.attention import AttentionCache, check_key_padding_mask
from .threads import run_tasks

QUERY_BLOCK = 64       # queries per block at most: any T works (the last block is shorter)
KEY_TILE_MIN = 64      # keys per tile: at least this many (fewer only at the end of the keys) ...
KEY_TILE_MAX = 256     # ... and at most this many
# OpenBLAS runs a matmul of m x n x k <= 4 * 65536 on the calling thread, and larger ones on its own
# threads too. Inside the kernels' threads that would put two thread pools on the same cores:
# measured here, a 64 x 128 x 64 tile made attention 40-70x slower. So every product of a block
# with a tile stays within BLAS_SINGLE_THREAD_WORK: tiles are as wide as that allows for 64 queries
# (256 keys for D = 16, 128 for D = 32, 64 for D = 64: fewer, larger products), and for D = 128 the
# block shrinks to 32 queries instead.
BLAS_SINGLE_THREAD_WORK = 4 * 65536
NS_PER_MULTIPLY_ADD = 0.1   # one thread's time per multiply-add of the small BLAS tiles, roughly (run_tasks' estimate)


def key_tile_cols(D):
    """Keys per tile for head size D: as many as keep QUERY_BLOCK x tile x D within one thread's BLAS."""
    return max(KEY_TILE_MIN, min(KEY_TILE_MAX, BLAS_SINGLE_THREAD_WORK // (QUERY_BLOCK * D)))


def query_block_rows(D, tile):
    """Queries per block for head size D and tiles of `tile` keys: QUERY_BLOCK, fewer when D is large."""
    return max(1, min(QUERY_BLOCK, BLAS_SINGLE_THREAD_WORK // (tile * D)))

# Cody-Waite split of ln 2: n * LN2_HI is exact for the n that occur, so r = x - n ln 2 stays accurate.
LN2_HI = 0.693145751953125
LN2_LO = 1.4286068203094172321e-06
LOG2E = 1.4426950408889634
EXP_FLUSH = -41.0      # exp(x) below this is returned as 0: an absolute error under 1.6e-18
# 1/i! for the Taylor series of exp, highest first (Horner order)
EXP_TAYLOR = (1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
              1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1.0 / 2, 1.0, 1.0)
# float32 needs only the terms to r^7: the first one dropped, 0.35^8 / 8! = 5.6e-9 (under 8e-9 relative), is
# below a tenth of a float32 ulp. Measured over 2 million inputs in [-41, 0]: under 1% of results move by one ulp,
# and the worst error against the true exp is 1.19 ulp (1.13 with every term). 5 fewer multiply-adds per exponential
# (the attention 1.05x faster).
EXP_TAYLOR_FLOAT32 = EXP_TAYLOR[5:]


def visible_keys_loops(t, T, S, causal):
    """How many leading keys query t may see: all S, or s <= t + (S - T) under the causal mask
    (query t sits at absolute position t + S - T when S - T earlier keys are cached)."""
    if not causal:
        return S
    return min(S, max(t + S - T + 1, 0))


# The same polynomial exp also stands in kernels/ffn.py, on purpose: a kernel and its helpers live in one
# module (docs/kernels.md: a cached caller of a helper edited in another module returned stale results).
# How it is written, and why (each point measured in kernels/ffn.py): every constant is cast to the working
# dtype (a bare Python 2 or 0.5 would turn float32 arithmetic into float64); the whole number n stays a float
# (np.floor) and 2^-n comes from int32 shifts, as AVX2 has no vector conversion between floats and int64; and
# the kernels use error_model="numpy", since Numba's default checks every division for a zero divisor, and
# that branch stops a loop from vectorising.
def exp_nonpositive_loops(values, count):
    """values[:count] = exp(values[:count]) in place, for values <= 0 (-inf gives 0).

    Why not math.exp: without SVML it is a scalar library call per entry, and the softmax would
    spend most of its time there. Here every step is plain arithmetic, so the loop vectorises:
        x = n ln2 + r,  n = round(x / ln2) in [-59, 0],  |r| <= ln2 / 2
        exp(x) = exp(r) / 2^-n,  exp(r) = sum_{i<=12} r^i / i!   (truncation < 2e-16 relative; i <= 7 in float32)
        2^-n = 2^a 2^b (a, b <= 30, two exact int32 shifts); x < EXP_FLUSH (-41) gives 0 (true value < 1.6e-18).
    Agrees with np.exp to a few units in the last place above the flush point.
    """
    dtype = values.dtype.type
    zero = dtype(0)
    flush = dtype(EXP_FLUSH)
    for j in range(count):
        x = values[j]
        clamped = max(x, flush)                         # a select, not a branch: keeps -inf out of the arithmetic
        n = np.floor(clamped * dtype(LOG2E) + dtype(0.5))   # round(x / ln2), a whole number kept as a float
        r = (clamped - n * dtype(LN2_HI)) - n * dtype(LN2_LO)
        if values.itemsize == 4:                        # float32 (a constant: Numba compiles one branch;
                                                        # kernels/ffn.py's helpers get a dtype: is_float32)
            poly = dtype(EXP_TAYLOR_FLOAT32[0])
            for coefficient in EXP_TAYLOR_FLOAT32[1:]:  # Horner: (...(c7 r + c6) r + ...) r + 1
                poly = poly * r + dtype(coefficient)
        else:
            poly = dtype(EXP_TAYLOR[0])
            for coefficient in EXP_TAYLOR[1:]:          # Horner: (...(c12 r + c11) r + ...) r + 1
                poly = poly * r + dtype(coefficient)
        steps = -n
        a = min(steps, dtype(30))
        power = dtype(np.int32(np.int32(1) << np.int32(a))) * dtype(np.int32(np.int32(1) << np.int32(steps - a)))
        values[j] = poly / power if x > flush else zero   # a select on values


def add_into_loops(target, source):
    """target += source for two (rows, D) arrays, row by row (target is often a slice of a larger buffer;
    BLAS writes each tile's product into a scratch buffer, and this adds it where it belongs)."""
    for i in range(source.shape[0]):
        target_row = target[i]                          # (D,) views, indexed from 0
        source_row = source[i]
        for d in range(source.shape[1]):
            target_row[d] += source_row[d]


def heads_in_slice_loops(b, first, last, H):
    """The heads of sequence b that the (batch, head) pairs first..last-1 hold: (h_first, h_end);
    pair number b * H + h is head h of sequence b."""
    return max(first - b * H, 0), min(last - b * H, H)


def copy_heads_loops(source, b, h_first, h_end, target):
    """target[h, t, d] = source[b, h, t, d] for the heads h_first..h_end-1 of sequence b: strided (B, H, T, D)
    views into contiguous (T, D) buffers, so that BLAS can read them without copying again.

    Token by token, then head by head: the model's heads lie side by side in each token's row (memory
    (B, T, H, D)), so this reads memory in order. Copied one head at a time, the reads were 128-byte
    pieces 1.5 KB apart, and the copies took a quarter of the attention backward (measured)."""
    for t in range(target.shape[1]):
        for h in range(h_first, h_end):
            source_row = source[b, h, t]                # (D,) views
            target_row = target[h, t]
            for d in range(target.shape[2]):
                target_row[d] = source_row[d]


def store_heads_loops(source, b, h_first, h_end, target):
    """target[b, h, t, d] = source[h, t, d] for the heads h_first..h_end-1: copy_heads_loops the other way."""
    for t in range(source.shape[1]):
        for h in range(h_first, h_end):
            source_row = source[h, t]                   # (D,) views
            target_row = target[b, h, t]
            for d in range(source.shape[2]):
                target_row[d] = source_row[d]


visible_keys_jit = njit(cache=True, error_model="numpy", inline="always")(visible_keys_loops)   # helpers, inlined into the kernels
key_tile_cols_jit = njit(cache=True, error_model="numpy")(key_tile_cols)
query_block_rows_jit = njit(cache=True, error_model="numpy")(query_block_rows)
exp_nonpositive_jit = njit(cache=True, error_model="numpy")(exp_nonpositive_loops)
heads_in_slice_jit = njit(cache=True, error_model="numpy")(heads_in_slice_loops)
copy_heads_jit = njit(cache=True, error_model="numpy")(copy_heads_loops)
store_heads_jit = njit(cache=True, error_model="numpy")(store_heads_loops)
add_into_jit = njit(cache=True, error_model="numpy")(add_into_loops)


def masked_weights_loops(scores, t0, s0, T, S, causal, padding_row, scale, lse_block):
    """Turn a block of raw products q_t . k_s (rows t0.., columns s0..) into attention weights
    p = exp(scale q_t . k_s - lse_t), from each row's log-sum-exp lse_block (rows,) saved by the forward.
    Masked entries (padding, or a key after the query under the causal mask) get weight 0, and so
    does every entry of a row whose lse is -inf (it sees no key at all)."""
    rows, cols = scores.shape
    neg_inf = scores.dtype.type(-np.inf)
    padding_tile = padding_row[s0:s0 + cols]            # (cols,) a view, indexed from 0 so the loop vectorises
    for i in range(rows):
        row = scores[i]                                 # (cols,) a view
        row_lse = lse_block[i]
        if row_lse == neg_inf:
            row[:] = scores.dtype.type(0)
            continue
        visible = visible_keys_jit(t0 + i, T, S, causal) - s0   # keys of this tile row i may see
        visible = min(max(visible, 0), cols)
        for j in range(visible):
            row[j] = neg_inf if padding_tile[j] else row[j] * scale - row_lse
        exp_nonpositive_jit(row, visible)               # exp(-inf) = 0 where padding
        for j in range(visible, cols):                  # after the query (causal): weight 0, no exponential
            row[j] = scores.dtype.type(0)


masked_weights_jit = njit(cache=True, error_model="numpy")(masked_weights_loops)


def hidden_queries_loops(s, t0, rows, T, S, causal, padding_row):
    """How many of the queries t0..t0+rows-1, counted from the first, may not see key s: all of them
    if the key is padding, else under the causal mask those before t = s - (S - T) (visible_keys_loops'
    rule, s <= t + S - T, solved for t), else none."""
    if padding_row[s]:
        return rows
    if causal:
        return min(max(s - (S - T) - t0, 0), rows)
    return 0


hidden_queries_jit = njit(cache=True, error_model="numpy", inline="always")(hidden_queries_loops)


def mask_keys_loops(scores_t, t0, s0, T, S, causal, padding_row, scale):
    """Scale a (keys, queries) block of raw products k_s . q_t (keys s0.., queries t0..) into scores,
    with -inf where the key is padding or, under the causal mask, comes after the query.

    rows and cols keep their meaning from the rest of this file, rows = queries and cols = keys, so
    this transposed block has shape (cols, rows)."""
    cols, rows = scores_t.shape
    neg_inf = scores_t.dtype.type(-np.inf)
    for j in range(cols):
        key_row = scores_t[j]                           # (rows,) one key against every query of the block
        hidden = hidden_queries_jit(s0 + j, t0, rows, T, S, causal, padding_row)
        for i in range(hidden):
            key_row[i] = neg_inf
        seen_by = key_row[hidden:]                      # (rows - hidden,) a view, indexed from 0 so the loop vectorises
        for i in range(rows - hidden):
            seen_by[i] = seen_by[i] * scale


mask_keys_jit = njit(cache=True, error_model="numpy")(mask_keys_loops)


def attention_forward_loops(first, last, q, k, v, scale, causal, padding, out, lse, weights, keep_weights):
    """Fill out (B, H, T, D), lse (B, H, T) and, if keep_weights, weights (B, H, T, S), for the
    (batch, head) pairs numbered first..last-1 (pair b * H + h).

    q: (B, H, T, D), k, v: (B, H, S, D), any strides; padding: (B, S) bool, True = masked key (all
    False without a padding mask); scale: 1 / sqrt(D); out may be any strided view. A query that
    sees no key gets out = 0 and lse = -inf, as in the reference.

    Scores are held keys-by-queries, (cols, rows): each per-query running max and sum then runs
    along a contiguous row of queries, one independent sum per query, so those loops vectorise
    (summed along a row of keys, every addition would wait for the one before).
    """
    B, H, T, D = q.shape
    S = k.shape[2]
    zero = q.dtype.type(0)                              # accumulators in the working dtype (float32 stays float32)
    one = q.dtype.type(1)
    neg_inf = q.dtype.type(-np.inf)
    scale = q.dtype.type(scale)
    q_heads = np.empty((H, T, D), dtype=q.dtype)        # (H, T, D) contiguous copies of one sequence's heads
    k_heads = np.empty((H, S, D), dtype=q.dtype)        # (H, S, D)
    v_heads = np.empty((H, S, D), dtype=q.dtype)        # (H, S, D)
    out_heads = np.empty((H, T, D), dtype=q.dtype)      # (H, T, D) the outputs, stored all at once
    key_tile = key_tile_cols_jit(D)                     # keys per tile
    block = query_block_rows_jit(D, key_tile)           # queries per block
    scores_buffer = np.empty(block * key_tile, dtype=q.dtype)
    pv_buffer = np.empty(block * D, dtype=q.dtype)
    acc = np.empty((block, D), dtype=q.dtype)           # running sum of exp(s - m) v, per query
    running_max = np.empty(block, dtype=q.dtype)        # (block,) m, per query
    running_sum = np.empty(block, dtype=q.dtype)        # (block,) l, per query
    tile_max = np.empty(block, dtype=q.dtype)           # (block,) per query: its largest score in this tile
    shift = np.empty(block, dtype=q.dtype)              # (block,) the new max, 0 where a query sees nothing yet
    for b in range(first // H, (last - 1) // H + 1):   # the sequences whose pairs this slice holds
        h_first, h_end = heads_in_slice_jit(b, first, last, H)   # ... and which of their heads
        copy_heads_jit(q, b, h_first, h_end, q_heads)   # all those heads at once, in memory order
        copy_heads_jit(k, b, h_first, h_end, k_heads)
        copy_heads_jit(v, b, h_first, h_end, v_heads)
        for h in range(h_first, h_end):                 # independent (batch, head) pairs
            q_head = q_heads[h]                         # (T, D)
            k_head = k_heads[h]                         # (S, D)
            v_head = v_heads[h]                         # (S, D)
            out_head = out_heads[h]                     # (T, D)
            for t0 in range(0, T, block):
                rows = min(block, T - t0)
                q_block = q_head[t0:t0 + rows]              # (rows, D)
                block_keys = visible_keys_jit(t0 + rows - 1, T, S, causal)   # the block's last row sees most
                acc[:rows] = zero
                running_max[:rows] = neg_inf
                running_sum[:rows] = zero
                for s0 in range(0, block_keys, key_tile):
                    cols = min(key_tile, block_keys - s0)
                    scores_t = scores_buffer[:cols * rows].reshape((cols, rows))   # (cols, rows) keys by queries
                    np.dot(k_head[s0:s0 + cols], q_block.T, scores_t)          # k_s . q_t, BLAS
                    mask_keys_jit(scores_t, t0, s0, T, S, causal, padding[b], scale)
                    tile_max[:rows] = neg_inf
                    for j in range(cols):
                        key_row = scores_t[j]               # (rows,)
                        for i in range(rows):
                            tile_max[i] = max(tile_max[i], key_row[i])
                    for i in range(rows):
                        new_max = max(running_max[i], tile_max[i])
                        # what was summed so far shrinks by exp(m - m_new): 0 on a first tile (m = -inf)
                        correction = one if new_max == neg_inf else math.exp(running_max[i] - new_max)
                        shift[i] = zero if new_max == neg_inf else new_max
                        running_sum[i] *= correction
                        running_max[i] = new_max
                        acc_row = acc[i]                    # (D,)
                        for d in range(D):
                            acc_row[d] *= correction
                    for j in range(cols):
                        key_row = scores_t[j]               # (rows,)
                        for i in range(rows):
                            key_row[i] = key_row[i] - shift[i]
                        exp_nonpositive_jit(key_row, rows)  # p = exp(s - m_new), 0 where masked
                        for i in range(rows):
                            running_sum[i] += key_row[i]
                    pv = pv_buffer[:rows * D].reshape((rows, D))
                    np.dot(scores_t.T, v_head[s0:s0 + cols], pv)               # sum_s p_ts v_s, BLAS
                    add_into_jit(acc[:rows], pv)
                for i in range(rows):
                    t = t0 + i
                    out_row = out_head[t]                   # (D,)
                    if running_max[i] == neg_inf:           # no visible key: zero output, lse = -inf
                        out_row[:] = zero
                        lse[b, h, t] = neg_inf
                    else:
                        inv_sum = one / running_sum[i]
                        acc_row = acc[i]                    # (D,)
                        for d in range(D):
                            out_row[d] = acc_row[d] * inv_sum
                        lse[b, h, t] = running_max[i] + math.log(running_sum[i])
                if keep_weights:                            # the (rows, S) map, only when asked for
                    row_lse = lse[b, h, t0:t0 + rows]       # (rows,)
                    for s0 in range(0, S, key_tile):        # tile by tile: each matmul stays on this thread
                        cols = min(key_tile, S - s0)
                        tile = scores_buffer[:rows * cols].reshape((rows, cols))   # (rows, cols)
                        np.dot(q_block, k_head[s0:s0 + cols].T, tile)
                        masked_weights_jit(tile, t0, s0, T, S, causal, padding[b], scale, row_lse)
                        for i in range(rows):
                            target = weights[b, h, t0 + i, s0:s0 + cols]    # (cols,) a view into the output
                            tile_row = tile[i]
                            for j in range(cols):
                                target[j] = tile_row[j]
        store_heads_jit(out_heads, b, h_first, h_end, out)   # ... and stored the same way


def attention_backward_loops(first, last, dout, q, k, v, out, lse, scale, causal, padding, dq, dk, dv):
    """Fill dq (B, H, T, D), dk, dv (B, H, S, D) for the (batch, head) pairs first..last-1; every
    input and output may be a strided view.

    Weights are recomputed block by tile from q, k and lse, never stored. dk and dv sum over query
    blocks, but only within one (batch, head) pair, so different pairs write disjoint outputs.
    """
    B, H, T, D = q.shape
    S = k.shape[2]
    zero = q.dtype.type(0)
    scale = q.dtype.type(scale)
    q_heads = np.empty((H, T, D), dtype=q.dtype)        # (H, T, D) contiguous copies, as in the forward
    dout_heads = np.empty((H, T, D), dtype=q.dtype)     # (H, T, D)
    k_heads = np.empty((H, S, D), dtype=q.dtype)        # (H, S, D)
    v_heads = np.empty((H, S, D), dtype=q.dtype)        # (H, S, D)
    delta = np.empty((H, T), dtype=q.dtype)             # (H, T) delta_t = dout_t . out_t
    products = np.empty((H, T, D), dtype=q.dtype)       # (H, T, D) dout * out, summed along rows into delta
    ones = np.ones(D, dtype=q.dtype)                    # (D,)
    dq_heads = np.empty((H, T, D), dtype=q.dtype)       # (H, T, D) sums over key tiles
    dk_heads = np.empty((H, S, D), dtype=q.dtype)       # (H, S, D) sums over query blocks
    dv_heads = np.empty((H, S, D), dtype=q.dtype)       # (H, S, D)
    key_tile = key_tile_cols_jit(D)                     # keys per tile
    block = query_block_rows_jit(D, key_tile)           # queries per block
    probs_buffer = np.empty(block * key_tile, dtype=q.dtype)
    dprobs_buffer = np.empty(block * key_tile, dtype=q.dtype)
    dq_buffer = np.empty(block * D, dtype=q.dtype)
    dkv_buffer = np.empty(key_tile * D, dtype=q.dtype)
    for b in range(first // H, (last - 1) // H + 1):   # the sequences whose pairs this slice holds
        h_first, h_end = heads_in_slice_jit(b, first, last, H)   # ... and which of their heads
        copy_heads_jit(q, b, h_first, h_end, q_heads)   # all those heads at once, in memory order
        copy_heads_jit(dout, b, h_first, h_end, dout_heads)
        copy_heads_jit(k, b, h_first, h_end, k_heads)
        copy_heads_jit(v, b, h_first, h_end, v_heads)
        for t in range(T):                              # delta = row sums of dout * out, BLAS below: a sum
            for head in range(h_first, h_end):          # along a row in a loop would not vectorise
                out_row = out[b, head, t]               # (D,) read in memory order, as copy_heads_loops does
                product_row = products[head, t]         # (D,)
                dout_row = dout_heads[head, t]          # (D,)
                for d in range(D):
                    product_row[d] = dout_row[d] * out_row[d]
        for head in range(h_first, h_end):              # head by head, so that a row's sum does not depend
            np.dot(products[head], ones, delta[head])   # on the slice: (T,) delta_t = sum_d dout_td out_td
        for h in range(h_first, h_end):                 # independent (batch, head) pairs
            q_head = q_heads[h]                         # (T, D)
            dout_head = dout_heads[h]                   # (T, D)
            k_head = k_heads[h]                         # (S, D)
            v_head = v_heads[h]                         # (S, D)
            dq_head = dq_heads[h]                       # (T, D)
            dk_head = dk_heads[h]                       # (S, D)
            dv_head = dv_heads[h]                       # (S, D)
            dq_head[:] = zero
            dk_head[:] = zero
            dv_head[:] = zero
            for t0 in range(0, T, block):
                rows = min(block, T - t0)
                q_block = q_head[t0:t0 + rows]              # (rows, D)
                dout_block = dout_head[t0:t0 + rows]        # (rows, D)
                block_keys = visible_keys_jit(t0 + rows - 1, T, S, causal)
                for s0 in range(0, block_keys, key_tile):
                    cols = min(key_tile, block_keys - s0)
                    k_tile = k_head[s0:s0 + cols]           # (cols, D)
                    v_tile = v_head[s0:s0 + cols]           # (cols, D)
                    probs = probs_buffer[:rows * cols].reshape((rows, cols))   # (rows, cols) p_ts
                    np.dot(q_block, k_tile.T, probs)                           # BLAS
                    masked_weights_jit(probs, t0, s0, T, S, causal, padding[b], scale, lse[b, h, t0:t0 + rows])
                    dkv = dkv_buffer[:cols * D].reshape((cols, D))
                    np.dot(probs.T, dout_block, dkv)                           # dv_s += sum_t p_ts dout_t
                    add_into_jit(dv_head[s0:s0 + cols], dkv)
                    dprobs = dprobs_buffer[:rows * cols].reshape((rows, cols))
                    np.dot(dout_block, v_tile.T, dprobs)                       # dp_ts = dout_t . v_s
                    for i in range(rows):                   # dprobs becomes scale * ds_ts, in place
                        p_row = probs[i]
                        dp_row = dprobs[i]
                        delta_t = delta[h, t0 + i]
                        for j in range(cols):
                            dp_row[j] = p_row[j] * (dp_row[j] - delta_t) * scale
                    dq_part = dq_buffer[:rows * D].reshape((rows, D))
                    np.dot(dprobs, k_tile, dq_part)                            # dq_t += sum_s ds_ts k_s
                    add_into_jit(dq_head[t0:t0 + rows], dq_part)
                    np.dot(dprobs.T, q_block, dkv)                             # dk_s += sum_t ds_ts q_t
                    add_into_jit(dk_head[s0:s0 + cols], dkv)
        store_heads_jit(dq_heads, b, h_first, h_end, dq)   # ... and stored the same way
        store_heads_jit(dk_heads, b, h_first, h_end, dk)
        store_heads_jit(dv_heads, b, h_first, h_end, dv)


attention_forward_jit = njit(cache=True, error_model="numpy", nogil=True)(attention_forward_loops)
attention_backward_jit = njit(cache=True, error_model="numpy", nogil=True)(attention_backward_loops)


def padding_or_none(key_padding_mask, B, S):
    """The kernels always take a (B, S) bool array; all False means no key is padding."""
    if key_padding_mask is None:
        return np.zeros((B, S), dtype=np.bool_)         # (B, S)
    return np.ascontiguousarray(key_padding_mask)       # (B, S)


def empty_heads(B, H, T, D, dtype):
    """An uninitialised (B, H, T, D) array laid out in memory as (B, T, H, D): merge_heads of it
    (transpose back and reshape to (B, T, H * D)) is then a view, not a copy."""
    return np.empty((B, T, H, D), dtype=dtype).transpose(0, 2, 1, 3)   # (B, H, T, D) view


def attention_forward(q, k, v, causal=False, key_padding_mask=None, need_weights=True):
    """Numba twin of layers.attention.attention_forward: same arguments, same (out, AttentionCache)."""
    B, H, T, D = q.shape
    S = k.shape[2]
    if k.shape != (B, H, S, D) or v.shape != k.shape:
        raise ValueError(f"k {k.shape} and v {v.shape} must both be (B, H, S, D) with q {q.shape}")
    key_padding_mask = check_key_padding_mask(key_padding_mask, B, S)
    k = k.astype(q.dtype, copy=False)                   # (B, H, S, D)
    v = v.astype(q.dtype, copy=False)                   # (B, H, S, D)
    scale = 1.0 / math.sqrt(D)
    out = empty_heads(B, H, T, D, q.dtype)              # (B, H, T, D)
    lse = np.empty((B, H, T), dtype=q.dtype)            # (B, H, T)
    weights_shape = (B, H, T, S) if need_weights else (0, 0, 0, 0)
    weights = np.empty(weights_shape, dtype=q.dtype)    # (B, H, T, S), or empty
    padding = padding_or_none(key_padding_mask, B, S)   # (B, S)
    run_tasks(attention_forward_jit, B * H, q, k, v, scale, causal, padding, out, lse, weights, need_weights,
              work_ns=NS_PER_MULTIPLY_ADD * 2 * B * H * T * S * D)
    cache = AttentionCache(q, k, v, out, lse, weights if need_weights else None, scale, causal, key_padding_mask)
    return out, cache


def attention_backward(dout, cache):
    """Numba twin of layers.attention.attention_backward: (dq, dk, dv) from any AttentionCache."""
    q, k, v = cache.q, cache.k, cache.v                 # (B, H, T|S, D), any strides
    B, H, T, D = q.shape
    S = k.shape[2]
    dout = dout.astype(q.dtype, copy=False)             # (B, H, T, D)
    dq = empty_heads(B, H, T, D, q.dtype)               # (B, H, T, D)
    dk = empty_heads(B, H, S, D, q.dtype)               # (B, H, S, D)
    dv = empty_heads(B, H, S, D, q.dtype)               # (B, H, S, D)
    padding = padding_or_none(cache.key_padding_mask, B, S)   # (B, S)
    run_tasks(attention_backward_jit, B * H, dout, q, k, v, cache.out, cache.lse, cache.scale, cache.causal, padding,
              dq, dk, dv, work_ns=NS_PER_MULTIPLY_ADD * 4 * B * H * T * S * D)
    return dq, dk, dv
