"""The FFN kernel's arithmetic helpers and its float32 path, over the whole input range.

tests/test_kernels.py checks the kernels on standard-normal inputs; here the helpers that replace math.exp,
math.tanh and math.erf (kernels/ffn.py) are checked where they could break: large |x|, the flush point, zeros, -inf,
and both dtypes (they compute in the dtype passed as their second argument).
"""
import numpy as np
import pytest

from numpy_transformer.kernels import erf_fit, ffn
from numpy_transformer.layers import activations


def same_scale_error(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(np.max(np.abs(expected), initial=0.0), 1.0)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected), initial=0.0) / scale)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-15), (np.float32, 3e-7)])
def test_exp_nonpositive_matches_numpy(dtype, rtol):
    like = np.dtype(dtype)
    xs = np.concatenate([np.linspace(-40.9, 0.0, 997), [-1e-30, -0.0, -0.5 * np.log(2.0)]]).astype(dtype)
    values = np.array([ffn.exp_nonpositive_jit(x, like) for x in xs])
    assert np.all(values.astype(dtype) == values)      # jitted scalars come back as Python floats
    expected = np.exp(xs.astype(np.float64))
    assert np.max(np.abs(values - expected) / expected) < rtol
    for x in (-41.5, -1e3, -np.inf):                    # below the flush point: exactly 0 (true value < 1.6e-18)
        assert ffn.exp_nonpositive_jit(dtype(x), like) == 0


@pytest.mark.parametrize("dtype, atol", [(np.float64, 4e-16), (np.float32, 2.5e-7)])
def test_tanh_matches_numpy(dtype, atol):
    like = np.dtype(dtype)
    us = np.concatenate([np.linspace(-25, 25, 2001), [0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 1e4, -1e4]]).astype(dtype)
    values = np.array([ffn.tanh_jit(u, like) for u in us])
    assert np.all(values.astype(dtype) == values)      # jitted scalars come back as Python floats
    assert np.max(np.abs(values - np.tanh(us.astype(np.float64)))) < atol
    assert ffn.tanh_jit(dtype(30), like) == 1 and ffn.tanh_jit(dtype(-30), like) == -1   # saturates exactly
    assert ffn.tanh_jit(dtype(0), like) == 0
    if dtype == np.float32:                             # float32 clamps exp(-2|u|) at |u| = 9.25 (one shift, not
        assert ffn.tanh_jit(dtype(8.5), like) < 1       # two): the result is exactly 1 from |u| = 8.7 on already
        assert ffn.tanh_jit(dtype(9.02), like) == 1 and ffn.tanh_jit(dtype(-9.3), like) == -1


@pytest.mark.parametrize("dtype, max_ulps", [(np.float64, 4.0), (np.float32, 6.0)])
def test_erf_matches_scipy_to_a_few_units_in_the_last_place(dtype, max_ulps):
    """The compiled erf (Taylor series below |x| = 1.5, the fitted erfc tail above) against scipy.special.erf,
    densely on both sides of the split and out to where erf is +-1 (measured: 3.0 and 4.7 units at most)."""
    xs = np.concatenate([np.linspace(-7.0, 7.0, 140001), np.linspace(1.49, 1.51, 2001)]).astype(dtype)
    assert erf_fit.ulps_from_scipy(xs).max() <= max_ulps
    specials = np.array([0.0, 1e-30, -1e-30, 6.5, -6.5, 30.0, -1e3, np.inf, -np.inf], dtype=dtype)
    values = erf_fit.erf_with_kernel(specials)
    assert values[0] == 0 and values[1] > 0 > values[2]              # tiny x: erf(x) = 2x / sqrt(pi), sign kept
    np.testing.assert_array_equal(values[3:], [1, -1, 1, -1, 1, -1])   # exactly +-1 beyond the fitted range


def test_erf_tail_coefficients_come_from_erf_fit():
    """The polynomial in kernels/ffn.py is what kernels/erf_fit.py fits (run it to see them and their error)."""
    for coefficients, degree in ((ffn.ERFC_TAIL, 18), (ffn.ERFC_TAIL_FLOAT32, 8)):
        np.testing.assert_allclose(coefficients, erf_fit.fit_tail(degree), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_float32_kernel_on_wide_inputs(activation, rng):
    """float32 in, float32 out, and within test_kernels.py's FLOAT32_RTOL (2e-5) of the NumPy reference also
    for inputs far in the tails, where tanh saturates and the Gaussian density underflows."""
    pre = (5 * rng.standard_normal((7, 130))).astype(np.float32)
    pre[0, :8] = [0.0, -0.0, 30.0, -30.0, 1e3, -1e3, 1e-20, -1e-20]
    bias = rng.standard_normal(130).astype(np.float32)
    dhidden = rng.standard_normal((7, 130)).astype(np.float32)
    forward, backward = {
        "relu": (activations.relu_forward, activations.relu_backward),
        "gelu": (lambda z: activations.gelu_forward(z, "none"), activations.gelu_backward),
        "gelu_tanh": (lambda z: activations.gelu_forward(z, "tanh"), activations.gelu_backward)}[activation]
    hidden_ref, cache = forward(pre + bias)
    dpre_ref = backward(dhidden, cache)
    hidden, slope = ffn.bias_act_forward(pre.copy(), bias, activation)
    dpre, dbias = ffn.bias_act_backward(dhidden, slope)
    for array in (hidden, dpre, dbias):
        assert array.dtype == np.float32
    assert same_scale_error(hidden, hidden_ref) < 2e-5
    assert same_scale_error(dpre, dpre_ref) < 2e-5
    assert same_scale_error(dbias, dpre_ref.astype(np.float64).sum(axis=0)) < 2e-5


def test_relu_passes_no_gradient_through_inactive_units_not_even_inf_or_nan():
    """relu's reference picks 0 where z <= 0 (np.where); the kernel multiplies by the slope, and a 0 slope
    must give 0 there too, not 0 * inf = NaN (a review found this when the slope moved to the forward)."""
    pre = np.array([[-1.0, 2.0, -3.0, 0.5]])
    dhidden = np.array([[np.inf, 1.0, np.nan, -2.0]])
    _, slope = ffn.bias_act_forward(pre.copy(), np.zeros(4), "relu")
    dpre, dbias = ffn.bias_act_backward(dhidden, slope)
    expected = activations.relu_backward(dhidden, activations.relu_forward(pre)[1])
    np.testing.assert_array_equal(dpre, expected)                   # [0, 1, 0, -2]
    assert not np.signbit(dpre[0, 0]) and np.array_equal(dbias, expected[0])
