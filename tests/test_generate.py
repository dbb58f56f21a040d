"""Generation: the KV cache gives the same logits as recomputing everything; sampling rules behave."""
import numpy as np
import pytest

from numpy_transformer.generate import generate, generate_seq2seq, next_token_probs, sample_next
from numpy_transformer.models import GPT, GPTConfig, Transformer, TransformerConfig


@pytest.mark.ex14
def test_gpt_kv_cache_equals_full_recomputation():
    model = GPT(GPTConfig(vocab_size=17, max_len=16, width=32, num_heads=4, num_layers=2, dtype="float64")).eval()
    ids = np.random.default_rng(0).integers(0, 17, (3, 12))
    full, _ = model.forward(ids)                                       # (B, T, V) all at once
    cache = model.new_kv_cache()
    pieces = [model.forward(ids[:, :5], kv_cache=cache)[0]]            # the prompt in one go
    pieces += [model.forward(ids[:, t:t + 1], kv_cache=cache)[0] for t in range(5, 12)]   # then one by one
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-12, atol=1e-12)
    greedy_cached = generate(model, ids[:, :4], 10, temperature=0)
    greedy_full = generate(model, ids[:, :4], 10, temperature=0, use_cache=False)
    np.testing.assert_array_equal(greedy_cached, greedy_full)


def test_transformer_decoder_kv_cache_equals_full_recomputation():
    config = TransformerConfig(src_vocab_size=16, trg_vocab_size=16, max_len=16, width=32, num_heads=4,
                               num_layers=2, pad_id=13, dtype="float64")
    model = Transformer(config).eval()
    rng = np.random.default_rng(1)
    src = rng.integers(0, 13, (3, 7))
    src[0, -2:] = 13                                                   # padded source keys stay masked
    trg = rng.integers(0, 13, (3, 9))
    full, _ = model.forward(src, trg)                                  # (B, T, V)
    memory, src_padding = model.encode(src)
    cache = model.new_kv_cache()
    pieces = [model.decode(trg[:, :3], memory, src_padding, kv_cache=cache)]
    pieces += [model.decode(trg[:, t:t + 1], memory, src_padding, kv_cache=cache) for t in range(3, 9)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-12, atol=1e-12)
    cached = generate_seq2seq(model, src, bos_id=14, eos_id=15, max_new_tokens=10)
    recomputed = generate_seq2seq(model, src, bos_id=14, eos_id=15, max_new_tokens=10, use_cache=False)
    np.testing.assert_array_equal(cached, recomputed)


def test_float32_model_generates_with_cache():
    model = GPT(GPTConfig(vocab_size=11, max_len=8, width=16, num_heads=2, num_layers=1))
    out = generate(model, [1, 2, 3], 20, rng=np.random.default_rng(0))  # longer than max_len: context slides
    assert out.shape == (1, 23) and out.max() < 11


@pytest.mark.ex13
def test_greedy_topk_topp_distributions():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    np.testing.assert_allclose(next_token_probs(logits, temperature=0), [[1, 0, 0, 0]])
    np.testing.assert_allclose(next_token_probs(logits), [[0.5, 0.3, 0.15, 0.05]])
    np.testing.assert_allclose(next_token_probs(logits, top_k=2), [[0.625, 0.375, 0, 0]])
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.7), [[0.625, 0.375, 0, 0]])   # 0.5 < 0.7 <= 0.8
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.5), [[1, 0, 0, 0]])
    cold = next_token_probs(logits, temperature=0.5)                   # p^2, renormalised
    np.testing.assert_allclose(cold, np.array([[0.25, 0.09, 0.0225, 0.0025]]) / 0.365)


@pytest.mark.ex13
def test_sampling_frequencies_follow_the_distribution():
    logits = np.log(np.tile([[0.5, 0.3, 0.15, 0.05]], (20000, 1)))
    draws = sample_next(logits, np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, [0.5, 0.3, 0.15, 0.05], atol=0.015)
    top2 = sample_next(logits, np.random.default_rng(0), top_k=2)
    assert set(np.unique(top2)) == {0, 1}


@pytest.mark.parametrize("kwargs, message", [
    (dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p")])
def test_bad_sampling_settings_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        next_token_probs(np.zeros((1, 4)), **kwargs)


def test_sampling_needs_a_generator():
    with pytest.raises(ValueError, match="rng"):
        sample_next(np.zeros((1, 4)), rng=None, temperature=1.0)
