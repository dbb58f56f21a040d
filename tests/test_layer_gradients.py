"""Every pure backward function, checked against central differences in float64."""
import numpy as np
import pytest

from conftest import assert_gradcheck
from numpy_transformer.gradcheck import check_function
from numpy_transformer.layers.activations import (gelu_backward, gelu_forward, relu_backward, relu_forward,
                                                  tanh_backward, tanh_forward)
from numpy_transformer.layers.attention import attention_backward, attention_forward
from numpy_transformer.layers.dropout import dropout_backward, dropout_forward
from numpy_transformer.layers.embedding import embedding_backward, embedding_forward
from numpy_transformer.layers.layernorm import layernorm_backward, layernorm_forward
from numpy_transformer.layers.linear import linear_backward, linear_forward
from numpy_transformer.layers.loss import cross_entropy_backward, cross_entropy_forward
from numpy_transformer.layers.positional import add_positions_backward, add_positions_forward
from numpy_transformer.layers.softmax import softmax_backward, softmax_forward


@pytest.mark.ex01
def test_linear_backward(rng):
    inputs = {"x": rng.standard_normal((2, 3, 4)), "weight": rng.standard_normal((4, 5)),
              "bias": rng.standard_normal(5)}
    assert_gradcheck(check_function(linear_forward, linear_backward, inputs, rng), where="linear")


@pytest.mark.ex01
def test_linear_backward_without_bias(rng):
    forward = lambda x, w: linear_forward(x, w, None)
    backward = lambda dy, cache: linear_backward(dy, cache)[:2]
    inputs = {"x": rng.standard_normal((3, 4)), "weight": rng.standard_normal((4, 2))}
    assert_gradcheck(check_function(forward, backward, inputs, rng), where="linear no bias")


@pytest.mark.ex05
def test_embedding_backward_accumulates_repeated_ids(rng):
    ids = np.array([[1, 3, 1], [0, 1, 3]])              # id 1 three times, 3 twice, 2 never
    forward = lambda w: embedding_forward(ids, w)
    inputs = {"weight": rng.standard_normal((5, 4))}
    assert_gradcheck(check_function(forward, embedding_backward, inputs, rng), where="embedding")
    dout = rng.standard_normal((2, 3, 4))
    dweight = embedding_backward(dout, embedding_forward(ids, inputs["weight"])[1])
    np.testing.assert_allclose(dweight[1], dout[0, 0] + dout[0, 2] + dout[1, 1])
    np.testing.assert_array_equal(dweight[2], 0)


@pytest.mark.parametrize("offset", [0, 2])
def test_positions_backward(rng, offset):
    forward = lambda x, table: add_positions_forward(x, table, offset)
    inputs = {"x": rng.standard_normal((2, 3, 4)), "table": rng.standard_normal((6, 4))}
    assert_gradcheck(check_function(forward, add_positions_backward, inputs, rng), where="positions")


@pytest.mark.ex07
def test_layernorm_backward(rng):
    inputs = {"x": rng.standard_normal((2, 3, 6)) * 3 + 1, "gamma": 1 + 0.3 * rng.standard_normal(6),
              "beta": rng.standard_normal(6)}
    assert_gradcheck(check_function(layernorm_forward, layernorm_backward, inputs, rng), where="layernorm")


@pytest.mark.ex02
def test_relu_backward(rng):
    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 1e-3] = 0.5                            # keep away from the kink at 0
    assert_gradcheck(check_function(relu_forward, relu_backward, {"x": x}, rng), where="relu")


@pytest.mark.ex02
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_backward(rng, approximate):
    forward = lambda x: gelu_forward(x, approximate)
    inputs = {"x": rng.standard_normal((3, 7)) * 2}
    assert_gradcheck(check_function(forward, gelu_backward, inputs, rng), where=f"gelu {approximate}")


def test_tanh_backward(rng):
    inputs = {"x": rng.standard_normal((3, 7))}
    assert_gradcheck(check_function(tanh_forward, tanh_backward, inputs, rng), where="tanh")


def test_dropout_backward_uses_the_forward_mask(rng):
    seed = 7                                           # the same mask on every forward of the check
    forward = lambda x: dropout_forward(x, 0.4, np.random.default_rng(seed), training=True)
    inputs = {"x": rng.standard_normal((4, 5))}
    assert_gradcheck(check_function(forward, dropout_backward, inputs, rng), where="dropout")


@pytest.mark.ex03
def test_softmax_backward(rng):
    inputs = {"x": rng.standard_normal((2, 3, 5)) * 2}
    assert_gradcheck(check_function(softmax_forward, softmax_backward, inputs, rng), where="softmax")


@pytest.mark.ex03
def test_softmax_backward_with_mask(rng):
    mask = np.array([False, True, False, False, True])
    forward = lambda x: softmax_forward(x, mask)
    inputs = {"x": rng.standard_normal((3, 5))}
    assert_gradcheck(check_function(forward, softmax_backward, inputs, rng), where="softmax masked")


@pytest.mark.ex08
@pytest.mark.ex09
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("need_weights", [True, False])
def test_attention_backward(rng, causal, padded, need_weights):
    B, H, T, D = 2, 2, 4, 3
    padding = None
    if padded:
        padding = np.zeros((B, T), dtype=bool)
        padding[1, 2:] = True                           # the second sequence has two padding keys
    forward = lambda q, k, v: attention_forward(q, k, v, causal, padding, need_weights)
    inputs = {"q": rng.standard_normal((B, H, T, D)), "k": rng.standard_normal((B, H, T, D)),
              "v": rng.standard_normal((B, H, T, D))}
    report = check_function(forward, attention_backward, inputs, rng)
    assert_gradcheck(report, where=f"attention causal={causal} padded={padded}")


@pytest.mark.ex08
@pytest.mark.ex09
def test_cross_attention_backward_with_longer_source(rng):
    B, H, T, S, D = 2, 3, 2, 5, 4
    padding = np.zeros((B, S), dtype=bool)
    padding[0, 3:] = True
    forward = lambda q, k, v: attention_forward(q, k, v, False, padding)
    inputs = {"q": rng.standard_normal((B, H, T, D)), "k": rng.standard_normal((B, H, S, D)),
              "v": rng.standard_normal((B, H, S, D))}
    assert_gradcheck(check_function(forward, attention_backward, inputs, rng), where="cross-attention")


@pytest.mark.ex04
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_backward(rng, label_smoothing):
    targets = np.array([[1, 4, -100], [0, 2, 3]])       # one ignored position
    forward = lambda logits: cross_entropy_forward(logits, targets, -100, label_smoothing)
    backward = lambda dloss, cache: cross_entropy_backward(dloss, cache)
    inputs = {"logits": rng.standard_normal((2, 3, 5)) * 2}
    assert_gradcheck(check_function(forward, backward, inputs, rng), where="cross-entropy")
    loss, cache = forward(inputs["logits"])
    assert np.all(cross_entropy_backward(1.0, cache)[0, 2] == 0), "ignored position got a gradient"
