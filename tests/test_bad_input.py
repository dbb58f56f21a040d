"""Bad input raises ValueError naming the bad value."""
import numpy as np
import pytest

from numpy_transformer.layers import Dropout, MultiHeadAttention
from numpy_transformer.layers.attention import attention_forward
from numpy_transformer.models import GPT, Encoder, EncoderConfig, GPTConfig, Transformer, TransformerConfig


@pytest.fixture
def gpt():
    return GPT(GPTConfig(vocab_size=10, max_len=6, width=8, num_heads=2, num_layers=1))


def test_token_id_outside_vocabulary(gpt):
    with pytest.raises(ValueError, match="token id 10 outside vocabulary of 10"):
        gpt.forward(np.array([[1, 2, 10]]))
    with pytest.raises(ValueError, match="token id -1 outside vocabulary of 10"):
        gpt.forward(np.array([[1, -1]]))


def test_sequence_longer_than_maximum(gpt):
    with pytest.raises(ValueError, match="sequence length 7 is longer than the maximum length 6"):
        gpt.forward(np.zeros((1, 7), dtype=int))


def test_ids_of_wrong_kind(gpt):
    with pytest.raises(ValueError, match="must be integers, got dtype float64"):
        gpt.forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"shape \(B, T\), got shape \(3,\)"):
        gpt.forward(np.zeros(3, dtype=int))


def test_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="width 10 is not divisible by num_heads 4"):
        GPT(GPTConfig(width=10, num_heads=4))
    with pytest.raises(ValueError, match="width 10 is not divisible by the number of heads 3"):
        MultiHeadAttention(10, 3, np.random.default_rng(0))


def test_mask_of_wrong_shape():
    model = Encoder(EncoderConfig(vocab_size=10, max_len=6, width=8, num_heads=2, num_layers=1))
    with pytest.raises(ValueError, match=r"key_padding_mask has shape \(1, 4\), expected \(B, S\) = \(1, 3\)"):
        model.forward(np.zeros((1, 3), dtype=int), padding_mask=np.zeros((1, 4), dtype=bool))
    q = np.zeros((1, 1, 3, 2))
    with pytest.raises(ValueError, match="must be boolean"):
        attention_forward(q, q, q, key_padding_mask=np.zeros((1, 3)))


def test_targets_of_wrong_shape(gpt):
    with pytest.raises(ValueError, match=r"targets have shape \(1, 2\), expected \(1, 3\)"):
        gpt.forward(np.zeros((1, 3), dtype=int), np.zeros((1, 2), dtype=int))
    with pytest.raises(ValueError, match="target id 12 outside vocabulary of 10"):
        gpt.forward(np.zeros((1, 3), dtype=int), np.array([[1, 12, 3]]))


def test_bad_config_values():
    with pytest.raises(ValueError, match="num_layers must be a positive integer, got 0"):
        GPT(GPTConfig(num_layers=0))
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\), got 1.5"):
        GPT(GPTConfig(dropout=1.5))
    with pytest.raises(ValueError, match="dtype float16 is not supported"):
        GPT(GPTConfig(dtype="float16"))
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        GPT(GPTConfig(activation="swish"))
    with pytest.raises(ValueError, match="positional must be 'learned' or 'sinusoidal', got 'rotary'"):
        GPT(GPTConfig(positional="rotary"))
    with pytest.raises(ValueError, match="src_vocab_size must be a positive integer, got -3"):
        Transformer(TransformerConfig(src_vocab_size=-3))


def test_dropout_in_training_needs_an_rng():
    with pytest.raises(ValueError, match="needs a random generator"):
        Dropout(0.5).forward(np.ones(3))
    with pytest.raises(ValueError, match="dropout probability must be in \\[0, 1\\), got 1.0"):
        Dropout(1.0)


def test_backward_without_targets_needs_dlogits(gpt):
    gpt.forward(np.zeros((1, 3), dtype=int))
    with pytest.raises(ValueError, match="needs dlogits"):
        gpt.backward()


def test_unknown_encoder_head():
    model = Encoder(EncoderConfig(vocab_size=10, max_len=6, width=8, num_heads=2, num_layers=1))
    with pytest.raises(ValueError, match="head must be one of .* got 'qa'"):
        model.forward(np.zeros((1, 3), dtype=int), head="qa")
