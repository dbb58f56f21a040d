"""The Layer classes that compose the pure functions: parameters and inputs gradient-checked together."""
import numpy as np
import pytest

from conftest import assert_gradcheck
from numpy_transformer.gradcheck import check_layer, randomize_parameters
from numpy_transformer.layers import (DecoderLayer, EncoderLayer, FeedForward, InputEmbedding, LayerNorm, Linear,
                                      MultiHeadAttention, OutputProjection, Residual)

F64 = np.float64


@pytest.mark.ex10
def test_multihead_self_attention(rng):
    layer = randomize_parameters(MultiHeadAttention(8, 2, rng, F64), rng)
    padding = np.array([[False] * 5, [False, False, False, True, True]])
    report = check_layer(layer, {"x": rng.standard_normal((2, 5, 8))}, rng, causal=True, key_padding_mask=padding)
    assert_gradcheck(report, where="MHA self")


@pytest.mark.ex10
def test_multihead_cross_attention(rng):
    layer = randomize_parameters(MultiHeadAttention(6, 3, rng, F64), rng)
    inputs = {"x": rng.standard_normal((2, 4, 6)), "memory": rng.standard_normal((2, 7, 6))}
    assert_gradcheck(check_layer(layer, inputs, rng), where="MHA cross")


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feed_forward(rng, activation):
    layer = randomize_parameters(FeedForward(6, 10, rng, activation, F64), rng)
    assert_gradcheck(check_layer(layer, {"x": rng.standard_normal((2, 3, 6))}, rng), where=f"FFN {activation}")


@pytest.mark.ex11
@pytest.mark.parametrize("pre_norm", [True, False])
def test_residual_block_both_arrangements(rng, pre_norm):
    inner = Linear(6, 6, rng, dtype=F64)
    block = randomize_parameters(Residual(inner, 6, pre_norm=pre_norm, dtype=F64), rng)
    assert_gradcheck(check_layer(block, {"x": rng.standard_normal((2, 3, 6))}, rng), where=f"residual pre={pre_norm}")


@pytest.mark.parametrize("pre_norm", [True, False])
def test_encoder_layer(rng, pre_norm):
    layer = randomize_parameters(EncoderLayer(8, 2, 12, rng, pre_norm=pre_norm, activation="gelu", dtype=F64), rng)
    padding = np.array([[False] * 4, [False, False, True, True]])
    report = check_layer(layer, {"x": rng.standard_normal((2, 4, 8))}, rng, key_padding_mask=padding)
    assert_gradcheck(report, where=f"encoder layer pre={pre_norm}")


@pytest.mark.parametrize("pre_norm", [True, False])
def test_decoder_layer(rng, pre_norm):
    layer = randomize_parameters(DecoderLayer(8, 2, 12, rng, pre_norm=pre_norm, dtype=F64), rng)
    memory_padding = np.array([[False] * 5, [False, False, False, True, True]])
    inputs = {"y": rng.standard_normal((2, 3, 8)), "memory": rng.standard_normal((2, 5, 8))}
    report = check_layer(layer, inputs, rng, memory_padding_mask=memory_padding)
    assert_gradcheck(report, where=f"decoder layer pre={pre_norm}")


@pytest.mark.ex07
def test_layernorm_shell(rng):
    layer = randomize_parameters(LayerNorm(5, dtype=F64), rng)
    assert_gradcheck(check_layer(layer, {"x": rng.standard_normal((3, 5))}, rng), where="LayerNorm shell")


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_input_embedding(rng, positional):
    layer = InputEmbedding(7, 6, 4, rng, positional=positional, scale_by_sqrt_width=True, type_vocab_size=2,
                           dtype=F64)
    randomize_parameters(layer, rng)
    ids = np.array([[1, 2, 1], [6, 0, 1]])
    types = np.array([[0, 0, 1], [0, 1, 1]])
    report = check_layer(layer, {}, rng, ids=ids, token_type_ids=types)
    assert_gradcheck(report, where=f"input embedding {positional}")


@pytest.mark.parametrize("tied", [True, False])
def test_output_projection(rng, tied):
    from numpy_transformer.layers import Embedding
    embedding = Embedding(7, 4, rng, F64)
    projection = OutputProjection(4, 7, rng, tie_to=embedding if tied else None, dtype=F64)
    randomize_parameters(embedding, rng)
    randomize_parameters(projection, rng)
    x = rng.standard_normal((2, 3, 4))
    out = projection.forward(x)
    dlogits = rng.standard_normal(out.shape)
    projection.backward(dlogits)
    expected_dweight = dlogits.reshape(-1, 7).T @ x.reshape(-1, 4)      # (V, C)
    owner = embedding if tied else projection
    np.testing.assert_allclose(owner.dparams["weight"], expected_dweight, rtol=1e-12)
    assert ("weight" in projection.params) == (not tied)
    assert_gradcheck(check_layer(projection, {"x": x}, rng), where=f"output projection tied={tied}")
