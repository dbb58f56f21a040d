"""Linear layer on the fast path: the twin of layers/linear.py, with no Numba in it.

The work of y = x W + b is the matmul, and BLAS does that best. What the fast path changes is how
BLAS is called: the reference writes ``x @ W`` on a (B, T, C_in) array, which NumPy runs as B
separate (T, C_in) x (C_in, C_out) products; here the leading axes are folded into rows first, so
there is ONE (B*T, C_in) x (C_in, C_out) product, and the bias is added in place instead of into a
new array. Same arguments, outputs, dtypes and cache as the reference.
"""
import numpy as np


def as_rows(x):
    """(..., C) -> (N, C), N = product of the leading axes (a view whenever the layout allows)."""
    return x.reshape(-1, x.shape[-1])


def column_sums(rows):
    """(N, C) -> (C,): the sum over rows (a bias gradient), as ONE BLAS product with a vector of ones,
    (N,) x (N, C). NumPy's sum(axis=0) adds the rows one after another; BLAS keeps many partial sums
    at once (measured here: 17 us against 47 us for 2048 x 128 float32)."""
    return np.ones(rows.shape[0], dtype=rows.dtype) @ rows


def linear_forward(x, weight, bias):
    """y = x @ W + b on the last axis. x: (..., C_in) -> y: (..., C_out); cache (x, weight, has_bias)."""
    y_rows = as_rows(x) @ weight                        # (N, C_out): one BLAS call
    if bias is not None:
        y_rows += bias                                  # (N, C_out) in place
    y = y_rows.reshape(x.shape[:-1] + (weight.shape[1],))   # (..., C_out)
    return y, (x, weight, bias is not None)


def linear_backward(dy, cache):
    """dx = dy W^T, dW = x^T dy (summed over rows), db = sum over rows of dy, each one BLAS call."""
    x, weight, has_bias = cache
    x_rows = as_rows(x)                                 # (N, C_in)
    dy_rows = as_rows(dy)                               # (N, C_out)
    dx = (dy_rows @ weight.T).reshape(x.shape)          # (..., C_in)
    dweight = x_rows.T @ dy_rows                        # (C_in, C_out)
    dbias = column_sums(dy_rows) if has_bias else None  # (C_out,)
    return dx, dweight, dbias


def linear_many_forward(x, params):
    """y_i = x W_i + b_i for several layers that read the same x, as ONE matmul against [W_1 | W_2 | ...].

    x: (..., C_in), params: [(W_i (C_in, C_i), b_i (C_i,) or None), ...] -> [y_i (..., C_i)], cache.
    The y_i are column views of one (..., sum C_i) array. Multi-head self-attention uses it for its
    query, key and value projections: one (N, C) x (C, 3C) product runs faster in BLAS than three
    (N, C) x (C, C) ones. cache: (x, the concatenated weight, the widths, which layers have a bias).
    """
    weights = [weight for weight, _ in params]
    widths = [weight.shape[1] for weight in weights]
    weight = np.concatenate(weights, axis=1)            # (C_in, sum C_i)
    starts = np.cumsum([0] + widths)                    # where each layer's columns begin
    y_rows = as_rows(x) @ weight                        # (N, sum C_i): one BLAS call
    biases = [bias for _, bias in params]
    if all(bias is not None for bias in biases):
        y_rows += np.concatenate(biases)                # (N, sum C_i) in place: one pass (three passes over
    else:                                               # column slices took 3x as long, measured)
        for i, bias in enumerate(biases):
            if bias is not None:
                y_rows[:, starts[i]:starts[i + 1]] += bias   # (N, C_i) in place
    y = y_rows.reshape(x.shape[:-1] + (weight.shape[1],))   # (..., sum C_i)
    outputs = [y[..., starts[i]:starts[i + 1]] for i in range(len(widths))]   # [(..., C_i)] views
    return outputs, (x, weight, widths, [bias is not None for _, bias in params])


def linear_many_backward(douts, cache):
    """Gradients of linear_many_forward: douts [(..., C_i)] -> dx (..., C_in), [(dW_i, db_i or None)].

    With dY = [dy_1 | dy_2 | ...] and W = [W_1 | W_2 | ...]: dx = dY W^T sums every layer's share in
    one matmul; dW = x^T dY holds each dW_i as a block of columns; db_i = sum over rows of dy_i."""
    x, weight, widths, has_bias = cache
    dy_rows = np.concatenate([as_rows(dout) for dout in douts], axis=1)   # (N, sum C_i)
    dx = (dy_rows @ weight.T).reshape(x.shape)          # (..., C_in)
    dweight = as_rows(x).T @ dy_rows                    # (C_in, sum C_i)
    dbias_all = column_sums(dy_rows) if any(has_bias) else None    # (sum C_i,): one product for every layer
    starts = np.cumsum([0] + widths)
    grads = []
    for i, bias in enumerate(has_bias):
        columns = slice(starts[i], starts[i + 1])
        dbias = dbias_all[columns] if bias else None    # (C_i,) a view
        grads.append((dweight[:, columns], dbias))      # (C_in, C_i) a view, (C_i,)
    return dx, grads
