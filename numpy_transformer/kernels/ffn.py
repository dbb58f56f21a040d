"""The feed-forward network with Numba around BLAS: FFN(x) = act(x W1 + b1) W2 + b2.

The two matmuls stay in BLAS (a hand-written Numba matmul reaches well under half its speed, see
kernels/matmul.py); Numba fuses what surrounds them, work that NumPy would do in several passes
over (N, F) arrays, each allocating a temporary:
    forward:  pre = x W1 (BLAS), then ONE pass: z = pre + b1, hidden = act(z), slope = act'(z)
              (slope overwrites pre: the backward needs act'(z), not z)
    backward: dhidden = dout W2^T (BLAS), then ONE pass: dpre = dhidden * slope,
              and db1 = sum over rows of dpre (each block of rows sums its part, then the parts are added)
The slope is computed in the forward because the forward has done most of its work already (tanh for
gelu_tanh, erf for gelu): computed again in the backward, it cost as much as the forward pass itself.
Activations: "relu", "gelu" (exact, x Phi(x) with erf) and "gelu_tanh" (GPT-2's approximation),
with the same formulas as layers/activations.py.
"""
import math

import numpy as np
from numba import njit

from .linear import column_sums
from .threads import run_tasks

ACTIVATION_CODES = {"relu": 0, "gelu": 1, "gelu_tanh": 2}
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_CUBIC = 0.044715
ROW_BLOCK = 64          # rows per task of the backward; each block sums its own part of the bias gradient,
                        # and the parts are added in block order: the same result on any number of threads
NS_PER_ENTRY = 3.0      # one thread's time per entry of the bias + GELU pass, roughly (run_tasks' estimate)
NS_PER_BACKWARD_ENTRY = 0.5   # ... and of the backward's multiply and sum
# for exp_nonpositive_loops: a Cody-Waite split of ln 2 (n * LN2_HI is exact, in float32 too: 16 bits times 6)
LN2_HI = 0.693145751953125
LN2_LO = 1.4286068203094172321e-06
LOG2E = 1.4426950408889634
EXP_FLUSH = -41.0       # exp(x) below this is returned as 0: an absolute error under 1.6e-18
# 1/i! for the Taylor series of exp, highest first (Horner order)
EXP_TAYLOR = (1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
              1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1.0 / 2, 1.0, 1.0)
# float32 needs only the terms to r^7: the first one dropped, 0.35^8 / 8! = 5.6e-9 (under 8e-9 relative), is below
# a tenth of a float32 ulp; under 1% of results move by one ulp, accuracy unchanged (about 1.2 ulp at worst, measured).
# 5 fewer multiply-adds per exponential.
EXP_TAYLOR_FLOAT32 = EXP_TAYLOR[5:]
TANH_FLOAT32_LOWEST = -18.5   # tanh's exp(-2|u|) in float32 need go no lower (see tanh_loops)
# erf, for the exact GELU (math.erf is a scalar library call per entry, 15x slower than gelu_tanh; measured):
#   |x| < ERF_SPLIT:   erf(x) = x sum_n c_n (x^2)^n,  its Taylor series, c_n = 2/sqrt(pi) (-1)^n / (n! (2n + 1))
#   |x| >= ERF_SPLIT:  erf(x) = sign(x) (1 - erfc|x|),  erfc(y) = exp(-y^2) / y * q(t),  t from s = 1 / y
# q(t) = y exp(y^2) erfc(y) is a polynomial fitted by kernels/erf_fit.py, which also measures the result: within
# 3.0 units in the last place of scipy.special.erf in float64 over [-7, 7], 4.7 in float32 (the most near |x| = 1.5,
# where the Taylor series' terms partly cancel). The exact GELU's forward: 9x faster in float32, 4x in float64.
ERF_SPLIT = 1.5
ERF_TOP = 6.0           # erfc(6) = 2.2e-17: beyond, erf is +-1 to double precision (y is clamped here)


def erf_taylor_coefficients(count):
    """The first `count` coefficients c_n = 2/sqrt(pi) (-1)^n / (n! (2n + 1)), highest first (Horner order)."""
    return tuple(2.0 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1))
                 for n in reversed(range(count)))


