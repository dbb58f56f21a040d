"""Softmax cross-entropy over the vocabulary, fused: the backward is simply (p - target) / N."""
import numpy as np

from .. import backend
from .base import Layer


def check_targets(targets, logits_shape, ignore_index):
    targets = np.asarray(targets)
    if targets.shape != logits_shape[:-1]:
        raise ValueError(f"targets have shape {targets.shape}, expected {logits_shape[:-1]} to match logits {logits_shape}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer class ids, got dtype {targets.dtype}")
    V = logits_shape[-1]
    bad = targets[(targets != ignore_index) & ((targets < 0) | (targets >= V))]
    if bad.size:
        raise ValueError(f"target id {bad.flat[0]} outside vocabulary of {V} (ignore_index is {ignore_index})")
    return targets


def cross_entropy_forward(logits, targets, ignore_index=-100, label_smoothing=0.0):
    """Mean over counted positions of -sum_v q_v log p_v, p = softmax(logits).

    q is the one-hot target smoothed towards uniform: q = (1 - eps) onehot + eps / V
    (Szegedy et al., 2016; eps = 0.1 in the 2017 paper). Positions whose target is ignore_index
    (padding) count for nothing and receive zero gradient.
    logits: (..., V), targets: (...) ints -> loss: scalar. cache: (probs, target_dist, counted, N).
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    targets = check_targets(targets, logits.shape, ignore_index)
    V = logits.shape[-1]
    flat_logits = logits.reshape(-1, V)                                   # (N, V)
    flat_targets = targets.reshape(-1)                                    # (N,)
    counted = flat_targets != ignore_index                                # (N,) bool
    num_counted = max(int(counted.sum()), 1)                              # avoid 0/0 on all-padding

    # ==== exercise 04 cross-entropy ====
    shifted = flat_logits - flat_logits.max(axis=-1, keepdims=True)       # (N, V), max 0 per row
    log_z = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))           # (N, 1)
    log_probs = shifted - log_z                                           # (N, V)
    # ==== end exercise 04 ====

    safe_targets = np.where(counted, flat_targets, 0)                     # (N,) any valid index
    target_dist = np.zeros_like(log_probs)                                # (N, V)
    target_dist[np.arange(len(safe_targets)), safe_targets] = 1.0 - label_smoothing
    target_dist += label_smoothing / V
    target_dist[~counted] = 0.0                                           # ignored rows: no target

    # ==== exercise 04 cross-entropy ====
    loss = -(target_dist * log_probs).sum() / num_counted                 # scalar
    # ==== end exercise 04 ====
    probs = np.exp(log_probs)                                             # (N, V)
    return loss, (probs, target_dist, counted, num_counted, logits.shape)


def cross_entropy_backward(dloss, cache):
    """dlogits = dloss * (p - q) / N for counted rows, 0 for ignored ones. -> (..., V)."""
    probs, target_dist, counted, num_counted, logits_shape = cache
    # ==== exercise 04 cross-entropy ====
    dflat = (probs - target_dist) * counted[:, None]                       # (N, V)
    dlogits = (dloss / num_counted) * dflat                                # (N, V)
    # ==== end exercise 04 ====
    return dlogits.reshape(logits_shape).astype(probs.dtype)


class CrossEntropyLoss(Layer):
    def __init__(self, ignore_index=-100, label_smoothing=0.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.counted = 0          # predictions the last forward averaged over (not ignore_index); may be 0

    def forward(self, logits, targets):
        forward = backend.dispatch(cross_entropy_forward)  # NumPy reference or its Numba twin
        loss, self.cache = forward(logits, targets, self.ignore_index, self.label_smoothing)
        self.counted = int(np.count_nonzero(np.asarray(targets) != self.ignore_index))
        return loss

    def backward(self, dloss=1.0):
        return backend.dispatch(cross_entropy_backward)(dloss, self.pop_cache())
