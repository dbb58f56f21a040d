"""Train/validation splitting and language-model batches.

A language model learns to predict token t+1 from tokens 0..t. From one long id array we cut
windows of block_size + 1 tokens; the first block_size are the input x, the last block_size
(the same window moved one step) are the targets y:

    ids    = [a, b, c, d, e, f, ...]
    window = [b, c, d, e]            start 1, block_size 3
    x      = [b, c, d]               y = [c, d, e]        y[t] == x[t + 1], y[-1] is the next token
"""
from __future__ import annotations

import numpy as np


def train_val_split(data, val_fraction: float = 0.1):
    """Split data into (train, val) with val the contiguous *tail*, never shuffled.

        n_val   = max(1, int(len(data) * val_fraction))
        train   = data[:len(data) - n_val]
        val     = data[len(data) - n_val:]

    Works on anything sliceable with a length: a str (characters), a 1-D id array, a list of
    examples. The same input always gives the same split. For text a tail split is the honest
    choice: neighbouring windows overlap and share sentences, so a random split would let the
    validation set leak into training. (The synthetic tasks' examples are independent draws, so
    their tail is as good as any random subset.)
    ValueError if val_fraction is not strictly between 0 and 1 or either part would be empty.
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
            or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    n = len(data)
    n_val = max(1, int(n * val_fraction))
    n_train = n - n_val
    if n_train < 1:
        raise ValueError(
            f"cannot split {n} items with val_fraction {val_fraction}: the training part would be empty"
        )
    return data[:n_train], data[n_train:]


def _check_lm_args(ids, block_size, batch_size) -> np.ndarray:
    """Validate lm batching arguments; returns ids as a 1-D integer array."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    for name, value in (("block_size", block_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if block_size >= len(ids):
        raise ValueError(
            f"block_size {block_size} must be smaller than the number of ids {len(ids)} "
            f"(each window needs block_size + 1 = {block_size + 1} tokens)"
        )
    return ids


def _check_rng(rng) -> np.random.Generator:
    """Accept a np.random.Generator or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a np.random.Generator or an int seed, got {rng!r}")


def get_lm_batch(ids, block_size: int, batch_size: int, rng):
    """One batch of batch_size windows at uniformly random start positions.

    ids: (N,) integers -> x: (B, T), y: (B, T) with T = block_size and y[:, t] = x[:, t + 1]
    for t < T - 1 (y[:, -1] is the token after the window). Keeps the dtype of ids.
    rng: np.random.Generator (or an int seed); the same generator state gives the same batch.
    """
    ids = _check_lm_args(ids, block_size, batch_size)
    rng = _check_rng(rng)
    n_starts = len(ids) - block_size                                   # last start: N - T - 1
    starts = rng.integers(0, n_starts, size=batch_size)               # (B,)
    offsets = np.arange(block_size)                                    # (T,)
    index = starts[:, None] + offsets[None, :]                         # (B, T)
    x = ids[index]                                                     # (B, T)
    y = ids[index + 1]                                                 # (B, T) shifted by one
    return x, y


def lm_batches(ids, block_size: int, batch_size: int, rng, n_batches=None):
    """Iterator of (x, y) batches from get_lm_batch; endless when n_batches is None.

    Arguments are checked here, at the call, not at the first next().
    """
    ids = _check_lm_args(ids, block_size, batch_size)
    rng = _check_rng(rng)
    if n_batches is not None and (isinstance(n_batches, bool) or not isinstance(n_batches, int)
                                  or n_batches < 0):
        raise ValueError(f"n_batches must be None or an int >= 0, got {n_batches!r}")

    def batches():
        produced = 0
        while n_batches is None or produced < n_batches:
            yield get_lm_batch(ids, block_size, batch_size, rng)
            produced += 1

    return batches()