# 25 terms: at |x| = 1.5 the first one left out, c_25 2.25^25 1.5, is under 1e-17; float32: 16 terms (under 3e-9)
ERF_TAYLOR = erf_taylor_coefficients(25)
ERF_TAYLOR_FLOAT32 = erf_taylor_coefficients(16)
ERFC_TAIL = (           # q in powers of t, highest first (kernels/erf_fit.py)
    -4.5518477460693713e-11, -3.63415904901538e-11, 6.857800096132139e-10,
    -1.6392254511582426e-09, 1.6394276350130543e-09, 3.891347054441871e-09,
    -3.232008654679473e-08, 1.1818909170793036e-07, -2.5018388067578186e-07,
    1.752872071562243e-08, 2.5190835846313067e-06, -1.2436967929052565e-05,
    3.149668361080828e-05, 2.4716497733149775e-06, -0.0004674399390424918,
    0.002460770062859194, -0.004444492750401745, -0.039591583739173,
    0.5243969628888799,
)
ERFC_TAIL_FLOAT32 = (
    1.774122376104396e-06, -1.1982823859014158e-05, 3.2180992964509025e-05,
    2.026994908929167e-06, -0.0004676898521034649, 0.0024609080215579784,
    -0.0044444611124324135, -0.03959159473497704, 0.524396962250951,
)


# Why the helpers look the way they do (the first and last points were measured here: each gave ~1.3-1.6x):
# - Every constant is cast to the working dtype (dtype.type(...)). Numba types a Python float, and even
#   an int such as 2, as float64, so `2 * u` with u float32 turns the whole chain into float64: half as many
#   lanes per instruction and slower division.
# - No int64 anywhere: np.floor keeps the whole number as a float (one vector instruction), and 2^-n comes
#   from int32 shifts. math.floor returns an int64, and AVX2 (a student's laptop; this machine also has
#   AVX-512) has no vector conversion between floats and int64.
# - The helpers take the dtype (pre.dtype), not an array to read it from: an array passed into an inlined
#   helper is reference-counted on every call, and inside a function with more than one loop Numba did not
#   remove those calls, so the loop stopped vectorising (measured: 10x slower).
# - The kernels are compiled with error_model="numpy": under Numba's default ("python") every division checks
#   for a zero divisor to raise ZeroDivisionError, and that branch stops the loop from vectorising. No divisor
#   here can be zero; NumPy scalars (NUMBA_DISABLE_JIT=1) behave the same way.
# The same Taylor polynomial for exp also stands in kernels/attention.py, on purpose: a kernel and its helpers
# live in one module (docs/kernels.md: a cached caller of a helper edited in another module returned stale
# results). This copy returns exp(x) as mantissa / scale so that tanh saves a division (measured).
def is_float32_loops(dtype):
    """True for float32, False for float64: 1 + 1e-10 rounds back to 1 only in single precision (epsilon
    1.2e-7 against 2.2e-16). The helpers take a dtype, not an array (see above), so they cannot ask an
    array's itemsize; this arithmetic on constants is folded away when the kernel compiles."""
    return dtype.type(1) + dtype.type(1e-10) == dtype.type(1)


def exp_parts_loops(x, dtype, lowest):
    """exp(x) = mantissa / scale for x <= 0, from plain arithmetic in that dtype, so that loops calling it
    vectorise (math.exp is a scalar library call here: no SVML). x = n ln2 + r with |r| <= ln2 / 2:
    mantissa = exp(r) by its Taylor series to r^12 (truncation < 2e-16 relative; to r^7 in float32),
    scale = 2^-n >= 1.
    The division is left to the caller: tanh needs only (scale - mantissa) / (scale + mantissa).
    x is clamped at `lowest`: EXP_FLUSH (-41), so exp(x) < 1.6e-18 comes out as exp(-41) (see
    exp_nonpositive_loops), or a higher bound a caller needs no lower than (tanh in float32): from -21 up,
    -n <= 30 and 2^-n takes one int32 shift instead of two (the callers pass constants, so Numba keeps
    one branch)."""
    x = max(x, dtype.type(lowest))                     # a select, not a branch: keeps -inf out too
    n = np.floor(x * dtype.type(LOG2E) + dtype.type(0.5))   # round(x / ln2) in [-59, 0], a float
    r = (x - n * dtype.type(LN2_HI)) - n * dtype.type(LN2_LO)
    if is_float32_jit(dtype):                           # a constant: Numba compiles one branch
        mantissa = dtype.type(EXP_TAYLOR_FLOAT32[0])
        for coefficient in EXP_TAYLOR_FLOAT32[1:]:     # Horner: (...(c7 r + c6) r + ...) r + 1
            mantissa = mantissa * r + dtype.type(coefficient)
    else:
        mantissa = dtype.type(EXP_TAYLOR[0])
        for coefficient in EXP_TAYLOR[1:]:             # Horner: (...(c12 r + c11) r + ...) r + 1
            mantissa = mantissa * r + dtype.type(coefficient)
    # 2^-n = 2^a 2^b with a, b <= 30: each an int32 shift, converted exactly. int32 -> float conversion is one
    # vector instruction, int64 -> float is not, and Numba widens shifts to int64: hence the np.int32 around each.
    steps = -n
    if lowest >= -21.0:                                 # -n <= round(21 log2(e)) = 30: one shift is enough
        return mantissa, dtype.type(np.int32(np.int32(1) << np.int32(steps)))
    a = min(steps, dtype.type(30))
    power_a = dtype.type(np.int32(np.int32(1) << np.int32(a)))
    power_b = dtype.type(np.int32(np.int32(1) << np.int32(steps - a)))
    scale = power_a * power_b                           # 2^-n exactly (<= 2^59)
    return mantissa, scale


