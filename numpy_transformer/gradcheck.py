"""Numerical gradients by central differences, and a readable comparison with analytic ones.

    df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h)       error O(h^2)

Run it in float64. Two errors compete: rounding, about 1e-16 * |f| / h, and truncation, about
h^2 * |f'''| / 6. h = 1e-5 balances them for O(1) losses: about 1e-11 and 1e-10, far below the
1e-7 relative error we accept. (Measured here: h = 1e-6 cost 3e-7 on the 1e-3-sized gradients of a
deep post-LN stack through rounding; h = 1e-4 cost 2e-7 on an embedding through truncation.) Used by the tests, the notebooks and the exercise grader.
"""
from dataclasses import dataclass, field

import numpy as np


def relative_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||): 0 when equal, 1 when unrelated; well defined when both are tiny."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    diff = np.linalg.norm(analytic - numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(diff / scale) if scale > 0 else 0.0


def numerical_gradient(f, x, h=1e-5, indices=None):
    """Central-difference gradient of the scalar f() with respect to the array x, perturbed IN PLACE.

    f: a function of no arguments that reads x (and returns a float).
    indices: flat indices to check (None = every entry); others are left at 0 in the result.
    x is restored exactly after each entry.
    """
    if x.dtype != np.float64:
        raise ValueError(f"gradient checks need float64 arrays, got {x.dtype}")
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)           # a view: writing it perturbs x
    flat_grad = grad.reshape(-1)
    for i in (range(x.size) if indices is None else indices):
        original = flat_x[i]
        flat_x[i] = original + h
        f_plus = float(f())
        flat_x[i] = original - h
        f_minus = float(f())
        flat_x[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * h)
    return grad


# Below this, a gradient is zero to within central-difference noise (~1e-10 for O(1) losses).
# Some true gradients are exactly zero: a key bias adds the same score to every key, and the
# softmax ignores that. Relative error is meaningless there, so such rows are checked absolutely.
ZERO_GRAD_ATOL = 1e-8


@dataclass
class GradCheckRow:
    name: str
    shape: tuple
    checked: int
    max_abs_diff: float
    rel_error: float
    both_zero: bool = False     # analytic and numeric both below ZERO_GRAD_ATOL: rel_error not counted


@dataclass
class GradCheckReport:
    rows: list = field(default_factory=list)

    @property
    def max_rel_error(self):
        """The largest relative error over rows whose gradient is not zero on both sides."""
        return max((row.rel_error for row in self.rows if not row.both_zero), default=0.0)

    def worst(self):
        return max(self.rows, key=lambda row: 0.0 if row.both_zero else row.rel_error)

    def passed(self, tol=1e-7):
        return self.max_rel_error <= tol

    def __str__(self):
        width = max([len(r.name) for r in self.rows] + [9])
        lines = [f"{'parameter':<{width}}  {'shape':<16} {'checked':>7}  {'max |diff|':>10}  {'rel error':>9}"]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {str(r.shape):<16} {r.checked:>7}  {r.max_abs_diff:>10.2e}  "
                         f"{r.rel_error:>9.2e}" + ("  (both ~0: checked absolutely)" if r.both_zero else ""))
        lines.append(f"largest relative error: {self.max_rel_error:.2e}")
        return "\n".join(lines)


def compare(name, analytic, numeric, indices=None):
    """One report row: compare analytic and numeric gradients (on the checked indices only)."""
    analytic = np.asarray(analytic, dtype=np.float64).reshape(-1)
    numeric = np.asarray(numeric, dtype=np.float64).reshape(-1)
    if indices is not None:
        analytic, numeric = analytic[indices], numeric[indices]
    both_zero = bool(np.all(np.abs(analytic) < ZERO_GRAD_ATOL) and np.all(np.abs(numeric) < ZERO_GRAD_ATOL))
    return GradCheckRow(name, (), len(analytic), float(np.max(np.abs(analytic - numeric), initial=0.0)),
                        relative_error(analytic, numeric), both_zero)


def sample_indices(size, max_entries, rng):
    """All indices when size <= max_entries, else a random sample of max_entries of them."""
    if max_entries is None or size <= max_entries:
        return np.arange(size)
    return np.sort(rng.choice(size, max_entries, replace=False))


