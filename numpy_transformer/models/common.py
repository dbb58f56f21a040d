"""Pieces the three model families share: config checks and input checks."""
from contextlib import contextmanager

import numpy as np

from ..layers.base import check_float_dtype
from ..layers.multihead import MultiHeadAttention


def check_config(config):
    """Raise ValueError naming the first bad field of a model config dataclass."""
    for name in ("vocab_size", "max_len", "width", "num_heads", "num_layers"):
        if hasattr(config, name):
            value = getattr(config, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if config.width % config.num_heads != 0:
        raise ValueError(f"width {config.width} is not divisible by num_heads {config.num_heads}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
    check_float_dtype(config.dtype)


def check_ids(ids, max_len, what="token ids"):
    """ids must be a (B, T) integer array with 1 <= T <= max_len."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"{what} must have shape (B, T), got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {ids.dtype}")
    if ids.shape[1] == 0:
        raise ValueError(f"{what} are empty (T = 0)")
    if ids.shape[1] > max_len:
        raise ValueError(f"sequence length {ids.shape[1]} is longer than the maximum length {max_len}")
    return ids


def hidden_width(config):
    """The FFN's inner width F: config.ffn_hidden, or 4 C as in the paper."""
    return config.ffn_hidden if config.ffn_hidden else 4 * config.width


def keep_attention_weights(model, keep=True):
    """Keep (True, the default of every model, for attention maps) or drop each attention layer's
    (B, H, T, S) weights after forward. Training does not need them: dropping them lets the Numba
    backend skip the T x T matrix altogether. Works on any model or layer; returns the model."""
    for _, layer in model.named_layers():
        if isinstance(layer, MultiHeadAttention):
            layer.keep_weights = keep
    return model


@contextmanager
def attention_weights_dropped(model):
    """with attention_weights_dropped(model): ... runs the block with every attention layer's
    keep_weights off (no (B, H, T, S) maps kept, none built on the Numba backend), then gives each
    layer back its own setting. The trainer wraps its steps in it; a callback between steps still
    finds the model as you left it."""
    layers = [layer for _, layer in model.named_layers() if isinstance(layer, MultiHeadAttention)]
    previous = [layer.keep_weights for layer in layers]
    for layer in layers:
        layer.keep_weights = False
    try:
        yield model
    finally:
        for layer, keep in zip(layers, previous):
            layer.keep_weights = keep


def output_gradient(loss_fn, has_loss, dlogits):
    """The gradient a model's backward() starts from, dL/dlogits: dlogits when given, else the
    gradient of the loss the last forward computed (a ValueError if that forward had no targets)."""
    if dlogits is not None:
        return dlogits
    if not has_loss:
        raise ValueError("backward() needs dlogits when forward() was called without targets")
    return loss_fn.backward(1.0)