def exp_nonpositive_loops(x, dtype):
    """exp(x) for x <= 0 in dtype; below EXP_FLUSH (-41) the result is 0 (true value < 1.6e-18)."""
    mantissa, scale = exp_parts_jit(x, dtype, EXP_FLUSH)
    value = mantissa / scale
    return value if x > dtype.type(EXP_FLUSH) else dtype.type(0)   # a select on values


def tanh_loops(u, dtype):
    """tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2 |u|) in (0, 1]: no overflow, vectorisable.
    With e = mantissa / scale this is (scale - mantissa) / (scale + mantissa): one division, not two.
    For |u| > 20.5 the clamped e (< 1.6e-18) is below half an ulp of 1, so t is exactly +-1 as it should be.
    In float32, t = 1 - 2e/(1 + e) is exactly +-1 once |u| > 9.01 (2e under half an ulp of 1; this computation
    gives +-1 from 8.7 on), so e is clamped at exp(TANH_FLOAT32_LOWEST) = exp(-18.5), |u| = 9.25: the same
    results, and 2^-n takes one shift instead of two (bias + gelu_tanh 0.645 -> 0.53 ms for 1024 x 512 in
    float32, measured).
    Computed in dtype; the sign is a select on values, not a branch."""
    lowest = TANH_FLOAT32_LOWEST if is_float32_jit(dtype) else EXP_FLUSH
    mantissa, scale = exp_parts_jit(dtype.type(-2) * abs(u), dtype, lowest)
    t = (scale - mantissa) / (scale + mantissa)
    return t if u >= dtype.type(0) else -t


def erf_loops(x, gaussian, dtype):
    """erf(x) in dtype from plain arithmetic, so that loops calling it vectorise; gaussian = exp(-x^2), which
    the caller has computed already (the exact GELU needs it for its density too).
        |x| < 1.5:   x times the Taylor series in x^2 (ERF_TAYLOR)
        |x| >= 1.5:  1 - erfc|x|, erfc(y) = exp(-y^2) / y * q(t), the fitted q (ERFC_TAIL) at
                     t = (2 s - (1/6 + 1/1.5)) / (1/1.5 - 1/6), s = 1 / y,  y = |x| clamped to [1.5, 6]
    Both are computed and one is selected (a select on values, not a branch), as is the sign."""
    one = dtype.type(1)
    y = abs(x)
    u = y * y
    y_tail = min(max(y, dtype.type(ERF_SPLIT)), dtype.type(ERF_TOP))
    s = one / y_tail
    low, high = dtype.type(1.0 / ERF_TOP), dtype.type(1.0 / ERF_SPLIT)
    t = (dtype.type(2) * s - (low + high)) / (high - low)
    if is_float32_jit(dtype):                           # a constant: Numba compiles one branch
        series = dtype.type(ERF_TAYLOR_FLOAT32[0])
        for coefficient in ERF_TAYLOR_FLOAT32[1:]:      # Horner in u = x^2
            series = series * u + dtype.type(coefficient)
        q = dtype.type(ERFC_TAIL_FLOAT32[0])
        for coefficient in ERFC_TAIL_FLOAT32[1:]:       # Horner in t
            q = q * t + dtype.type(coefficient)
    else:                                               # the same, with each Horner loop cut in two: a loop
        series = dtype.type(ERF_TAYLOR[0])              # of more than ~16 steps stays a loop, not unrolled, and
        for coefficient in ERF_TAYLOR[1:13]:            # then the loop over a row's entries did not vectorise
            series = series * u + dtype.type(coefficient)   # (measured: 8x slower in float64)
        for coefficient in ERF_TAYLOR[13:]:
            series = series * u + dtype.type(coefficient)
        q = dtype.type(ERFC_TAIL[0])
        for coefficient in ERFC_TAIL[1:10]:
            q = q * t + dtype.type(coefficient)
        for coefficient in ERFC_TAIL[10:]:
            q = q * t + dtype.type(coefficient)
    # beyond |x| = 6 gaussian < exp(-36): 1 - gaussian s q rounds to 1, as erf does
    magnitude = y * series if y < dtype.type(ERF_SPLIT) else one - gaussian * s * q
    return magnitude if x >= dtype.type(0) else -magnitude


