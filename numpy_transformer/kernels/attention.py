"""Fused scaled dot-product attention in Numba: the twin of layers/attention.py.

Same names, arguments, shapes, dtypes and cache (an AttentionCache) as the NumPy reference, so a
forward on either backend feeds the backward of the other. What changes is how the work is done:

forward, one query row t at a time, keys visited in tiles of KEY_TILE (the "online softmax"):
    m = -inf, l = 0, a = 0                         running max, running sum of exp, running p-weighted v
    for each tile of keys:  s_j = scale * q_t . k_j  (masked keys skipped)
        m_new = max(m, max_j s_j);  c = exp(m - m_new)           rescale what was summed so far
        l = c l + sum_j exp(s_j - m_new);  a = c a + sum_j exp(s_j - m_new) v_j;  m = m_new
    out_t = a / l,  lse_t = m + log(l)
  Only a (KEY_TILE,) buffer of scores exists: no (T, S) matrix unless the weights are requested.
backward, recomputing each weight from q, k and the saved lse (p_tj = exp(s_tj - lse_t)):
    dv_j += p_tj dout_t                     from out_t = sum_j p_tj v_j
    dp_tj = dout_t . v_j
    ds_tj = p_tj (dp_tj - delta_t),  delta_t = dout_t . out_t = sum_j p_tj dp_tj   (softmax backward)
    dq_t += scale ds_tj k_j,  dk_j += scale ds_tj q_t                          (scores = scale q k^T)

Each loop function is plain Python (run it with NUMBA_DISABLE_JIT=1 to step through it in a debugger)
and is compiled by alias below. The outer prange runs over (batch, head) pairs: their outputs are
independent, so the result does not depend on how threads share the work.
"""
import math

import numpy as np
from numba import njit, prange

from ..layers.attention import AttentionCache, check_key_padding_mask

KEY_TILE = 64          # keys scored at once in the forward; any T, S work (the last tile is shorter)

# Cody-Waite split of ln 2: n * LN2_HI is exact for the n that occur, so r = x - n ln 2 stays accurate.
LN2_HI = 0.693145751953125
LN2_LO = 1.4286068203094172321e-06
LOG2E = 1.4426950408889634
EXP_FLUSH = -43.0      # exp(x) below this is returned as 0: an absolute error under 2.2e-19


def visible_keys_loops(t, T, S, causal):
    """How many leading keys query t may see: all S, or s <= t + (S - T) under the causal mask
    (query t sits at absolute position t + S - T when S - T earlier keys are cached)."""
    if not causal:
        return S
    return min(S, max(t + S - T + 1, 0))


# The same polynomial exp also stands in kernels/ffn.py, on purpose: a kernel and its helpers live in one
# module (shared/DESIGN.md: a cached caller of a helper edited in another module returned stale results).
def exp_nonpositive_loops(values, count):
    """values[:count] = exp(values[:count]) in place, for values <= 0 (-inf gives 0).

    Why not math.exp: without SVML it is a scalar library call per entry, and the softmax would
    spend most of its time there. Here every step is plain arithmetic, so the loop vectorises:
        x = n ln2 + r,  n = round(x / ln2) in [-62, 0],  |r| <= ln2 / 2
        exp(x) = exp(r) / 2^-n,  exp(r) = sum_{i<=12} r^i / i!   (truncation < 2e-16 relative)
        2^-n = 1 << -n, an integer shift; x < EXP_FLUSH (-43) gives 0 (true value < 2.2e-19).
    Agrees with np.exp to a few units in the last place above the flush point.
    """
    one = values.dtype.type(1)
    zero = values.dtype.type(0)
    flush = values.dtype.type(EXP_FLUSH)
    log2e = values.dtype.type(LOG2E)
    ln2_hi = values.dtype.type(LN2_HI)
    ln2_lo = values.dtype.type(LN2_LO)
    for j in range(count):
        x = values[j]
        small = x < flush
        x = flush if small else x                       # keeps -inf out of the arithmetic
        steps = math.floor(x * log2e + values.dtype.type(0.5))   # n <= 0, an integer
        n = values.dtype.type(steps)
        r = (x - n * ln2_hi) - n * ln2_lo
        poly = one + r * (one + r * (one / 2 + r * (one / 6 + r * (one / 24 + r * (one / 120 + r * (
            one / 720 + r * (one / 5040 + r * (one / 40320 + r * (one / 362880 + r * (
                one / 3628800 + r * (one / 39916800 + r * (one / 479001600))))))))))))
        power = values.dtype.type(np.int64(1) << np.int64(-steps))    # 2^-n, exact
        values[j] = zero if small else poly / power


visible_keys_jit = njit(cache=True, inline="always")(visible_keys_loops)   # helpers, inlined into the kernels
exp_nonpositive_jit = njit(cache=True, inline="always")(exp_nonpositive_loops)


