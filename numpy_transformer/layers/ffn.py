"""Position-wise feed-forward network: FFN(x) = act(x W1 + b1) W2 + b2, the same MLP at every position."""
import numpy as np

from .activations import make_activation
from .base import Layer
from .linear import Linear


class FeedForward(Layer):
    """C -> F -> C with ReLU (the paper) or GELU in between; F is usually 4C."""

    def __init__(self, width, hidden, rng, activation="relu", dtype=np.float32):
        super().__init__()
        self.fc1 = Linear(width, hidden, rng, dtype=dtype)
        self.act = make_activation(activation)
        self.fc2 = Linear(hidden, width, rng, dtype=dtype)

    def children(self):
        return [("fc1", self.fc1), ("act", self.act), ("fc2", self.fc2)]

    def forward(self, x):
        """x: (B, T, C) -> (B, T, C)."""
        pre = self.fc1.forward(x)          # (B, T, F)  x W1 + b1
        hidden = self.act.forward(pre)     # (B, T, F)  act(...)
        out = self.fc2.forward(hidden)     # (B, T, C)  ... W2 + b2
        self.cache = ("ffn",)              # the children hold the arrays; this marks "forward ran"
        return out

    def backward(self, dout):
        self.pop_cache()
        dhidden = self.fc2.backward(dout)  # (B, T, F)
        dpre = self.act.backward(dhidden)  # (B, T, F)
        dx = self.fc1.backward(dpre)       # (B, T, C)
        return dx