is_float32_jit = njit(cache=True, inline="always", error_model="numpy")(is_float32_loops)
exp_parts_jit = njit(cache=True, inline="always", error_model="numpy")(exp_parts_loops)   # inlined into the kernels
exp_nonpositive_jit = njit(cache=True, inline="always", error_model="numpy")(exp_nonpositive_loops)   # inlined
tanh_jit = njit(cache=True, inline="always", error_model="numpy")(tanh_loops)
erf_jit = njit(cache=True, inline="always", error_model="numpy")(erf_loops)


def bias_act_forward_loops(first, last, pre, bias, code, hidden):
    """For rows n = first..last-1, with z = pre[n, f] + bias[f]: hidden[n, f] = act(z), and, in place,
    pre[n, f] = act'(z), the slope the backward multiplies by.

    pre: (N, F) the BLAS output x W1, owned by the caller; bias: (F,); hidden: (N, F) output.
    code: 0 relu, 1 gelu (exact), 2 gelu_tanh, with
        relu:       act(z) = max(z, 0),       act'(z) = 1 if z > 0 else 0
        gelu:       act(z) = z Phi(z),        act'(z) = Phi(z) + z phi(z)
        gelu_tanh:  act(z) = z (1 + t) / 2,   act'(z) = (1 + t) / 2 + z (1 - t^2) u' / 2,
                    t = tanh(u), u = sqrt(2/pi) (z + 0.044715 z^3), u' = sqrt(2/pi) (1 + 3 0.044715 z^2)
    The branch sits outside the loop over a row, and the loop runs over 1-D row views indexed from 0,
    so it vectorises.
    """
    F = pre.shape[1]
    half = pre.dtype.type(0.5)
    one = pre.dtype.type(1)
    zero = pre.dtype.type(0)
    inv_sqrt_2 = pre.dtype.type(INV_SQRT_2)
    inv_sqrt_2pi = pre.dtype.type(INV_SQRT_2PI)
    sqrt_2_over_pi = pre.dtype.type(SQRT_2_OVER_PI)
    cubic = pre.dtype.type(GELU_CUBIC)
    cubic3 = pre.dtype.type(3 * GELU_CUBIC)
    for n in range(first, last):                        # rows are independent
        pre_row = pre[n]                                # (F,) views: x W1, then the slope act'(z)
        hidden_row = hidden[n]                          # (F,)
        if code == 0:
            for f in range(F):
                z = pre_row[f] + bias[f]
                hidden_row[f] = z if z > zero else zero
                pre_row[f] = one if z > zero else zero
        elif code == 1:
            for f in range(F):
                z = pre_row[f] + bias[f]
                x = z * inv_sqrt_2
                gaussian = exp_nonpositive_jit(-x * x, pre.dtype)   # exp(-z^2 / 2), for erf and the density
                cdf = half * (one + erf_jit(x, gaussian, pre.dtype))
                pdf = inv_sqrt_2pi * gaussian
                hidden_row[f] = z * cdf
                pre_row[f] = cdf + z * pdf
        else:
            for f in range(F):
                z = pre_row[f] + bias[f]
                inner = sqrt_2_over_pi * (z + cubic * z * z * z)
                t = tanh_jit(inner, pre.dtype)
                dinner = sqrt_2_over_pi * (one + cubic3 * z * z)
                hidden_row[f] = z * (half * (one + t))
                pre_row[f] = half * (one + t) + half * z * (one - t * t) * dinner


def bias_act_backward_loops(first, last, dhidden, slope, dpre, dbias_blocks):
    """dpre = dhidden * slope, all (N, F) (slope = act'(z), left by the forward), for the blocks of
    ROW_BLOCK rows first..last-1; dbias_blocks[block] (F,) = the sum of dpre over that block's rows
    (the bias gradient, in parts). Where the slope is 0 (relu's inactive units) dpre is 0 even when
    dhidden is inf or NaN, as relu's reference (np.where) gives, not NaN from 0 * inf."""
    F = slope.shape[1]
    zero = slope.dtype.type(0)
    N = slope.shape[0]
    for block in range(first, last):
        block_sum = dbias_blocks[block]                 # (F,) this block's part of dbias
        block_sum[:] = zero
        for n in range(block * ROW_BLOCK, min(N, (block + 1) * ROW_BLOCK)):
            slope_row = slope[n]                        # (F,) views
            dhidden_row = dhidden[n]                    # (F,)
            dpre_row = dpre[n]                          # (F,)
            for f in range(F):
                dpre_row[f] = dhidden_row[f] * slope_row[f] if slope_row[f] != zero else zero
                block_sum[f] += dpre_row[f]


