"""The Numba kernels against their own Python source, against the NumPy reference, and by gradient checks.

What "the same result" means (docs/kernels.md):
  - a jitted kernel equals its own Python source bit for bit (float64, small inputs);
  - kernel and NumPy reference agree within rtol 1e-10 in float64 and FLOAT32_RTOL in float32;
  - a forward on one backend feeds the backward of the other (same cache layout);
  - a short float64 training run gives the same loss curve on both backends.
Every test here also runs with NUMBA_DISABLE_JIT=1 (test_kernel_sources_run_as_python spawns that run).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_gradcheck
from numpy_transformer import backend
from numpy_transformer.gradcheck import check_function
from numpy_transformer.kernels import attention as attention_kernels
from numpy_transformer.kernels import embedding as embedding_kernels
from numpy_transformer.kernels import ffn as ffn_kernels
from numpy_transformer.kernels import linear as linear_kernels
from numpy_transformer.kernels import layernorm as layernorm_kernels
from numpy_transformer.kernels import loss as loss_kernels
from numpy_transformer.kernels import optim as optim_kernels
from numpy_transformer.kernels import threads as threads_module
from numpy_transformer.kernels.matmul import matmul_tiled, matmul_tiled_jit, matmul_tiled_loops
from numpy_transformer.layers import activations, attention, embedding, layernorm, linear, loss
from numpy_transformer.models import GPT, GPTConfig
from numpy_transformer.models.common import keep_attention_weights
from numpy_transformer.optim import Adam, AdamW

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"
FLOAT64_RTOL = 1e-10
# float32: the worst error (largest |a - b| over max(largest |b|, 1), see same_scale_error) measured
# over 5 seeds of every case below was 4.3e-6 (attention with head size 128, whose sums over D run in
# another order in BLAS; the FFN backward 1.1e-6); LayerNorm 5.2e-7, cross-entropy 2.4e-7. Margin about 5x.
FLOAT32_RTOL = 2e-5

# (B, H, T, S, D, causal, padded): odd sizes on purpose
ATTENTION_CASES = {
    "one query": (2, 2, 1, 1, 4, True, False),
    "T not a multiple of the key tile": (1, 2, 67, 67, 64, True, False),   # head size 64: tiles of 64 keys
    "wide tiles, S > 256": (1, 2, 20, 300, 16, True, True),                 # head size 16: tiles of 256 keys
    "one head, padding": (2, 1, 6, 6, 3, False, True),
    "cross-attention S > T, causal offset": (2, 2, 3, 7, 4, True, False),
    "cross-attention S < T, padding": (2, 3, 7, 3, 4, False, True),
    "causal S < T: early rows see nothing": (1, 2, 5, 3, 2, True, False),
    "causal with padding": (3, 2, 9, 9, 8, True, True),
    "head size 128: blocks of 32 queries": (1, 1, 70, 70, 128, True, True),
}


def same_scale_error(actual, expected):
    """max |actual - expected| / max(max |expected|, 1): relative to the array's largest entry, so
    near-zero entries (and all-zero gradients, e.g. dq when S = 1) cannot blow it up."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(np.max(np.abs(expected), initial=0.0), 1.0)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected), initial=0.0) / scale)


def assert_close(actual, expected, dtype):
    assert np.asarray(actual).dtype == np.asarray(expected).dtype, (np.asarray(actual).dtype, np.asarray(expected).dtype)
    if dtype == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=FLOAT64_RTOL, atol=1e-13)
    else:
        assert same_scale_error(actual, expected) < FLOAT32_RTOL


def attention_inputs(case, rng, dtype=np.float64):
    B, H, T, S, D, causal, padded = ATTENTION_CASES[case]
    q = rng.standard_normal((B, H, T, D)).astype(dtype)
    k = rng.standard_normal((B, H, S, D)).astype(dtype)
    v = rng.standard_normal((B, H, S, D)).astype(dtype)
    mask = None
    if padded:
        mask = rng.random((B, S)) < 0.4
        mask[0, :] = True                        # one batch entry all padding: zero rows, lse = -inf
        mask[-1, 0] = False
    return q, k, v, causal, mask


@pytest.fixture(params=["numpy", "numba"])
def backend_name(request):
    with backend.use_backend(request.param):
        yield request.param


# --- 1. a jitted kernel equals its own Python source, bit for bit ------------------------------------

