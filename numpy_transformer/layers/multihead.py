"""Multi-head attention: project to H heads of size D = C / H, attend in each, merge, project back."""
import numpy as np

from .. import backend
from .attention import attention_backward, attention_forward
from .base import Layer
from .linear import Linear


def split_heads(x, num_heads):
    """(B, T, C) -> (B, H, T, D): head h takes columns h*D .. (h+1)*D - 1."""
    B, T, C = x.shape
    D = C // num_heads
    # ==== exercise 10 multihead-split-merge ====
    heads = x.reshape(B, T, num_heads, D).transpose(0, 2, 1, 3)    # (B, H, T, D)
    # ==== end exercise 10 ====
    return heads


def merge_heads(x):
    """(B, H, T, D) -> (B, T, C): the inverse of split_heads (heads side by side again)."""
    B, H, T, D = x.shape
    # ==== exercise 10 multihead-split-merge ====
    merged = x.transpose(0, 2, 1, 3).reshape(B, T, H * D)          # (B, T, C)
    # ==== end exercise 10 ====
    return merged


class MultiHeadAttention(Layer):
    """Self-attention (memory=None) or cross-attention (keys and values from ``memory``).

    forward: q = x Wq, k = m Wk, v = m Wv (m = memory or x), split into H heads,
             a = attention(q, k, v) per head, merged, then out = a Wo.
    After forward, ``self.attention_weights`` holds the (B, H, T, S) softmax weights for plotting,
    or None when they were not kept: ``keep_weights`` (True by default, for teaching) decides unless
    forward is given need_weights. Training loops turn it off for speed (see
    models.common.keep_attention_weights); the backward never needs the weights.
    The attention itself runs on the current backend (numpy_transformer.backend).
    backward returns dx for self-attention, and (dx, dmemory) for cross-attention.
    """

    def __init__(self, width, num_heads, rng, dtype=np.float32):
        super().__init__()
        if num_heads <= 0 or width % num_heads != 0:
            raise ValueError(f"width {width} is not divisible by the number of heads {num_heads}")
        self.num_heads = num_heads
        self.query = Linear(width, width, rng, dtype=dtype)
        self.key = Linear(width, width, rng, dtype=dtype)
        self.value = Linear(width, width, rng, dtype=dtype)
        self.out = Linear(width, width, rng, dtype=dtype)
        self.attention_weights = None
        self.keep_weights = True

    def children(self):
        return [("query", self.query), ("key", self.key), ("value", self.value), ("out", self.out)]

    def forward(self, x, memory=None, causal=False, key_padding_mask=None, kv_cache=None, need_weights=None):
        """x: (B, T, C), memory: (B, S, C) or None -> (B, T, C).

        kv_cache: for generation only, a dict that keeps this layer's keys and values of earlier
        positions ("k", "v": (B, H, S_past, D)); the new ones are appended and the queries attend
        to all of them. Nothing is kept for backward when it is given.
        need_weights: keep the (B, H, T, S) weights in self.attention_weights (for plotting);
        None means self.keep_weights.
        """
        if need_weights is None:
            need_weights = self.keep_weights
        is_cross = memory is not None
        source = memory if is_cross else x                               # (B, S, C)
        # Fast path (Numba backend, self-attention, training): the three projections as ONE matmul
        # against [Wq | Wk | Wv] (kernels/linear.py); same numbers, same parameters.
        fused = not is_cross and kv_cache is None and backend.get_backend() == "numba"
        if fused:
            projections, qkv_cache = self.project_fused(x)               # 3 x (B, T, C) views
            for layer in (self.query, self.key, self.value):
                layer.cache = None                                       # nothing of theirs is kept
        else:
            projections = (self.query.forward(x), self.key.forward(source), self.value.forward(source))
            qkv_cache = None
        q = split_heads(projections[0], self.num_heads)                  # (B, H, T, D)
        k = split_heads(projections[1], self.num_heads)                  # (B, H, S, D)
        v = split_heads(projections[2], self.num_heads)                  # (B, H, S, D)
        if kv_cache is not None:
            # ==== exercise 14 kv-cache ====
            if kv_cache.get("k") is not None:
                k = np.concatenate([kv_cache["k"], k], axis=2)           # (B, H, S_past + T, D)
                v = np.concatenate([kv_cache["v"], v], axis=2)           # (B, H, S_past + T, D)
            kv_cache["k"], kv_cache["v"] = k, v
            # ==== end exercise 14 ====
        attend = backend.dispatch(attention_forward)                     # NumPy reference or Numba kernel
        heads, attn_cache = attend(q, k, v, causal, key_padding_mask, need_weights)   # (B, H, T, D)
        merged = merge_heads(heads)                                      # (B, T, C)
        out = self.out.forward(merged)                                   # (B, T, C)
        self.attention_weights = attn_cache.weights                      # (B, H, T, S) or None
        if kv_cache is not None:                                         # inference: no backward
            for layer in (self.query, self.key, self.value, self.out):
                layer.cache = None
            return out
        self.cache = (attn_cache, is_cross, qkv_cache)
        return out

    def project_fused(self, x):
        """q, k, v projections of x in one BLAS call (kernels.linear.linear_many_forward)."""
        from ..kernels.linear import linear_many_forward                # only on the Numba backend
        layers = (self.query, self.key, self.value)
        return linear_many_forward(x, [(layer.params["weight"], layer.params.get("bias")) for layer in layers])

    def backward_fused(self, dq, dk, dv, qkv_cache):
        """dx of the fused projections; each layer's weight and bias gradients added into its dparams."""
        from ..kernels.linear import linear_many_backward
        dx, grads = linear_many_backward([merge_heads(dq), merge_heads(dk), merge_heads(dv)], qkv_cache)
        for layer, (dweight, dbias) in zip((self.query, self.key, self.value), grads):
            layer.dparams["weight"] += dweight
            if dbias is not None:
                layer.dparams["bias"] += dbias
        return dx                                                        # (B, T, C)

    def backward(self, dout):
        attn_cache, is_cross, qkv_cache = self.pop_cache()
        dmerged = self.out.backward(dout)                                # (B, T, C)
        dheads = split_heads(dmerged, self.num_heads)                    # (B, H, T, D)
        dq, dk, dv = backend.dispatch(attention_backward)(dheads, attn_cache)   # (B, H, T|S, D)
        if qkv_cache is not None:                                        # the fast path's fused projections
            return self.backward_fused(dq, dk, dv, qkv_cache)
        dx = self.query.backward(merge_heads(dq))                        # (B, T, C)
        dsource = self.key.backward(merge_heads(dk))                     # (B, S, C)
        dsource = dsource + self.value.backward(merge_heads(dv))         # (B, S, C): k and v share m
        if is_cross:
            return dx, dsource
        return dx + dsource                                              # q, k and v all came from x
