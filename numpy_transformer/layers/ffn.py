"""Position-wise feed-forward network: FFN(x) = act(x W1 + b1) W2 + b2, the same MLP at every position."""
import numpy as np

from .. import backend
from .activations import make_activation
from .base import Layer
from .linear import Linear


class FeedForward(Layer):
    """C -> F -> C with ReLU (the paper) or GELU in between; F is usually 4C.

    On the "numpy" backend the three layers below run one after another (the textbook). On "numba"
    the same parameters go through kernels.ffn.ffn_forward/ffn_backward: the matmuls stay in BLAS
    and the bias, activation and bias gradient are fused into one pass each.
    """

    def __init__(self, width, hidden, rng, activation="relu", dtype=np.float32):
        super().__init__()
        self.activation = activation
        self.fc1 = Linear(width, hidden, rng, dtype=dtype)
        self.act = make_activation(activation)
        self.fc2 = Linear(hidden, width, rng, dtype=dtype)

    def children(self):
        return [("fc1", self.fc1), ("act", self.act), ("fc2", self.fc2)]

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        if backend.get_backend() == "numba":
            from ..kernels.ffn import ffn_forward
            out, fused_cache = ffn_forward(x, self.fc1.params["weight"], self.fc1.params["bias"],
                                           self.fc2.params["weight"], self.fc2.params["bias"], self.activation)
            self.cache = ("fused", fused_cache)
            return out                     # (B, T, C)
        pre = self.fc1.forward(x)          # (B, T, F)  x W1 + b1
        hidden = self.act.forward(pre)     # (B, T, F)  act(...)
        out = self.fc2.forward(hidden)     # (B, T, C)  ... W2 + b2
        self.cache = ("layers", None)
        return out

    def backward(self, dout):
        path, fused_cache = self.pop_cache()
        if path == "fused":
            from ..kernels.ffn import ffn_backward
            dx, dw1, db1, dw2, db2 = ffn_backward(dout, fused_cache)
            self.fc1.dparams["weight"] += dw1
            self.fc1.dparams["bias"] += db1
            self.fc2.dparams["weight"] += dw2
            self.fc2.dparams["bias"] += db2
            return dx                      # (B, T, C)
        dhidden = self.fc2.backward(dout)  # (B, T, F)
        dpre = self.act.backward(dhidden)  # (B, T, F)
        dx = self.fc1.backward(dpre)       # (B, T, C)
        return dx