def check_function(forward, backward, inputs, rng=None, h=1e-5, max_entries=None):
    """Gradient-check a pure forward/backward pair of the project's kind.

    forward(*inputs) -> (out, cache); backward(dout, cache) -> one gradient or a tuple of them, one
    per entry of ``inputs`` ({name: array}) in order (None for an input with no gradient).
    The scalar checked is L = sum(out * R), R a fixed random array, so dout = R.
    Returns a GradCheckReport.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    names = list(inputs)
    arrays = [inputs[n] for n in names]
    out, cache = forward(*arrays)
    projection = rng.standard_normal(np.shape(out))
    analytic = backward(projection, cache)
    if not isinstance(analytic, tuple):
        analytic = (analytic,)

    def loss():
        return np.sum(forward(*arrays)[0] * projection)

    targets = [(name, array, grad) for name, array, grad in zip(names, arrays, analytic)
               if grad is not None and isinstance(array, np.ndarray) and array.dtype == np.float64]
    return compare_all(targets, loss, h, max_entries, rng)


def compare_all(targets, loss, h, max_entries, rng):
    """A report with one row per (name, array, analytic gradient): numeric gradients of loss()
    on sampled entries of each array, compared with the analytic ones."""
    report = GradCheckReport()
    for name, array, grad in targets:
        idx = sample_indices(array.size, max_entries, rng)
        numeric = numerical_gradient(loss, array, h, idx)
        row = compare(name, grad, numeric, idx)
        row.shape = array.shape
        report.rows.append(row)
    return report


def check_model(model, run_forward, rng=None, h=1e-5, max_entries=20, only=None):
    """Gradient-check every parameter of a model (or layer) on sampled entries.

    run_forward(): runs model.forward on fixed inputs and returns the scalar loss (a float); it must
    leave the cache for one model.backward(). The model's parameters must be float64.
    only: optional substring filter on parameter names.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    model.zero_grad()
    run_forward()
    model.backward()
    analytic = {name: grad.copy() for name, grad in model.grads().items()}

    def loss():
        value = run_forward()
        model.clear_caches()         # each numeric forward leaves caches we will not use
        return value

    targets = [(name, param, analytic[name]) for name, param in model.parameters().items()
               if only is None or only in name]
    return compare_all(targets, loss, h, max_entries, rng)


def randomize_parameters(model, rng, scale=1.0):
    """Give every parameter non-trivial random values (ones and zeros hide bugs), in place.

    Matrices get N(0, scale^2 / fan_in), so activations stay O(1) and no softmax saturates (a
    saturated one has gradients so small that finite-difference noise dominates the check);
    vectors get N(0, (0.3 scale)^2), LayerNorm gains 1 + that.
    """
    for name, param in model.parameters().items():
        if param.ndim >= 2:
            noise = rng.standard_normal(param.shape) * (scale / np.sqrt(param.shape[0]))
        else:
            noise = rng.standard_normal(param.shape) * (0.3 * scale)
        if name.endswith("gamma"):
            noise = 1.0 + noise          # gains around 1, not around 0
        param[...] = noise.astype(param.dtype)
    return model


def check_layer(layer, inputs, rng=None, h=1e-5, max_entries=20, **forward_kwargs):
    """Gradient-check a Layer: its parameters AND its inputs, with L = sum(layer.forward(...) * R).

    inputs: {name: float64 array} passed positionally to layer.forward, in order; layer.backward(R)
    must return the input gradients (one array, or a tuple in the same order).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    names = list(inputs)
    arrays = [inputs[n] for n in names]
    out = layer.forward(*arrays, **forward_kwargs)
    projection = rng.standard_normal(out.shape)
    layer.zero_grad()
    dinputs = layer.backward(projection)
    if not isinstance(dinputs, tuple):
        dinputs = (dinputs,)
    analytic = {name: grad.copy() for name, grad in layer.grads().items()}

    def loss():
        value = np.sum(layer.forward(*arrays, **forward_kwargs) * projection)
        layer.clear_caches()
        return value

    targets = [(f"input {n}", a, g) for n, a, g in zip(names, arrays, dinputs)]
    targets += [(n, p, analytic[n]) for n, p in layer.parameters().items()]
    return compare_all(targets, loss, h, max_entries, rng)