def python_source(jitted):
    """The plain Python function behind a jitted kernel (the function itself when JIT is disabled)."""
    return getattr(jitted, "py_func", jitted)


def run_twice(jitted, make_args, outputs):
    """Run the compiled kernel and its Python source on identical fresh arguments; return both outputs."""
    results = []
    for function in (jitted, python_source(jitted)):
        args = make_args()
        function(*args)
        results.append([args[i].copy() for i in outputs])
    return results


@pytest.mark.parametrize("case", ["causal with padding", "cross-attention S > T, causal offset",
                                  "T not a multiple of the key tile"])
def test_bitwise_attention(case, rng):
    q, k, v, causal, mask = attention_inputs(case, rng)
    B, H, T, D = q.shape
    S = k.shape[2]
    padding = attention_kernels.padding_or_none(mask, B, S)
    q_strided = np.ascontiguousarray(q.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)   # as the model passes it

    def forward_args():
        return (0, B * H, q_strided, k, v, 0.5, causal, padding, np.zeros_like(q), np.zeros((B, H, T)),
                np.zeros((B, H, T, S)), True)
    compiled, python = run_twice(attention_kernels.attention_forward_jit, forward_args, (8, 9, 10))
    for a, b in zip(compiled, python):
        np.testing.assert_array_equal(a, b)
    out, lse = compiled[0], compiled[1]
    dout = rng.standard_normal(q.shape)

    def backward_args():
        return (0, B * H, dout, q_strided, k, v, out, lse, 0.5, causal, padding,
                np.zeros_like(q), np.zeros_like(k), np.zeros_like(v))
    compiled, python = run_twice(attention_kernels.attention_backward_jit, backward_args, (11, 12, 13))
    for a, b in zip(compiled, python):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_bitwise_bias_activation(activation, rng):
    pre = rng.standard_normal((5, 70))
    bias = rng.standard_normal(70)
    dhidden = rng.standard_normal((5, 70))
    code = ffn_kernels.activation_code(activation)
    compiled, python = run_twice(ffn_kernels.bias_act_forward_jit,
                                 lambda: (0, 5, pre.copy(), bias, code, np.zeros_like(pre)), (2, 5))
    for a, b in zip(compiled, python):
        np.testing.assert_array_equal(a, b)
    slope = compiled[0]                                 # act'(pre + bias), left where pre was
    compiled, python = run_twice(ffn_kernels.bias_act_backward_jit,
                                 lambda: (0, 1, dhidden, slope, np.zeros_like(pre), np.zeros((1, 70))), (4, 5))
    for a, b in zip(compiled, python):
        np.testing.assert_array_equal(a, b)
    dpre, dbias_blocks = compiled
    np.testing.assert_allclose(dbias_blocks[0], dpre.sum(axis=0), rtol=1e-12)   # the block's part of the bias gradient


def test_bitwise_layernorm_and_loss(rng):
    x = rng.standard_normal((70, 40))                   # two blocks of rows: 64 and 6
    gamma, beta = rng.standard_normal(40), rng.standard_normal(40)
    compiled, python = run_twice(layernorm_kernels.layernorm_forward_jit,
                                 lambda: (0, 2, x, gamma, beta, 1e-5, np.zeros_like(x), np.zeros_like(x),
                                          np.zeros((70, 1))), (6, 7, 8))
    for a, b in zip(compiled, python):
        np.testing.assert_array_equal(a, b)
    dy = rng.standard_normal((70, 40))
    compiled, python = run_twice(layernorm_kernels.layernorm_backward_jit,
                                 lambda: (0, 2, dy, x, gamma, np.ones((70, 1)), np.zeros_like(x), np.zeros((2, 40)),
                                          np.zeros((2, 40))), (6, 7, 8))
    for a, b in zip(compiled, python):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(compiled[1][1], (dy[64:] * x[64:]).sum(axis=0), rtol=1e-12)   # dgamma's part of block 1
    np.testing.assert_allclose(compiled[2].sum(axis=0), dy.sum(axis=0), rtol=1e-12)          # dbeta's parts
    logits = rng.standard_normal((6, 11))
    targets = np.array([1, 0, -100, 10, 3, 3])
    row_max = logits.max(axis=1)
    exp_shifted = np.exp(logits - row_max[:, None])
    for smoothing in (0.0, 0.1):                        # two branches of the kernel
        compiled, python = run_twice(loss_kernels.cross_entropy_forward_jit,
                                     lambda: (0, 6, logits, row_max, (logits - row_max[:, None]).sum(axis=1),
                                              exp_shifted.sum(axis=1), targets, -100, smoothing, exp_shifted.copy(),
                                              np.zeros_like(logits), np.zeros(6)), (9, 10, 11))
        for a, b in zip(compiled, python):
            np.testing.assert_array_equal(a, b)


