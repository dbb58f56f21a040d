"""The Adam / AdamW update in Numba: the twin of Adam.update in optim.py (the course's exercise 12);
and add_scaled, which adds the batch-splitting threads' gradients together (parallel.py).

NumPy's update of one parameter runs about ten array-wide passes, each allocating a temporary
(m_hat, v_hat, sqrt, the quotient, ...); a step of the reference GPT has ~50 parameters, so that is
~500 small array operations. Here each parameter takes ONE pass, entry by entry, with the same
operations in the same order (so float64 agrees to rounding, and float32 stays float32):
    g = grad (+ wd p for Adam with L2)
    m = b1 m + (1 - b1) g;       v = b2 v + (1 - b2) g^2
    p -= (lr wd) p               (AdamW, on the parameters that decay)
    p -= lr (m / c1) / (sqrt(v / c2) + eps),    c1 = 1 - b1^t, c2 = 1 - b2^t
When the parameters, gradients and moments each lie in one buffer (flat.py), the whole step is ONE call
over the buffers, parameter by parameter as segments (adam_update_segments).
"""
import numpy as np
from numba import njit

from .threads import run_tasks

CHUNK = 16384           # entries per task (the threads share chunks out; entries are independent)
NS_PER_ENTRY = 1.0      # one thread's time per entry of the Adam update, roughly (run_tasks' estimate)
NS_PER_ADDED_ENTRY = 0.25   # ... and of add_scaled


def adam_update_loops(first, last, bounds, decays, param, grad, m, v, lr, beta1, beta2, eps, m_correction,
                      v_correction, weight_decay, decoupled):
    """One update of flat (n,) arrays param, m, v in place, over the chunks of CHUNK entries first..last-1.
    The arrays hold parameters one after another: parameter i is entries bounds[i]..bounds[i+1]-1, with
    weight decay where decays[i] (bool); a chunk may cover the end of one and the start of the next.

    decoupled: AdamW (shrink p) or Adam + L2 (add wd p to the gradient). Every constant is cast to the
    parameter's dtype first, as NumPy does with a Python float next to a float32 array.
    """
    dtype = param.dtype.type
    b1, b2 = dtype(beta1), dtype(beta2)
    one_minus_b1, one_minus_b2 = dtype(1.0 - beta1), dtype(1.0 - beta2)
    m_corr, v_corr = dtype(m_correction), dtype(v_correction)
    rate, epsilon = dtype(lr), dtype(eps)
    for chunk in range(first, last):
        start, stop = chunk * CHUNK, min((chunk + 1) * CHUNK, param.shape[0])
        segment = np.searchsorted(bounds, start, side="right") - 1   # the parameter entry `start` belongs to
        while start < stop:
            end = min(stop, bounds[segment + 1])                      # this chunk's part of that parameter
            decay = weight_decay if decays[segment] else 0.0
            l2 = dtype(decay) if not decoupled else dtype(0)
            shrink = dtype(lr * decay) if decoupled else dtype(0)
            # (end - start,) views, indexed from 0: a loop over range(start, end) did not vectorise (Numba
            # cannot tell that start >= 0, so every index kept its check for a negative one): 9x slower
            p_part, g_part, m_part, v_part = param[start:end], grad[start:end], m[start:end], v[start:end]
            for i in range(end - start):
                p = p_part[i]
                g = g_part[i] + l2 * p if l2 != 0 else g_part[i]
                m_i = m_part[i] * b1 + one_minus_b1 * g
                v_i = v_part[i] * b2 + one_minus_b2 * (g * g)
                m_part[i] = m_i
                v_part[i] = v_i
                if shrink != 0:
                    p = p - shrink * p
                p_part[i] = p - rate * (m_i / m_corr) / (np.sqrt(v_i / v_corr) + epsilon)
            start = end
            segment += 1


adam_update_jit = njit(cache=True, nogil=True, error_model="numpy")(adam_update_loops)


def adam_update_segments(param, grad, m, v, bounds, decays, lr, beta1, beta2, eps, t, weight_decay, decoupled):
    """Update flat (n,) param, m, v for step t: parameter i is entries bounds[i]..bounds[i+1]-1 (bounds:
    (parameters + 1,) int64, from 0 to n), decaying where decays[i]. The threads share out chunks of
    CHUNK entries, so a large embedding table is shared as evenly as many small biases."""
    run_tasks(adam_update_jit, (param.size + CHUNK - 1) // CHUNK, bounds, decays, param, grad, m, v, lr, beta1,
              beta2, eps, 1.0 - beta1 ** t, 1.0 - beta2 ** t, weight_decay, decoupled,
              work_ns=NS_PER_ENTRY * param.size)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, t, weight_decay, decoupled):
    """Update param (any shape, C-contiguous, like grad, m and v) for step t; False if the arrays are
    not all contiguous and of one shape and dtype (the caller then takes NumPy's way, which raises
    NumPy's own error for a shape mismatch instead of the kernel reading past an array's end)."""
    arrays = (param, grad, m, v)
    if not all(a.flags.c_contiguous and a.dtype == param.dtype and a.shape == param.shape for a in arrays):
        return False
    flat = [a.reshape(-1) for a in arrays]              # (n,) views
    adam_update_segments(*flat, np.array([0, param.size]), np.ones(1, dtype=np.bool_), lr, beta1, beta2, eps, t,
                         weight_decay, decoupled)
    return True


def add_scaled_loops(first, last, target, source, weight):
    """target += weight * source for flat (n,) arrays, in place, over the chunks of CHUNK entries first..last-1;
    weight * source is rounded to the dtype first, exactly as NumPy's `source *= weight; target += source`
    does, but in one pass that leaves source as it was."""
    w = target.dtype.type(weight)
    start, stop = first * CHUNK, min(last * CHUNK, target.shape[0])
    target_part, source_part = target[start:stop], source[start:stop]   # views from 0, so the loop vectorises
    for i in range(stop - start):
        target_part[i] += source_part[i] * w


add_scaled_jit = njit(cache=True, nogil=True, error_model="numpy")(add_scaled_loops)


def add_scaled(target, source, weight):
    """target += weight * source (any shape, both C-contiguous, one shape and dtype); False, doing
    nothing, when they are not (the caller then takes NumPy's way)."""
    if not (target.flags.c_contiguous and source.flags.c_contiguous and target.shape == source.shape
            and target.dtype == source.dtype):
        return False
    run_tasks(add_scaled_jit, (target.size + CHUNK - 1) // CHUNK, target.reshape(-1), source.reshape(-1), weight,
              work_ns=NS_PER_ADDED_ENTRY * target.size)
    return True
