"""From token vectors to one sentence vector: mean pooling and L2 normalisation, forward and backward.

This is how all-MiniLM-L6-v2 is used (sentence-transformers' Pooling(mean) + Normalize):

    pooled[b] = sum_t m[b, t] h[b, t] / sum_t m[b, t]          m = attention mask (1 real, 0 padding)
    e[b]      = pooled[b] / max(||pooled[b]||, eps)            a unit vector, so e[a] . e[b] = cosine
"""
import numpy as np

NORM_EPS = 1e-12        # as torch.nn.functional.normalize
COUNT_EPS = 1e-9        # as sentence-transformers: an all-padding row divides by this, not by 0


def mean_pool_forward(hidden, attention_mask):
    """hidden: (B, T, C), attention_mask: (B, T) of 0/1 -> pooled: (B, C). cache: (weights,)."""
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask has shape {attention_mask.shape}, expected {hidden.shape[:2]}")
    mask = attention_mask.astype(hidden.dtype)                             # (B, T)
    counts = np.maximum(mask.sum(axis=1, keepdims=True), COUNT_EPS)        # (B, 1) real tokens per row
    weights = mask / counts                                                # (B, T) 1/n on real tokens
    pooled = np.einsum("bt,btc->bc", weights, hidden)                      # (B, C)
    return pooled, (weights,)


def mean_pool_backward(dpooled, cache):
    """pooled = sum_t w[b, t] h[b, t]  ->  dh[b, t] = w[b, t] dpooled[b]. (B, C) -> (B, T, C)."""
    (weights,) = cache
    dhidden = weights[:, :, None] * dpooled[:, None, :]                    # (B, T, C)
    return dhidden


def l2_normalize_forward(x, eps=NORM_EPS):
    """y = x / max(||x||, eps), over the last axis. x: (B, C) -> y: (B, C). cache: (y, norm)."""
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))                    # (B, 1)
    safe_norm = np.maximum(norm, eps)                                      # (B, 1)
    y = x / safe_norm                                                      # (B, C)
    return y, (y, safe_norm, norm > eps)


def l2_normalize_backward(dy, cache):
    """y = x / ||x||  ->  dx = (dy - y (y . dy)) / ||x||: the part of dy along y is removed,
    because scaling x does not move y. (Where ||x|| <= eps, y = x / eps and dx = dy / eps.)"""
    y, safe_norm, scaled = cache
    along_y = (y * dy).sum(axis=-1, keepdims=True)                         # (B, 1)
    dx_unit = (dy - y * along_y) / safe_norm                               # (B, C)
    dx = np.where(scaled, dx_unit, dy / safe_norm)                         # (B, C)
    return dx