def test_bitwise_matmul(rng):
    a, b = rng.standard_normal((37, 9)), rng.standard_normal((9, 21))
    compiled, python = run_twice(matmul_tiled_jit, lambda: (0, 1, a, b, np.zeros((37, 21))), (4,))
    np.testing.assert_array_equal(compiled[0], python[0])
    assert python_source(matmul_tiled_jit) is matmul_tiled_loops


# --- 2. kernel vs NumPy reference, and caches crossing backends -------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", list(ATTENTION_CASES))
def test_attention_matches_reference(case, dtype, rng):
    q, k, v, causal, mask = attention_inputs(case, rng, dtype)
    out_ref, cache_ref = attention.attention_forward(q, k, v, causal, mask)
    out_ker, cache_ker = attention_kernels.attention_forward(q, k, v, causal, mask)
    assert_close(out_ker, out_ref, dtype)
    assert_close(cache_ker.weights, cache_ref.weights, dtype)
    finite = np.isfinite(cache_ref.lse)
    np.testing.assert_array_equal(np.isfinite(cache_ker.lse), finite)      # -inf exactly where nothing is seen
    assert_close(cache_ker.lse[finite], cache_ref.lse[finite], dtype)
    dout = rng.standard_normal(q.shape).astype(dtype)
    grads_ref = attention.attention_backward(dout, cache_ref)
    no_weights = lambda cache: cache._replace(weights=None)
    for grads in (attention_kernels.attention_backward(dout, cache_ref),      # NumPy cache -> Numba backward
                  attention.attention_backward(dout, cache_ker),              # Numba cache -> NumPy backward
                  attention.attention_backward(dout, no_weights(cache_ker)),  # ... recomputing the weights
                  attention_kernels.attention_backward(dout, no_weights(cache_ker))):
        for grad, grad_ref in zip(grads, grads_ref):
            assert_close(grad, grad_ref, dtype)


