"""Positional information: the paper's fixed sinusoids, or a learned table of position vectors."""
import numpy as np

from .base import Layer


def sinusoidal_encoding(max_len, width, dtype=np.float64):
    """The table of "Attention Is All You Need", section 3.5.

        PE[pos, 2i]   = sin(pos / 10000^(2i / C))
        PE[pos, 2i+1] = cos(pos / 10000^(2i / C))

    Returns (max_len, C). Each pair of columns is a sinusoid of one wavelength, from 2*pi up to
    10000*2*pi, so any fixed offset k is a rotation of each pair: PE[pos + k] is linear in PE[pos].
    """
    if width % 2 != 0:
        raise ValueError(f"sinusoidal encoding needs an even width, got {width}")
    # ==== exercise 06 positional-encoding ====
    positions = np.arange(max_len, dtype=np.float64)[:, None]          # (T, 1)
    pair_index = np.arange(0, width, 2, dtype=np.float64)[None, :]     # (1, C/2) holds 2i
    angle_rates = 1.0 / np.power(10000.0, pair_index / width)          # (1, C/2)
    angles = positions * angle_rates                                    # (T, C/2)
    table = np.zeros((max_len, width), dtype=np.float64)                # (T, C)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    # ==== end exercise 06 ====
    return table.astype(dtype)


def check_length(T, max_len):
    if T > max_len:
        raise ValueError(f"sequence length {T} is longer than the maximum length {max_len}")


def add_positions_forward(x, table, offset=0):
    """y[b, t] = x[b, t] + table[offset + t].  x: (B, T, C), table: (max_len, C) -> y: (B, T, C).

    ``offset`` is the position of the first token (non-zero when decoding with a KV cache).
    """
    T = x.shape[1]
    check_length(offset + T, table.shape[0])
    y = x + table[offset:offset + T]                    # (B, T, C)
    return y, (offset, T, table.shape[0])


def add_positions_backward(dy, cache):
    """dx = dy (an addition passes its gradient through), dtable[offset + t] = sum over b of dy[b, t].

    dy: (B, T, C) -> dx: (B, T, C), dtable: (max_len, C).
    """
    offset, T, max_len = cache
    dx = dy                                             # (B, T, C)
    dtable = np.zeros((max_len, dy.shape[-1]), dtype=dy.dtype)      # (max_len, C)
    dtable[offset:offset + T] = dy.sum(axis=0)          # (T, C)
    return dx, dtable


class SinusoidalPositionalEncoding(Layer):
    """Adds the fixed sinusoid table; it has no parameters, so backward passes dy straight through."""

    def __init__(self, max_len, width, dtype=np.float32):
        super().__init__()
        self.max_len = max_len
        self.table = sinusoidal_encoding(max_len, width, dtype)   # (max_len, C), not a parameter

    def forward(self, x, offset=0):
        y, self.cache = add_positions_forward(x, self.table, offset)
        return y

    def backward(self, dy):
        self.pop_cache()
        return dy


class LearnedPositionalEmbedding(Layer):
    """Adds a learned (max_len, C) table, initialised N(0, 0.02^2) (GPT-2, BERT)."""

    def __init__(self, max_len, width, rng, dtype=np.float32):
        super().__init__()
        self.max_len = max_len
        self.add_param("weight", (0.02 * rng.standard_normal((max_len, width))).astype(dtype))

    def forward(self, x, offset=0):
        y, self.cache = add_positions_forward(x, self.params["weight"], offset)
        return y

    def backward(self, dy):
        dx, dtable = add_positions_backward(dy, self.pop_cache())
        self.dparams["weight"] += dtable
        return dx
