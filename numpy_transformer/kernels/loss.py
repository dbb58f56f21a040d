"""Softmax cross-entropy in Numba: the twin of layers/loss.py (same arguments, loss and cache).

Per row n of logits z (V entries), in three short loops instead of NumPy's many array-wide passes:
    log p_v = z_v - max(z) - log sum_u exp(z_u - max(z))
    q_v = (1 - eps) [v == target] + eps / V          (all 0 on ignored rows)
    row_loss = -sum_v q_v log p_v;   loss = sum_n row_loss_n / N_counted
backward: dlogits = dloss (p - q) / N_counted on counted rows, 0 on ignored ones.
"""
import math

import numpy as np
from numba import njit

from ..layers.loss import check_targets
from .threads import run_tasks

NS_PER_ENTRY = 5.0      # one thread's time per logit in the forward (an exponential each), roughly
NS_PER_ENTRY_BACKWARD = 0.2   # ... and in the backward (for run_tasks' estimate)


def cross_entropy_forward_loops(first, last, logits, targets, ignore_index, label_smoothing, probs, target_dist,
                                row_loss):
    """logits: (N, V), targets: (N,) -> fills rows first..last-1 of probs (N, V), target_dist (N, V), row_loss (N,)."""
    N, V = logits.shape
    zero = logits.dtype.type(0)
    one = logits.dtype.type(1)
    on_value = logits.dtype.type(1.0 - label_smoothing)
    off_value = logits.dtype.type(label_smoothing / V)
    for n in range(first, last):                        # rows are independent
        row_max = logits[n, 0]
        for v in range(1, V):
            row_max = max(row_max, logits[n, v])
        exp_sum = zero
        for v in range(V):
            shifted_exp = math.exp(logits[n, v] - row_max)
            probs[n, v] = shifted_exp                   # exp(z_v - max), divided by the sum below
            exp_sum += shifted_exp
        log_z = math.log(exp_sum)
        inv_sum = one / exp_sum
        counted = targets[n] != ignore_index
        loss = zero
        for v in range(V):
            log_prob = (logits[n, v] - row_max) - log_z
            probs[n, v] *= inv_sum                      # p_v: one exponential per logit, not two
            if counted:
                q = off_value + on_value if v == targets[n] else off_value
            else:
                q = zero
            target_dist[n, v] = q
            loss -= q * log_prob
        row_loss[n] = loss


def cross_entropy_backward_loops(first, last, scale, probs, target_dist, counted, dlogits):
    """dlogits[n] = scale (probs[n] - target_dist[n]) on counted rows n = first..last-1, 0 elsewhere;
    scale = dloss / N."""
    N, V = probs.shape
    zero = probs.dtype.type(0)
    scale = probs.dtype.type(scale)
    for n in range(first, last):
        for v in range(V):
            dlogits[n, v] = scale * (probs[n, v] - target_dist[n, v]) if counted[n] else zero


cross_entropy_forward_jit = njit(cache=True, nogil=True)(cross_entropy_forward_loops)
cross_entropy_backward_jit = njit(cache=True, nogil=True)(cross_entropy_backward_loops)


def cross_entropy_forward(logits, targets, ignore_index=-100, label_smoothing=0.0):
    """Numba twin of layers.loss.cross_entropy_forward -> (loss, (probs, target_dist, counted, N, shape))."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    targets = check_targets(targets, logits.shape, ignore_index)
    V = logits.shape[-1]
    flat_logits = np.ascontiguousarray(logits.reshape(-1, V))           # (N, V)
    flat_targets = np.ascontiguousarray(targets.reshape(-1), dtype=np.int64)   # (N,)
    counted = flat_targets != ignore_index                              # (N,) bool
    num_counted = max(int(counted.sum()), 1)                            # avoid 0/0 on all-padding
    probs = np.empty_like(flat_logits)                                  # (N, V)
    target_dist = np.empty_like(flat_logits)                            # (N, V)
    row_loss = np.empty(flat_logits.shape[0], dtype=logits.dtype)       # (N,)
    run_tasks(cross_entropy_forward_jit, flat_logits.shape[0], flat_logits, flat_targets, ignore_index, label_smoothing,
              probs, target_dist, row_loss, work_ns=NS_PER_ENTRY * flat_logits.size)
    loss = row_loss.sum() / num_counted                                 # scalar, in the logits' dtype
    return loss, (probs, target_dist, counted, num_counted, logits.shape)


def cross_entropy_backward(dloss, cache):
    """Numba twin of layers.loss.cross_entropy_backward -> dlogits (..., V)."""
    probs, target_dist, counted, num_counted, logits_shape = cache
    dlogits = np.empty_like(probs)                                      # (N, V)
    run_tasks(cross_entropy_backward_jit, probs.shape[0], dloss / num_counted, probs, target_dist, counted, dlogits,
              work_ns=NS_PER_ENTRY_BACKWARD * probs.size)
    return dlogits.reshape(logits_shape)