def test_attention_without_weights_keeps_none_and_same_output(rng):
    q, k, v, causal, mask = attention_inputs("causal with padding", rng)
    out_with, _ = attention_kernels.attention_forward(q, k, v, causal, mask, need_weights=True)
    out_without, cache = attention_kernels.attention_forward(q, k, v, causal, mask, need_weights=False)
    assert cache.weights is None
    np.testing.assert_array_equal(out_with, out_without)
    again, _ = attention_kernels.attention_forward(q, k, v, causal, mask, need_weights=False)
    np.testing.assert_array_equal(again, out_without)                      # same inputs: same bits


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_ffn_matches_reference(activation, dtype, rng):
    x = rng.standard_normal((2, 70, 6)).astype(dtype)   # 140 rows: three blocks of the bias-gradient sum, one partial
    w1, b1 = rng.standard_normal((6, 13)).astype(dtype), rng.standard_normal(13).astype(dtype)
    w2, b2 = rng.standard_normal((13, 6)).astype(dtype), rng.standard_normal(6).astype(dtype)
    act_forward, act_backward = {
        "relu": (activations.relu_forward, activations.relu_backward),
        "gelu": (lambda z: activations.gelu_forward(z, "none"), activations.gelu_backward),
        "gelu_tanh": (lambda z: activations.gelu_forward(z, "tanh"), activations.gelu_backward)}[activation]
    pre, cache1 = linear.linear_forward(x, w1, b1)
    hidden, cache_act = act_forward(pre)
    out_ref, cache2 = linear.linear_forward(hidden, w2, b2)
    out_ker, cache_ker = ffn_kernels.ffn_forward(x, w1, b1, w2, b2, activation)
    assert_close(out_ker, out_ref, dtype)
    dout = rng.standard_normal(out_ref.shape).astype(dtype)
    dhidden, dw2, db2 = linear.linear_backward(dout, cache2)
    dx, dw1, db1 = linear.linear_backward(act_backward(dhidden, cache_act), cache1)
    for grad, grad_ref in zip(ffn_kernels.ffn_backward(dout, cache_ker), (dx, dw1, db1, dw2, db2)):
        assert_close(grad, grad_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_reference_and_caches_cross(bias, dtype, rng):
    x = rng.standard_normal((3, 5, 6)).astype(dtype)
    x_strided = x.transpose(1, 0, 2).copy().transpose(1, 0, 2)   # not contiguous, like merged heads can be
    weight = rng.standard_normal((6, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype) if bias else None
    for x_in in (x, x_strided):
        y_ref, cache_ref = linear.linear_forward(x_in, weight, b)
        y_ker, cache_ker = linear_kernels.linear_forward(x_in, weight, b)
        assert y_ker.shape == y_ref.shape
        assert_close(y_ker, y_ref, dtype)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        grads_ref = linear.linear_backward(dy, cache_ref)
        for grads in (linear_kernels.linear_backward(dy, cache_ref), linear.linear_backward(dy, cache_ker)):
            assert (grads[2] is None) == (not bias)
            for grad, grad_ref in zip(grads, grads_ref):
                if grad_ref is not None:
                    assert grad.shape == grad_ref.shape
                    assert_close(grad, grad_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_projections_equal_separate_linear_layers(dtype, rng):
    x = rng.standard_normal((2, 5, 6)).astype(dtype)
    params = [(rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)),
              (rng.standard_normal((6, 3)).astype(dtype), None),                 # one layer without a bias
              (rng.standard_normal((6, 4)).astype(dtype), rng.standard_normal(4).astype(dtype))]
    outputs, cache = linear_kernels.linear_many_forward(x, params)
    douts = [rng.standard_normal(out.shape).astype(dtype) for out in outputs]
    dx, grads = linear_kernels.linear_many_backward(douts, cache)
    dx_ref = np.zeros_like(x)
    for (weight, bias), out, dout, (dweight, dbias) in zip(params, outputs, douts, grads):
        out_ref, cache_ref = linear.linear_forward(x, weight, bias)
        assert_close(out, out_ref, dtype)
        dx_part, dweight_ref, dbias_ref = linear.linear_backward(dout, cache_ref)
        dx_ref += dx_part
        assert_close(dweight, dweight_ref, dtype)
        assert (dbias is None) == (bias is None)
        if bias is not None:
            assert_close(dbias, dbias_ref, dtype)
    assert_close(dx, dx_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding_backward_matches_reference(dtype, rng):
    weight = rng.standard_normal((11, 70)).astype(dtype)       # 70 columns: a full and a partial chunk
    ids = rng.integers(0, 11, (3, 9))
    ids[0, :4] = 5                                               # repeated ids must accumulate
    out_ref, cache_ref = embedding.embedding_forward(ids, weight)
    out_ker, cache_ker = embedding_kernels.embedding_forward(ids, weight)
    np.testing.assert_array_equal(out_ker, out_ref)
    dout = rng.standard_normal(out_ref.shape).astype(dtype)
    dweight = embedding_kernels.embedding_backward(dout, cache_ref)
    assert dweight.dtype == dtype
    assert_close(dweight, embedding.embedding_backward(dout, cache_ker), dtype)
    assert not dweight[np.setdiff1d(np.arange(11), ids)].any()  # ids that never occur get no gradient


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layernorm_matches_reference_and_caches_cross(dtype, rng):
    x = (rng.standard_normal((3, 50, 24)) * 3 + 1).astype(dtype)   # 150 rows: three blocks of dgamma/dbeta sums
    gamma, beta = rng.standard_normal(24).astype(dtype), rng.standard_normal(24).astype(dtype)
    y_ref, cache_ref = layernorm.layernorm_forward(x, gamma, beta)
    y_ker, cache_ker = layernorm_kernels.layernorm_forward(x, gamma, beta)
    assert_close(y_ker, y_ref, dtype)
    for part_ker, part_ref in zip(cache_ker, cache_ref):
        assert part_ker.shape == part_ref.shape
        assert_close(part_ker, part_ref, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    grads_ref = layernorm.layernorm_backward(dy, cache_ref)
    for grads in (layernorm_kernels.layernorm_backward(dy, cache_ref), layernorm.layernorm_backward(dy, cache_ker)):
        for grad, grad_ref in zip(grads, grads_ref):
            assert_close(grad, grad_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("offset", [0.0, 1000.0])        # logits far from 0: the loss comes from sums of z - max z
def test_cross_entropy_matches_reference_and_caches_cross(smoothing, offset, dtype, rng):
    logits = (rng.standard_normal((2, 7, 13)) * 4 + offset).astype(dtype)
    targets = rng.integers(0, 13, (2, 7))
    targets[1, 2:4] = -100                                  # ignored positions
    loss_ref, cache_ref = loss.cross_entropy_forward(logits, targets, -100, smoothing)
    loss_ker, cache_ker = loss_kernels.cross_entropy_forward(logits, targets, -100, smoothing)
    assert_close(loss_ker, loss_ref, dtype)
    assert_close(cache_ker[0], cache_ref[0], dtype)                        # probabilities
    np.testing.assert_array_equal(cache_ker[2], cache_ref[2])              # counted rows
    assert cache_ker[3:] == cache_ref[3:]                                  # N counted, logits shape
    assert_close(cache_ker[1], cache_ref[1], dtype)                        # target distribution
    grads_ref = loss.cross_entropy_backward(1.5, cache_ref)
    for grads in (loss_kernels.cross_entropy_backward(1.5, cache_ref), loss.cross_entropy_backward(1.5, cache_ker)):
        assert_close(grads, grads_ref, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_edge_cases_match_reference(dtype, rng):
    """Every row ignored (loss 0, gradient 0), a vocabulary of one word, one row; and a logit of -inf
    (a ruled-out token), where the reference gives NaN without smoothing (0 * -inf in its sum) and the
    kernel the loss of the same logits with that token's logit merely very negative."""
    cases = [(rng.standard_normal((2, 3, 7)), np.full((2, 3), -100)),    # all ignored
             (rng.standard_normal((2, 3, 1)), np.zeros((2, 3), dtype=np.int64)),   # V = 1: p = 1, loss 0
             (rng.standard_normal((1, 1, 5)), np.array([[4]]))]          # one row
    for logits, targets in cases:
        for smoothing in (0.0, 0.1):
            logits = logits.astype(dtype)
            loss_ref, cache_ref = loss.cross_entropy_forward(logits, targets, -100, smoothing)
            loss_ker, cache_ker = loss_kernels.cross_entropy_forward(logits, targets, -100, smoothing)
            assert_close(loss_ker, loss_ref, dtype)
            assert_close(loss_kernels.cross_entropy_backward(1.0, cache_ker), loss.cross_entropy_backward(1.0, cache_ref),
                         dtype)
    logits = rng.standard_normal((3, 6)).astype(dtype)
    targets = np.array([2, 0, 5])
    ruled_out = logits.copy()
    ruled_out[0, 4] = -np.inf                           # not the target of row 0
    very_negative = logits.copy()
    very_negative[0, 4] = -1e30                         # exp underflows to 0, as exp(-inf) does
    with np.errstate(invalid="ignore"):
        assert np.isnan(loss.cross_entropy_forward(ruled_out, targets)[0])    # the reference: NaN
    loss_ker, cache_ker = loss_kernels.cross_entropy_forward(ruled_out, targets)
    loss_ref, cache_ref = loss.cross_entropy_forward(very_negative, targets)
    assert np.isfinite(loss_ker)
    assert_close(loss_ker, loss_ref, dtype)
    assert_close(cache_ker[0], cache_ref[0], dtype)                        # p = 0 for the ruled-out token
    assert loss_kernels.cross_entropy_forward(ruled_out, targets, -100, 0.1)[0] == np.inf   # q > 0 on it: +inf


def test_teaching_matmul_matches_blas(rng):
    for M, K, N in [(1, 1, 1), (37, 130, 300), (70, 5, 9)]:
        a, b = rng.standard_normal((M, K)), rng.standard_normal((K, N))
        np.testing.assert_allclose(matmul_tiled(a, b), a @ b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="cannot multiply"):
        matmul_tiled(np.ones((2, 3)), np.ones((2, 3)))


# --- 3. gradient checks of the kernels' backward ------------------------------------------------------

@pytest.mark.parametrize("case", ["causal with padding", "cross-attention S > T, causal offset", "one query"])
def test_attention_kernel_gradcheck(case, rng):
    q, k, v, causal, mask = attention_inputs(case, rng)
    forward = lambda q, k, v: attention_kernels.attention_forward(q, k, v, causal, mask, need_weights=False)
    report = check_function(forward, attention_kernels.attention_backward, {"q": q, "k": k, "v": v}, rng)
    assert_gradcheck(report, where=f"attention kernel {case}")


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_ffn_kernel_gradcheck(activation, rng):
    inputs = {"x": rng.standard_normal((2, 3, 4)), "w1": rng.standard_normal((4, 9)),
              "b1": rng.standard_normal(9), "w2": rng.standard_normal((9, 4)), "b2": rng.standard_normal(4)}
    forward = lambda x, w1, b1, w2, b2: ffn_kernels.ffn_forward(x, w1, b1, w2, b2, activation)
    assert_gradcheck(check_function(forward, ffn_kernels.ffn_backward, inputs, rng), where=f"ffn kernel {activation}")


def test_linear_kernel_gradcheck(rng):
    inputs = {"x": rng.standard_normal((2, 3, 4)), "weight": rng.standard_normal((4, 5)), "bias": rng.standard_normal(5)}
    report = check_function(linear_kernels.linear_forward, linear_kernels.linear_backward, inputs, rng)
    assert_gradcheck(report, where="linear (fast path)")


def test_fused_projections_gradcheck(rng):
    inputs = {"x": rng.standard_normal((2, 3, 4)), "w_q": rng.standard_normal((4, 3)), "b_q": rng.standard_normal(3),
              "w_k": rng.standard_normal((4, 3)), "b_k": rng.standard_normal(3)}

    def forward(x, w_q, b_q, w_k, b_k):
        (q, k), cache = linear_kernels.linear_many_forward(x, [(w_q, b_q), (w_k, b_k)])
        return np.concatenate([q, k], axis=-1), cache        # one output for the checker: [q | k]

    def backward(dout, cache):
        dx, ((dw_q, db_q), (dw_k, db_k)) = linear_kernels.linear_many_backward([dout[..., :3], dout[..., 3:]], cache)
        return dx, dw_q, db_q, dw_k, db_k
    assert_gradcheck(check_function(forward, backward, inputs, rng), where="fused q/k projections")


def test_embedding_kernel_gradcheck(rng):
    ids = np.array([[1, 4, 1], [0, 4, 4]])
    forward = lambda weight: embedding_kernels.embedding_forward(ids, weight)
    report = check_function(forward, embedding_kernels.embedding_backward, {"weight": rng.standard_normal((6, 3))}, rng)
    assert_gradcheck(report, where="embedding kernel")


def test_layernorm_and_loss_kernel_gradcheck(rng):
    inputs = {"x": rng.standard_normal((2, 35, 7)), "gamma": 1 + 0.3 * rng.standard_normal(7),   # 70 rows: two blocks
              "beta": rng.standard_normal(7)}
    report = check_function(layernorm_kernels.layernorm_forward, layernorm_kernels.layernorm_backward, inputs, rng)
    assert_gradcheck(report, where="layernorm kernel")
    targets = np.array([[1, 4, -100], [0, 2, 2]])
    forward = lambda logits: loss_kernels.cross_entropy_forward(logits, targets, -100, 0.1)
    report = check_function(forward, loss_kernels.cross_entropy_backward, {"logits": rng.standard_normal((2, 3, 5))}, rng)
    assert_gradcheck(report, where="cross-entropy kernel")


# --- 4. the switch, the models, and a training run on both backends -----------------------------------

def test_backend_switch():
    start = backend.get_backend()
    with backend.use_backend("numpy"):
        assert backend.get_backend() == "numpy"
        assert backend.dispatch(attention.attention_forward) is attention.attention_forward
        with backend.use_backend("numba"):
            assert backend.dispatch(attention.attention_forward) is attention_kernels.attention_forward
            assert backend.dispatch(layernorm.layernorm_backward) is layernorm_kernels.layernorm_backward
        assert backend.get_backend() == "numpy"
    assert backend.get_backend() == start
    with pytest.raises(ValueError, match="'torch'"):
        backend.set_backend("torch")


def test_backend_environment_variable():
    code = "from numpy_transformer import backend; print(backend.get_backend())"
    for name in ("numpy", "numba"):
        env = dict(os.environ, NUMPY_TRANSFORMER_BACKEND=name)
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert result.stdout.strip() == name


def tiny_gpt(dtype="float64", activation="gelu_tanh"):
    config = GPTConfig(vocab_size=11, max_len=9, width=12, num_heads=3, num_layers=2, activation=activation,
                       dtype=dtype, seed=3)
    return GPT(config)


def test_models_return_attention_weights_on_either_backend(backend_name, rng):
    model = tiny_gpt()
    ids = rng.integers(0, 11, (2, 9))
    model.forward(ids)
    maps = model.attention_maps()
    assert all(m.shape == (2, 3, 9, 9) for m in maps)
    np.testing.assert_allclose(maps[0].sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(np.triu(maps[0][0, 0], 1), 0)            # causal
    keep_attention_weights(model, False)
    model.forward(ids)
    assert all(m is None for m in model.attention_maps())


def sgd_loss_curve(steps=4, lr=0.3, activation="gelu_tanh"):
    """A few plain SGD steps of a tiny float64 GPT on fixed data; the loss after each."""
    model = tiny_gpt(activation=activation)
    keep_attention_weights(model, False)
    data = np.random.default_rng(7).integers(0, 11, (3, 10))
    ids, targets = data[:, :-1], data[:, 1:]
    losses = []
    for _ in range(steps):
        model.zero_grad()
        _, value = model.forward(ids, targets)
        model.backward()
        for name, param in model.parameters().items():
            param -= lr * model.grads()[name]
        losses.append(float(value))
    return np.array(losses)


@pytest.mark.parametrize("activation", ["gelu_tanh", "relu"])
def test_training_loss_curve_same_on_both_backends(activation):
    with backend.use_backend("numpy"):
        reference = sgd_loss_curve(activation=activation)
    with backend.use_backend("numba"):
        kernels = sgd_loss_curve(activation=activation)
        again = sgd_loss_curve(activation=activation)
    assert reference[-1] < reference[0]                                    # it does learn
    np.testing.assert_allclose(kernels, reference, rtol=FLOAT64_RTOL)
    np.testing.assert_array_equal(again, kernels)                          # same seed, same bits


def test_float32_stays_float32_on_both_backends(backend_name, rng):
    model = tiny_gpt("float32")
    ids = rng.integers(0, 11, (2, 9))
    logits, value = model.forward(ids, ids)
    model.backward()
    assert logits.dtype == np.float32 and np.asarray(value).dtype == np.float32
    assert all(g.dtype == np.float32 for g in model.grads().values())


def test_kernels_reject_parameters_of_the_wrong_shape(rng):
    """The loops index gamma, beta and the bias by column, with no bounds checks: a wrong shape must be a
    ValueError naming the shapes, not a read past the end of an array."""
    x = rng.standard_normal((2, 3, 8))
    with pytest.raises(ValueError, match=r"gamma \(7,\) and beta \(8,\) must both be \(8,\)"):
        layernorm_kernels.layernorm_forward(x, np.ones(7), np.zeros(8))
    with pytest.raises(ValueError, match=r"bias \(5,\) must be \(6,\)"):
        ffn_kernels.bias_act_forward(rng.standard_normal((4, 6)), np.zeros(5), "relu")
    param = rng.standard_normal(6)                      # a gradient of another shape: NumPy's way, NumPy's error
    assert optim_kernels.adam_update(param, np.ones(5), np.zeros(6), np.zeros(6), 0.1, 0.9, 0.99, 1e-8, 1, 0.0,
                                     True) is False


# --- the optimiser's update -------------------------------------------------------------------------

@pytest.mark.parametrize("weight_decay, decoupled", [(0.0, True), (0.1, True), (0.1, False)])
def test_bitwise_adam_update(weight_decay, decoupled, rng):
    param, grad = rng.standard_normal(37), rng.standard_normal(37)
    m, v = rng.standard_normal(37), rng.random(37)

    bounds, decays = np.array([0, 10, 37]), np.array([True, False])   # two parameters: one decays, one does not

    def args():
        return (0, 1, bounds, decays, param.copy(), grad, m.copy(), v.copy(), 0.01, 0.9, 0.99, 1e-8, 0.19, 0.0199,
                weight_decay, decoupled)
    compiled, python = run_twice(optim_kernels.adam_update_jit, args, (4, 6, 7))
    for a, b in zip(compiled, python):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_adam_over_one_buffer_equals_parameter_by_parameter(threads, rng):
    """Parameters one after another in one buffer, updated chunk by chunk (CHUNK entries; the threads share
    the chunks): a parameter that spans chunks, one of no entries, decaying and not, all give the bits of
    updating each parameter on its own."""
    chunk = optim_kernels.CHUNK
    bounds = np.array([0, 100, chunk + 16, chunk + 16, 2 * chunk + 600, 14 * chunk + 7])   # enough for 2 threads
    decays = np.array([True, False, True, True, False])
    n = bounds[-1]
    param, grad, m, v = rng.standard_normal(n), rng.standard_normal(n), rng.standard_normal(n), rng.random(n)
    expected = [param.copy(), m.copy(), v.copy()]
    for i, decay in enumerate(decays):
        part = slice(bounds[i], bounds[i + 1])
        optim_kernels.adam_update(expected[0][part], grad[part], expected[1][part], expected[2][part], 0.01, 0.9,
                                  0.99, 1e-8, 3, 0.1 if decay else 0.0, True)
    previous = threads_module.get_num_threads()
    threads_module.set_num_threads(threads)
    try:
        optim_kernels.adam_update_segments(param, grad, m, v, bounds, decays, 0.01, 0.9, 0.99, 1e-8, 3, 0.1, True)
    finally:
        threads_module.set_num_threads(previous)
    for got, want in zip((param, m, v), expected):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_add_scaled_equals_numpys_two_steps_bit_for_bit(dtype, rng):
    """parallel.py adds each shard's gradient as `g *= w; G += g` on NumPy and with add_scaled on Numba:
    the same bits, and the shard's own gradient is left as it was."""
    target, source = rng.standard_normal((3, 70)).astype(dtype), rng.standard_normal((3, 70)).astype(dtype)
    expected, scaled = target.copy(), source.copy()
    scaled *= dtype(0.37)
    expected += scaled
    before = source.copy()
    assert optim_kernels.add_scaled(target, source, 0.37)
    np.testing.assert_array_equal(target, expected)
    np.testing.assert_array_equal(source, before)
    assert not optim_kernels.add_scaled(target, source[:, :5], 0.5)          # another shape: NumPy's way
    assert not optim_kernels.add_scaled(target, source.astype(np.float16), 0.5)
    np.testing.assert_array_equal(target, expected)                         # ... and nothing done


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", [AdamW, Adam])
def test_adam_kernel_matches_the_reference_bit_for_bit(optimizer, dtype):
    """Three steps of the optimiser on a small model, with weight decay (so both the decaying matrices
    and the non-decaying biases and norms are covered): the same bits on both backends."""
    params = {}
    for name in ("numpy", "numba"):
        with backend.use_backend(name):
            model = tiny_gpt(dtype)
            opt = optimizer(model, lr=1e-2, weight_decay=0.1)
            grads_rng = np.random.default_rng(5)
            for _ in range(3):
                for grad in model.grads().values():
                    grad[...] = grads_rng.standard_normal(grad.shape)
                opt.step()
            params[name] = {key: value.copy() for key, value in model.parameters().items()}
            moments = {key: value.copy() for key, value in opt.state_dict().items()}
            params[name].update({f"state {key}": value for key, value in moments.items()})
    for key, value in params["numpy"].items():
        np.testing.assert_array_equal(params["numba"][key], value, err_msg=key)


def test_adam_kernel_declines_strided_arrays(rng):
    """A parameter that is not one contiguous block is left to NumPy's update (returns False, untouched)."""
    param = rng.standard_normal((4, 6))[:, ::2]
    before = param.copy()
    grad, m, v = np.ones_like(param), np.zeros_like(param), np.zeros_like(param)
    assert optim_kernels.adam_update(param, grad, m, v, 0.1, 0.9, 0.99, 1e-8, 1, 0.0, True) is False
    np.testing.assert_array_equal(param, before)


# --- 5. the same tests with the kernels as plain Python ----------------------------------------------

@pytest.mark.skipif(JIT_DISABLED, reason="already running with NUMBA_DISABLE_JIT=1")
def test_kernel_sources_run_as_python():
    """CI also runs the kernel tests with NUMBA_DISABLE_JIT=1: the kernels as Python a debugger can step."""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subset = "not sources_run_as_python"                  # the whole file, as Python
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/test_kernels.py", "-q", "-x", "-p", "no:cacheprovider",
                             "-k", subset], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
