"""Softmax cross-entropy in Numba: the twin of layers/loss.py (same arguments, loss and cache).

Per row n of logits z (V entries), with m = max(z) and Z = sum_u exp(z_u - m):
    p_v = exp(z_v - m) / Z
    q_v = (1 - eps) [v == target] + eps / V          (all 0 on ignored rows)
    row_loss = -sum_v q_v log p_v = log Z - (1 - eps)(z_target - m) - (eps / V) sum_v (z_v - m)
               (as sum_v q_v = 1 on a counted row);   loss = sum_n row_loss_n / N_counted
backward: dlogits = dloss (p - q) / N_counted on counted rows, 0 on ignored ones.

Who does what: the exponentials are NumPy's np.exp over the whole (N, V) array, the row maxima and row
sums NumPy's max and sum along each row (each row on its own, so a row's bits do not depend on the
others; BLAS products with a vector of ones were a little faster but group rows); the kernel then makes
one pass per row (normalise p, write q, the row's loss from the sums). Why: inside a Numba loop math.exp
is a scalar library call, and the kernel that called it once per logit ran 1.5-2x SLOWER than the NumPy
reference (5-10 ns a logit, measured at V = 65 to 30522), where NumPy's exp is vectorised.

One deliberate difference from the reference: a logit of -inf (a token ruled out) with no label
smoothing gives the reference NaN (its sum over v multiplies q_v = 0 by log p_v = -inf) and a finite
loss here, as only the target's logit enters the formula above. (With smoothing both give +inf: every
token then has q_v > 0.)
"""
import math

import numpy as np
from numba import njit

from ..layers.loss import check_targets
from .threads import run_tasks

NS_PER_ENTRY = 0.5      # one thread's time per logit in the forward's pass, roughly
NS_PER_ENTRY_BACKWARD = 0.2   # ... and in the backward (for run_tasks' estimate)


def cross_entropy_forward_loops(first, last, logits, row_max, shifted_sums, exp_sums, targets, ignore_index,
                                label_smoothing, probs, target_dist, row_loss):
    """Rows first..last-1 of logits (N, V), targets (N,): probs (N, V) holds exp(z - m) on entry and p on exit;
    fills target_dist (N, V) with q and row_loss (N,). row_max (N,) = m, shifted_sums (N,) = sum_v (z_v - m)
    (read only with label smoothing), exp_sums (N,) = Z."""
    N, V = logits.shape
    zero = logits.dtype.type(0)
    one = logits.dtype.type(1)
    on_value = logits.dtype.type(1.0 - label_smoothing)
    off_value = logits.dtype.type(label_smoothing / V)
    for n in range(first, last):                        # rows are independent
        inv_sum = one / exp_sums[n]
        target = targets[n]
        counted = target != ignore_index
        prob_row = probs[n]                             # (V,) views, indexed from 0 so the loops vectorise
        target_row = target_dist[n]                     # (V,)
        for v in range(V):
            prob_row[v] *= inv_sum                      # p_v
        if counted:
            for v in range(V):
                target_row[v] = off_value
            target_row[target] += on_value
            loss = math.log(exp_sums[n]) - on_value * (logits[n, target] - row_max[n])
            if label_smoothing != 0.0:
                loss -= off_value * shifted_sums[n]
            row_loss[n] = loss
        else:
            target_row[:] = zero
            row_loss[n] = zero


def cross_entropy_backward_loops(first, last, scale, probs, target_dist, counted, dlogits):
    """dlogits[n] = scale (probs[n] - target_dist[n]) on counted rows n = first..last-1, 0 elsewhere;
    scale = dloss / N."""
    N, V = probs.shape
    zero = probs.dtype.type(0)
    scale = probs.dtype.type(scale)
    for n in range(first, last):
        prob_row = probs[n]                             # (V,) views, indexed from 0 so the loops vectorise
        target_row = target_dist[n]                     # (V,)
        dlogit_row = dlogits[n]                         # (V,)
        if counted[n]:
            for v in range(V):
                dlogit_row[v] = scale * (prob_row[v] - target_row[v])
        else:
            dlogit_row[:] = zero


cross_entropy_forward_jit = njit(cache=True, nogil=True, error_model="numpy")(cross_entropy_forward_loops)
cross_entropy_backward_jit = njit(cache=True, nogil=True, error_model="numpy")(cross_entropy_backward_loops)


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
    row_max = flat_logits.max(axis=1)                                   # (N,) m
    shifted = flat_logits - row_max[:, None]                            # (N, V) z - m
    if label_smoothing:
        shifted_sums = shifted.sum(axis=1)                              # (N,) sum_v (z_v - m)
    else:
        shifted_sums = np.zeros_like(row_max)                           # (N,) not read without smoothing
    probs = np.exp(shifted, out=shifted)                                # (N, V) exp(z - m): vectorised, in place
    exp_sums = probs.sum(axis=1)                                        # (N,) Z
    target_dist = np.empty_like(flat_logits)                            # (N, V)
    row_loss = np.empty(flat_logits.shape[0], dtype=logits.dtype)       # (N,)
    run_tasks(cross_entropy_forward_jit, flat_logits.shape[0], flat_logits, row_max, shifted_sums, exp_sums,
              flat_targets, ignore_index, label_smoothing, probs, target_dist, row_loss,
              work_ns=NS_PER_ENTRY * flat_logits.size)
    loss = row_loss.sum() / num_counted                                 # scalar, in the logits' dtype
    return loss, (probs, target_dist, counted, num_counted, logits.shape)


def cross_entropy_backward(dloss, cache):
    """Numba twin of layers.loss.cross_entropy_backward -> dlogits (..., V)."""
    probs, target_dist, counted, num_counted, logits_shape = cache
    dlogits = np.empty_like(probs)                                      # (N, V)
    run_tasks(cross_entropy_backward_jit, probs.shape[0], dloss / num_counted, probs, target_dist, counted, dlogits,
              work_ns=NS_PER_ENTRY_BACKWARD * probs.size)
    return dlogits.reshape(logits_shape)