def attention_forward_loops(q, k_t, v, scale, causal, padding, out, lse, weights, keep_weights):
    """Fill out (B, H, T, D), lse (B, H, T) and, if keep_weights, weights (B, H, T, S).

    q: (B, H, T, D), k_t: (B, H, D, S) keys transposed, v: (B, H, S, D), all contiguous;
    padding: (B, S) bool, True = masked key (all False without a padding mask); scale: 1 / sqrt(D).
    Loops run along the last, contiguous axis of 1-D views indexed from 0, and never sum into one
    scalar, so they vectorise without fastmath. (Numba must allow for a negative index wrapping
    around in k_t[b, h, d, start + j]; in k_tile[j] with j from range() it need not: measured ~10x.) A query that sees no key gets out = 0 and lse = -inf, as in the reference.
    """
    B, H, T, D = q.shape
    S = k_t.shape[3]
    zero = q.dtype.type(0)                              # accumulators in the working dtype (float32 stays float32)
    neg_inf = q.dtype.type(-np.inf)
    scale = q.dtype.type(scale)
    for bh in prange(B * H):                            # independent (batch, head) pairs
        b = bh // H
        h = bh - b * H
        tile = np.empty(KEY_TILE, dtype=q.dtype)        # (KEY_TILE,) scores, then weights, of one key tile
        acc = np.empty(D, dtype=q.dtype)                # (D,) running sum of exp(s - m) v
        for t in range(T):
            q_row = q[b, h, t]                          # (D,) a view: loops index views from 0 (see below)
            num_visible = visible_keys_jit(t, T, S, causal)
            running_max = neg_inf
            running_sum = zero
            acc[:] = zero
            for tile_start in range(0, num_visible, KEY_TILE):
                tile_len = min(KEY_TILE, num_visible - tile_start)
                tile[:tile_len] = zero
                for d in range(D):                      # tile = q_t . k_j for the tile's keys
                    q_td = q_row[d]
                    k_tile = k_t[b, h, d, tile_start:tile_start + tile_len]   # (tile_len,)
                    for j in range(tile_len):
                        tile[j] += q_td * k_tile[j]
                tile_max = neg_inf
                for j in range(tile_len):
                    if padding[b, tile_start + j]:
                        tile[j] = neg_inf
                    else:
                        tile[j] = tile[j] * scale
                        tile_max = max(tile_max, tile[j])
                if tile_max == neg_inf:                 # every key of the tile is padding
                    continue
                new_max = max(running_max, tile_max)
                correction = math.exp(running_max - new_max)   # 0 on the first tile (exp(-inf))
                running_sum *= correction
                for d in range(D):
                    acc[d] *= correction
                for j in range(tile_len):
                    tile[j] = tile[j] - new_max
                exp_nonpositive_jit(tile, tile_len)   # tile = exp(s_j - m_new), 0 for padding
                for j in range(tile_len):
                    p = tile[j]
                    running_sum += p
                    v_row = v[b, h, tile_start + j]     # (D,)
                    for d in range(D):
                        acc[d] += p * v_row[d]
                running_max = new_max
            out_row = out[b, h, t]                      # (D,)
            if running_max == neg_inf:                  # no visible key: zero output, lse = -inf
                out_row[:] = zero
                lse[b, h, t] = neg_inf
            else:
                inv_sum = q.dtype.type(1) / running_sum
                for d in range(D):
                    out_row[d] = acc[d] * inv_sum
                lse[b, h, t] = running_max + math.log(running_sum)
            if keep_weights:                            # the (T, S) map, only when asked for
                row = weights[b, h, t]                  # (S,) a view into the output
                row[:] = zero
                if lse[b, h, t] == neg_inf:
                    continue
                for d in range(D):
                    q_td = q_row[d]
                    k_keys = k_t[b, h, d]               # (S,)
                    for s in range(num_visible):
                        row[s] += q_td * k_keys[s]
                for s in range(num_visible):
                    row[s] = neg_inf if padding[b, s] else row[s] * scale - lse[b, h, t]
                exp_nonpositive_jit(row, num_visible)


