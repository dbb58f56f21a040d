"""Where the numbers in kernels/ffn.py's erf come from: run `python -m numpy_transformer.kernels.erf_fit`.

erf has no vectorising library call here (math.erf is a scalar call per entry), so the FFN kernel builds it
from arithmetic. For |x| >= ERF_SPLIT it writes
    erfc(x) = exp(-x^2) / x * q(s),   s = 1 / x,   q(s) = x exp(x^2) erfc(x)
q is smooth and slowly varying (q -> 1/sqrt(pi) = 0.564 as x -> infinity; 0.48 at x = 1.5), so a polynomial
of modest degree reproduces it. This script fits that polynomial: it samples q at Chebyshev points of the
s-interval [1/ERF_TOP, 1/ERF_SPLIT] (with scipy.special.erfcx, x exp(x^2) erfc(x) without underflow), fits a
Chebyshev series by least squares, and prints it in powers of t (the interval mapped onto [-1, 1]), highest
first, ready for Horner's rule: paste them into kernels/ffn.py. It then measures kernels/ffn.py's erf as it
stands (with the coefficients pasted there, compiled) against scipy's, in units in the last place.
Needs scipy (a dependency already: the NumPy reference's GELU uses scipy.special.erf).
"""
import numpy as np
from numpy.polynomial import chebyshev

from .ffn import ERF_SPLIT, ERF_TOP   # below ERF_SPLIT erf's Taylor series; beyond ERF_TOP erf is +-1

TAIL_DEGREES = {"float64": 18, "float32": 8}
SAMPLES = 2000


def fit_tail(degree):
    """Coefficients of q as a polynomial in t, highest power first."""
    from scipy.special import erfcx
    t = np.cos(np.pi * (np.arange(SAMPLES) + 0.5) / SAMPLES)   # Chebyshev points in [-1, 1]
    low, high = 1.0 / ERF_TOP, 1.0 / ERF_SPLIT
    s = (t * (high - low) + (low + high)) / 2.0
    x = 1.0 / s
    q = x * erfcx(x)                                            # x exp(x^2) erfc(x)
    series = chebyshev.chebfit(t, q, degree)
    return tuple(float(c) for c in chebyshev.cheb2poly(series)[::-1])


def erf_with_kernel(x):
    """erf of every entry of the 1-D array x, computed by the FFN kernel's erf (compiled, as training runs it)."""
    from numba import njit

    from . import ffn

    @njit(error_model="numpy")
    def fill(values, out):
        for i in range(values.shape[0]):
            value = values[i]
            out[i] = ffn.erf_jit(value, ffn.exp_nonpositive_jit(-value * value, values.dtype), values.dtype)

    out = np.empty_like(x)
    fill(x, out)
    return out


def ulps_from_scipy(x):
    """|kernel erf - scipy erf| in units in the last place of x's dtype, entry by entry."""
    from scipy.special import erf
    expected = erf(x.astype(np.float64))
    spacing = np.spacing(np.abs(expected).astype(x.dtype)).astype(np.float64)
    return np.abs(erf_with_kernel(x).astype(np.float64) - expected) / spacing


def main():
    x = np.linspace(-7.0, 7.0, 1400001)
    for name, dtype in (("float64", np.float64), ("float32", np.float32)):
        coefficients = fit_tail(TAIL_DEGREES[name])
        print(f"ERFC_TAIL{'' if name == 'float64' else '_FLOAT32'} = (")
        for i in range(0, len(coefficients), 3):
            print("    " + " ".join(f"{c!r}," for c in coefficients[i:i + 3]))
        print(")")
        print(f"# {name}: kernels/ffn.py's erf against scipy.special.erf: at most "
              f"{ulps_from_scipy(x.astype(dtype)).max():.1f} units in the last place over [-7, 7]")


if __name__ == "__main__":
    main()
