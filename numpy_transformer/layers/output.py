"""Output projection from width C to vocabulary logits, optionally tied to the token embedding."""
import numpy as np

from .base import Layer
from .linear import linear_backward, linear_forward


class OutputProjection(Layer):
    """logits = x W^T + b, W the (V, C) embedding table when tied, else a (V, C) matrix of its own.

    Tying (Press and Wolf, 2017; used by the 2017 paper) makes one matrix both read tokens in and
    score them out. Its gradient then arrives along two paths: this layer ADDS its part into the
    embedding's dparams["weight"], and the embedding's own backward adds the other.
    """

    def __init__(self, width, vocab_size, rng, tie_to=None, bias=True, dtype=np.float32):
        super().__init__()
        self.tie_to = tie_to
        if tie_to is None:
            self.add_param("weight", (0.02 * rng.standard_normal((vocab_size, width))).astype(dtype))
        elif tie_to.params["weight"].shape != (vocab_size, width):
            raise ValueError(f"cannot tie: embedding is {tie_to.params['weight'].shape}, "
                             f"projection needs {(vocab_size, width)}")
        if bias:
            self.add_param("bias", np.zeros(vocab_size, dtype=dtype))

    def _weight_owner(self):
        return self.tie_to if self.tie_to is not None else self

    def forward(self, x):
        """x: (B, T, C) -> logits: (B, T, V)."""
        weight = self._weight_owner().params["weight"]                  # (V, C)
        logits, self.cache = linear_forward(x, weight.T, self.params.get("bias"))   # (B, T, V)
        return logits

    def backward(self, dlogits):
        dx, dweight_t, dbias = linear_backward(dlogits, self.pop_cache())   # dweight_t: (C, V)
        self._weight_owner().dparams["weight"] += dweight_t.T               # (V, C)
        if dbias is not None:
            self.dparams["bias"] += dbias
        return dx