def attention_backward_loops(dout, q, k, k_t, v_t, out, lse, scale, causal, padding, dq, dk, dv):
    """Fill dq (B, H, T, D), dk, dv (B, H, S, D), which must arrive zeroed.

    k: (B, H, S, D) and its transpose k_t, v_t: (B, H, D, S). Weights are recomputed one query row
    at a time from q, k and lse, never stored. dk and dv sum over queries, but only within one
    (batch, head) pair, so the prange iterations still write disjoint outputs.
    """
    B, H, T, D = q.shape
    S = k.shape[2]
    zero = q.dtype.type(0)
    neg_inf = q.dtype.type(-np.inf)
    scale = q.dtype.type(scale)
    for bh in prange(B * H):
        b = bh // H
        h = bh - b * H
        probs = np.empty(S, dtype=q.dtype)              # (S,) p_tj for one query row
        dprobs = np.empty(S, dtype=q.dtype)             # (S,) dp_tj = dout_t . v_j
        for t in range(T):
            row_lse = lse[b, h, t]
            if row_lse == neg_inf:                      # saw no key: every weight is 0, nothing flows
                continue
            num_visible = visible_keys_jit(t, T, S, causal)
            q_row = q[b, h, t]                          # (D,) views, indexed from 0 so loops vectorise
            dout_row = dout[b, h, t]                    # (D,)
            out_row = out[b, h, t]                      # (D,)
            dq_row = dq[b, h, t]                        # (D,)
            delta = zero                                # delta_t = dout_t . out_t = sum_j p_tj dp_tj
            for d in range(D):
                delta += dout_row[d] * out_row[d]
            probs[:num_visible] = zero
            dprobs[:num_visible] = zero
            for d in range(D):
                q_td = q_row[d]
                dout_td = dout_row[d]
                k_keys = k_t[b, h, d]                   # (S,)
                v_keys = v_t[b, h, d]                   # (S,)
                for s in range(num_visible):
                    probs[s] += q_td * k_keys[s]
                    dprobs[s] += dout_td * v_keys[s]
            for s in range(num_visible):
                probs[s] = neg_inf if padding[b, s] else probs[s] * scale - row_lse
            exp_nonpositive_jit(probs, num_visible)   # p_ts = exp(s_ts - lse_t), 0 for padding
            for s in range(num_visible):
                p = probs[s]
                dscore = p * (dprobs[s] - delta) * scale    # d(loss)/d(q_t . k_s)
                k_row = k[b, h, s]                      # (D,)
                dk_row = dk[b, h, s]                    # (D,)
                dv_row = dv[b, h, s]                    # (D,)
                for d in range(D):
                    dv_row[d] += p * dout_row[d]
                    dk_row[d] += dscore * q_row[d]
                    dq_row[d] += dscore * k_row[d]


attention_forward_jit = njit(cache=True, parallel=True)(attention_forward_loops)
attention_backward_jit = njit(cache=True, parallel=True)(attention_backward_loops)


def padding_or_none(key_padding_mask, B, S):
    """The kernels always take a (B, S) bool array; all False means no key is padding."""
    if key_padding_mask is None:
        return np.zeros((B, S), dtype=np.bool_)         # (B, S)
    return np.ascontiguousarray(key_padding_mask)       # (B, S)


def attention_forward(q, k, v, causal=False, key_padding_mask=None, need_weights=True):
    """Numba twin of layers.attention.attention_forward: same arguments, same (out, AttentionCache)."""
    B, H, T, D = q.shape
    S = k.shape[2]
    if k.shape != (B, H, S, D) or v.shape != k.shape:
        raise ValueError(f"k {k.shape} and v {v.shape} must both be (B, H, S, D) with q {q.shape}")
    key_padding_mask = check_key_padding_mask(key_padding_mask, B, S)
    q = np.ascontiguousarray(q)                         # (B, H, T, D)
    k = np.ascontiguousarray(k, dtype=q.dtype)          # (B, H, S, D)
    v = np.ascontiguousarray(v, dtype=q.dtype)          # (B, H, S, D)
    scale = 1.0 / math.sqrt(D)
    out = np.empty_like(q)                              # (B, H, T, D)
    lse = np.empty((B, H, T), dtype=q.dtype)            # (B, H, T)
    weights_shape = (B, H, T, S) if need_weights else (0, 0, 0, 0)
    weights = np.empty(weights_shape, dtype=q.dtype)    # (B, H, T, S), or empty
    padding = padding_or_none(key_padding_mask, B, S)   # (B, S)
    k_t = np.ascontiguousarray(k.swapaxes(-1, -2))     # (B, H, D, S): rows of keys along the fast axis
    attention_forward_jit(q, k_t, v, scale, causal, padding, out, lse, weights, need_weights)
    cache = AttentionCache(q, k, v, out, lse, weights if need_weights else None, scale, causal, key_padding_mask)
    return out, cache


def attention_backward(dout, cache):
    """Numba twin of layers.attention.attention_backward: (dq, dk, dv) from any AttentionCache."""
    q, k, v = (np.ascontiguousarray(a) for a in (cache.q, cache.k, cache.v))   # (B, H, T|S, D)
    B, H, T, D = q.shape
    S = k.shape[2]
    dout = np.ascontiguousarray(dout, dtype=q.dtype)    # (B, H, T, D)
    out = np.ascontiguousarray(cache.out)               # (B, H, T, D)
    lse = np.ascontiguousarray(cache.lse)               # (B, H, T)
    dq = np.zeros_like(q)                               # (B, H, T, D)
    dk = np.zeros_like(k)                               # (B, H, S, D)
    dv = np.zeros_like(v)                               # (B, H, S, D)
    padding = padding_or_none(cache.key_padding_mask, B, S)   # (B, S)
    k_t = np.ascontiguousarray(k.swapaxes(-1, -2))     # (B, H, D, S)
    v_t = np.ascontiguousarray(v.swapaxes(-1, -2))     # (B, H, D, S)
    attention_backward_jit(dout, q, k, k_t, v_t, out, lse, cache.scale, cache.causal, padding, dq, dk, dv)
    return dq, dk, dv
