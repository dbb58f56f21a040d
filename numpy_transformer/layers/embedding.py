"""Token embedding: a lookup table, one learned row of width C per token id."""
import numpy as np

from .. import backend
from .base import Layer


def check_token_ids(ids, vocab_size):
    """Raise ValueError unless ids is an integer array with every id in [0, vocab_size)."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise ValueError(f"token id {bad} outside vocabulary of {vocab_size}")
    return ids


def embedding_forward(ids, weight):
    """out[b, t] = weight[ids[b, t]].

    ids: (B, T) integers, weight: (V, C) -> out: (B, T, C). cache: (ids, V).
    """
    out = weight[ids]                                   # (B, T, C)
    return out, (ids, weight.shape[0])


def embedding_backward(dout, cache):
    """dweight[v] = sum of dout[b, t] over every position where ids[b, t] == v.

    A token that occurs twice receives BOTH gradients: np.add.at accumulates repeated indices,
    where ``dweight[ids] += dout`` would keep only the last one.
    dout: (B, T, C) -> dweight: (V, C).
    """
    ids, vocab_size = cache
    # ==== exercise 05 embedding-backward ====
    dweight = np.zeros((vocab_size, dout.shape[-1]), dtype=dout.dtype)    # (V, C)
    np.add.at(dweight, ids.reshape(-1), dout.reshape(-1, dout.shape[-1]))
    # ==== end exercise 05 ====
    return dweight


class Embedding(Layer):
    """Token embedding table of shape (V, C), initialised N(0, 0.02^2) as in GPT-2 and BERT."""

    def __init__(self, vocab_size, width, rng, dtype=np.float32):
        super().__init__()
        self.vocab_size = vocab_size
        self.add_param("weight", (0.02 * rng.standard_normal((vocab_size, width))).astype(dtype))

    def forward(self, ids):
        ids = check_token_ids(ids, self.vocab_size)
        out, self.cache = embedding_forward(ids, self.params["weight"])
        return out

    def backward(self, dout):
        self.dparams["weight"] += backend.dispatch(embedding_backward)(dout, self.pop_cache())
        # ids are not differentiable: nothing flows further back