bias_act_forward_jit = njit(cache=True, nogil=True, error_model="numpy")(bias_act_forward_loops)
bias_act_backward_jit = njit(cache=True, nogil=True, error_model="numpy")(bias_act_backward_loops)


def activation_code(activation):
    if activation not in ACTIVATION_CODES:
        raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(ACTIVATION_CODES)}")
    return ACTIVATION_CODES[activation]


def bias_act_forward(pre, bias, activation):
    """hidden = act(z) with z = pre + bias, and pre (N, F) overwritten with act'(z). -> (hidden, slope)."""
    if np.shape(bias) != (pre.shape[1],):               # the loops would read past its end
        raise ValueError(f"bias {np.shape(bias)} must be ({pre.shape[1]},) for x W1 of shape {pre.shape}")
    hidden = np.empty_like(pre)                         # (N, F)
    bias = bias.astype(pre.dtype, copy=False)           # so that z = pre + bias is computed in pre's dtype
    run_tasks(bias_act_forward_jit, pre.shape[0], pre, bias, activation_code(activation), hidden,
              work_ns=NS_PER_ENTRY * pre.size)
    return hidden, pre


def bias_act_backward(dhidden, slope):
    """-> dpre (N, F), dbias (F,) for hidden = act(z), z = x W1 + b1, from slope = act'(z) (N, F)."""
    N, F = slope.shape
    blocks = (N + ROW_BLOCK - 1) // ROW_BLOCK
    dpre = np.empty_like(slope)                         # (N, F)
    dbias_blocks = np.empty((blocks, F), dtype=slope.dtype)   # (blocks, F)
    run_tasks(bias_act_backward_jit, blocks, np.ascontiguousarray(dhidden, dtype=slope.dtype), slope, dpre,
              dbias_blocks, work_ns=NS_PER_BACKWARD_ENTRY * slope.size)
    return dpre, dbias_blocks.sum(axis=0)               # (N, F), (F,)


def ffn_forward(x, w1, b1, w2, b2, activation="relu"):
    """out = act(x W1 + b1) W2 + b2.

    x: (..., C), w1: (C, F), b1: (F,), w2: (F, C), b2: (C,) -> out: (..., C).
    cache: (x_rows, w1, slope, hidden, w2, x.shape) with z = x W1 + b1, hidden = act(z), slope = act'(z).
    """
    C = x.shape[-1]
    x_rows = np.ascontiguousarray(x.reshape(-1, C))     # (N, C), N = product of leading axes
    pre = x_rows @ w1                                   # (N, F)  BLAS
    hidden, slope = bias_act_forward(pre, b1, activation)   # (N, F), (N, F)  one fused pass (slope is pre's memory)
    out = hidden @ w2                                   # (N, C)  BLAS
    out += b2                                           # (N, C)
    return out.reshape(x.shape), (x_rows, w1, slope, hidden, w2, x.shape)


def ffn_backward(dout, cache):
    """Gradients of ffn_forward -> dx (..., C), dw1 (C, F), db1 (F,), dw2 (F, C), db2 (C,).

        out = hidden W2 + b2      ->  dhidden = dout W2^T,  dW2 = hidden^T dout,  db2 = sum_rows dout
        hidden = act(z)           ->  dz = dhidden * act'(z) = dhidden * slope
        z = x W1 + b1             ->  dx = dz W1^T,  dW1 = x^T dz,  db1 = sum_rows dz
    """
    x_rows, w1, slope, hidden, w2, x_shape = cache
    dout_rows = dout.reshape(-1, dout.shape[-1])        # (N, C)
    dw2 = hidden.T @ dout_rows                          # (F, C)
    db2 = column_sums(dout_rows)                        # (C,)  BLAS
    dhidden = dout_rows @ w2.T                          # (N, F)
    dz, db1 = bias_act_backward(dhidden, slope)         # (N, F), (F,)  one fused pass
    dw1 = x_rows.T @ dz                                 # (C, F)
    dx = dz @ w1.T                                      # (N, C)
    return dx.reshape(x_shape), dw1, db1, dw2, db2
