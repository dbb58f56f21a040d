"""Scaled dot-product attention: softmax(Q K^T / sqrt(d_k)) V, with causal and key-padding masks."""
import math
from typing import NamedTuple

import numpy as np

from .softmax import softmax_backward, softmax_forward


def build_attention_mask(T, S, causal=False, key_padding_mask=None):
    """Boolean mask, True where query t may NOT look at key s; None when nothing is masked.

    causal: query t sits at absolute position t + (S - T) (S > T when earlier keys are cached),
            so it may see keys s <= t + S - T.
    key_padding_mask: (B, S) bool, True marks a padding key that no query may attend to.
    Returns None, (T, S), or (B, 1, T, S), broadcastable against scores (B, H, T, S).
    """
    mask = None
    # ==== exercise 08 attention-forward ====
    if causal:
        query_pos = np.arange(T)[:, None] + (S - T)     # (T, 1)
        key_pos = np.arange(S)[None, :]                 # (1, S)
        mask = key_pos > query_pos                      # (T, S)
    if key_padding_mask is not None:
        padding = key_padding_mask[:, None, None, :]    # (B, 1, 1, S)
        mask = padding if mask is None else (mask | padding)   # (B, 1, T, S)
    # ==== end exercise 08 ====
    return mask


def check_key_padding_mask(key_padding_mask, B, S):
    if key_padding_mask is None:
        return None
    key_padding_mask = np.asarray(key_padding_mask)
    if key_padding_mask.shape != (B, S):
        raise ValueError(f"key_padding_mask has shape {key_padding_mask.shape}, expected (B, S) = {(B, S)}")
    if key_padding_mask.dtype != np.bool_:
        raise ValueError(f"key_padding_mask must be boolean (True = padding), got dtype {key_padding_mask.dtype}")
    return key_padding_mask


class AttentionCache(NamedTuple):
    """What attention_forward leaves for the backward. Every backend fills the same fields, so a
    forward on one backend can feed the backward of another."""
    q: np.ndarray                   # (B, H, T, D)
    k: np.ndarray                   # (B, H, S, D)
    v: np.ndarray                   # (B, H, S, D)
    out: np.ndarray                 # (B, H, T, D)
    lse: np.ndarray                 # (B, H, T) log-sum-exp of each row's masked scores (-inf if all masked)
    weights: np.ndarray | None      # (B, H, T, S) softmax weights, or None when not kept
    scale: float                    # 1 / sqrt(D)
    causal: bool
    key_padding_mask: np.ndarray | None   # (B, S) bool, True = padding


def attention_scores(q, k, scale, causal, key_padding_mask):
    """scores = q k^T * scale with masked entries set to -inf. -> (B, H, T, S)."""
    T, S = q.shape[2], k.shape[2]
    # ==== exercise 08 attention-forward ====
    scores = (q @ k.swapaxes(-1, -2)) * scale           # (B, H, T, S)
    mask = build_attention_mask(T, S, causal, key_padding_mask)
    if mask is not None:
        scores = np.where(mask, -np.inf, scores)        # (B, H, T, S)
    # ==== end exercise 08 ====
    return scores


def attention_forward(q, k, v, causal=False, key_padding_mask=None, need_weights=True):
    """out = softmax(q k^T / sqrt(D) + mask) v, for every batch entry and head at once.

    q: (B, H, T, D), k: (B, H, S, D), v: (B, H, S, D) -> out: (B, H, T, D).
    Masked scores become -inf before the softmax, so their weights are exactly 0; a query whose
    every key is masked gets zero weights and a zero output.
    cache: an AttentionCache; its weights (B, H, T, S) are what attention maps plot. With
    need_weights=False they are dropped after use (the backward recomputes them from q, k, lse).
    """
    B, H, T, D = q.shape
    S = k.shape[2]
    key_padding_mask = check_key_padding_mask(key_padding_mask, B, S)
    scale = 1.0 / math.sqrt(D)                          # a Python float keeps q's dtype
    scores = attention_scores(q, k, scale, causal, key_padding_mask)   # (B, H, T, S)
    # ==== exercise 08 attention-forward ====
    weights, _ = softmax_forward(scores)                # (B, H, T, S), rows sum to 1 (or 0)
    out = weights @ v                                   # (B, H, T, D)
    # ==== end exercise 08 ====
    row_max = scores.max(axis=-1)                       # (B, H, T)
    safe_max = np.where(np.isfinite(row_max), row_max, 0)                   # (B, H, T)
    with np.errstate(divide="ignore"):                  # log(0) = -inf for fully masked rows
        lse = safe_max + np.log(np.exp(scores - safe_max[..., None]).sum(axis=-1))   # (B, H, T)
    cache = AttentionCache(q, k, v, out, lse.astype(q.dtype), weights if need_weights else None,
                           scale, causal, key_padding_mask)
    return out, cache


def attention_weights_from_cache(cache):
    """The (B, H, T, S) softmax weights: kept ones, or recomputed as exp(scores - lse)."""
    if cache.weights is not None:
        return cache.weights
    scores = attention_scores(cache.q, cache.k, cache.scale, cache.causal, cache.key_padding_mask)
    lse = np.where(np.isfinite(cache.lse), cache.lse, np.inf)[..., None]   # fully masked rows -> 0
    return np.exp(scores - lse)                         # (B, H, T, S)


def attention_backward(dout, cache):
    """Gradients of attention_forward, the forward read backwards:

        out = weights v           ->  dweights = dout v^T,  dv = weights^T dout
        weights = softmax(scores) ->  dscores = weights * (dweights - sum(dweights * weights))
        scores = q k^T * scale    ->  dq = dscores k * scale,  dk = dscores^T q * scale
    dout: (B, H, T, D) -> dq: (B, H, T, D), dk: (B, H, S, D), dv: (B, H, S, D).
    """
    q, k, v, scale = cache.q, cache.k, cache.v, cache.scale
    weights = attention_weights_from_cache(cache)       # (B, H, T, S)
    # ==== exercise 09 attention-backward ====
    dweights = dout @ v.swapaxes(-1, -2)                # (B, H, T, S)
    dv = weights.swapaxes(-1, -2) @ dout                # (B, H, S, D)
    dscores = softmax_backward(dweights, weights)       # (B, H, T, S); masked entries get 0
    dq = (dscores @ k) * scale                          # (B, H, T, D)
    dk = (dscores.swapaxes(-1, -2) @ q) * scale         # (B, H, S, D)
    # ==== end exercise 09 ====
    return dq, dk, dv
