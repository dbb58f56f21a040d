"""Properties that hold whatever the seed: masks, invariances, dtypes, accumulation, tying, errors."""
import math

import numpy as np
import pytest

from numpy_transformer.layers import Linear, softmax_forward
from numpy_transformer.layers.attention import attention_forward
from numpy_transformer.models import GPT, Encoder, EncoderConfig, GPTConfig, Transformer, TransformerConfig


def tiny_gpt(dtype="float64", **overrides):
    config = dict(vocab_size=13, max_len=10, width=8, num_heads=2, num_layers=2, dtype=dtype)
    config.update(overrides)
    return GPT(GPTConfig(**config))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_causal_mask_future_tokens_change_no_earlier_output(seed):
    rng = np.random.default_rng(seed)
    model = tiny_gpt()
    ids = rng.integers(0, 13, (2, 8))
    logits, _ = model.forward(ids)
    changed = ids.copy()
    changed[:, 5:] = (changed[:, 5:] + 1 + rng.integers(0, 11, (2, 3))) % 13     # every future token differs
    logits_changed, _ = model.forward(changed)
    np.testing.assert_array_equal(logits[:, :5], logits_changed[:, :5])
    assert not np.allclose(logits[:, 5:], logits_changed[:, 5:])


def test_padded_keys_change_nothing(rng):
    model = Encoder(EncoderConfig(vocab_size=13, max_len=10, width=8, num_heads=2, num_layers=2, dtype="float64"))
    ids = rng.integers(0, 13, (1, 7))
    padding = np.array([[False] * 4 + [True] * 3])
    hidden, _ = model.forward(ids, padding_mask=padding, head="hidden")
    other = ids.copy()
    other[0, 4:] = (other[0, 4:] + 5) % 13              # different tokens in the padded slots
    hidden_other, _ = model.forward(other, padding_mask=padding, head="hidden")
    np.testing.assert_allclose(hidden[:, :4], hidden_other[:, :4], rtol=0, atol=1e-13)
    unpadded, _ = model.forward(ids[:, :4], head="hidden")  # and equal to the sequence without padding
    np.testing.assert_allclose(hidden[:, :4], unpadded, rtol=0, atol=1e-12)


@pytest.mark.ex08
def test_attention_weights_zero_on_masked_keys_and_rows_sum_to_one(rng):
    q, k, v = (rng.standard_normal((2, 3, 5, 4)) for _ in range(3))
    padding = np.zeros((2, 5), dtype=bool)
    padding[0, 3:] = True
    _, cache = attention_forward(q, k, v, causal=True, key_padding_mask=padding)
    weights = cache.weights
    assert weights.shape == (2, 3, 5, 5)
    assert np.all(weights[..., np.triu_indices(5, 1)[0], np.triu_indices(5, 1)[1]] == 0)   # no future key
    assert np.all(weights[0, :, :, 3:] == 0)                                                  # no padding key
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)


@pytest.mark.ex03
def test_softmax_shift_invariance(rng):
    x = rng.standard_normal((4, 6))
    p, _ = softmax_forward(x)
    p_shifted, _ = softmax_forward(x + rng.standard_normal((4, 1)) * 100)
    np.testing.assert_allclose(p, p_shifted, rtol=1e-10)
    p_huge, _ = softmax_forward(x + 1e4)                 # would overflow without the max subtraction
    assert np.all(np.isfinite(p_huge))
    np.testing.assert_allclose(p_huge, p, rtol=1e-9)


def test_float32_in_float32_out(rng):
    model = tiny_gpt(dtype="float32")
    ids = rng.integers(0, 13, (2, 6))
    logits, loss = model.forward(ids, ids)
    assert logits.dtype == np.float32 and np.asarray(loss).dtype == np.float32
    model.backward()
    for name, grad in model.grads().items():
        assert grad.dtype == np.float32, name
    for block in model.attention_maps():
        assert block.dtype == np.float32
    seq = Transformer(TransformerConfig(src_vocab_size=7, trg_vocab_size=7, width=8, num_heads=2, num_layers=1))
    out, loss = seq.forward(rng.integers(1, 7, (2, 4)), rng.integers(1, 7, (2, 3)), rng.integers(1, 7, (2, 3)))
    assert out.dtype == np.float32 and np.asarray(loss).dtype == np.float32


@pytest.mark.parametrize("family", ["gpt", "encoder", "transformer"])
def test_loss_at_initialisation_is_close_to_ln_vocab(rng, family):
    V = 50
    if family == "gpt":
        model = GPT(GPTConfig(vocab_size=V, max_len=16, width=32, num_heads=4, num_layers=2))
        _, loss = model.forward(rng.integers(0, V, (4, 16)), rng.integers(0, V, (4, 16)))
    elif family == "encoder":
        model = Encoder(EncoderConfig(vocab_size=V, max_len=16, width=32, num_heads=4, num_layers=2))
        _, loss = model.forward(rng.integers(0, V, (4, 16)), rng.integers(0, V, (4, 16)))
    else:
        model = Transformer(TransformerConfig(src_vocab_size=V, trg_vocab_size=V, width=32, num_heads=4))
        _, loss = model.forward(rng.integers(1, V, (4, 16)), rng.integers(1, V, (4, 16)), rng.integers(1, V, (4, 16)))
    assert abs(float(loss) - math.log(V)) < 0.15 * math.log(V), f"initial loss {loss} vs ln(V) {math.log(V):.3f}"


def test_weight_tying_gives_the_embedding_both_gradient_paths(rng):
    model = tiny_gpt(tie_weights=True)
    ids = rng.integers(0, 13, (2, 5))
    model.forward(ids, ids)
    model.backward()
    total = model.embed.tokens.dparams["weight"].copy()
    # the output projection's part alone: dlogits^T x, recomputed from a fresh forward
    model.zero_grad()
    model.forward(ids, ids)
    dlogits = model.loss_fn.backward(1.0)
    model.head.backward(dlogits)
    head_part = model.embed.tokens.dparams["weight"].copy()
    model.clear_caches()
    embedding_part = total - head_part
    assert np.abs(head_part).max() > 0 and np.abs(embedding_part).max() > 0
    # the embedding path only touches rows of ids that occurred
    unused_rows = np.setdiff1d(np.arange(13), ids)
    np.testing.assert_allclose(embedding_part[unused_rows], 0, atol=1e-15)
    assert "head.weight" not in model.parameters()


def test_two_backwards_after_two_forwards_accumulate(rng):
    model = tiny_gpt()
    ids = rng.integers(0, 13, (2, 5))
    model.forward(ids, ids)
    model.backward()
    once = {name: grad.copy() for name, grad in model.grads().items()}
    model.forward(ids, ids)
    model.backward()
    for name, grad in model.grads().items():
        np.testing.assert_allclose(grad, 2 * once[name], rtol=1e-12, err_msg=name)
    model.zero_grad()
    assert all(np.all(g == 0) for g in model.grads().values())


def test_backward_without_forward_raises_a_clear_error(rng):
    model = tiny_gpt()
    with pytest.raises(RuntimeError, match="GPT.backward\\(\\) called without a forward"):
        model.backward()
    layer = Linear(3, 2, rng)
    with pytest.raises(RuntimeError, match="Linear.backward\\(\\) called without a forward"):
        layer.backward(np.ones((1, 2), np.float32))
    model.forward(rng.integers(0, 13, (1, 3)), rng.integers(0, 13, (1, 3)))
    model.backward()
    with pytest.raises(RuntimeError, match="without a forward"):   # a cache serves one backward only
        model.backward()


def test_parameters_and_grads_are_views_with_dotted_names():
    model = tiny_gpt()
    params, grads = model.parameters(), model.grads()
    assert params.keys() == grads.keys()
    assert "blocks.1.attn.sublayer.query.weight" in params
    params["blocks.0.ffn.sublayer.fc1.bias"][0] = 42.0           # optimisers update in place
    assert model.blocks[0].ffn.sublayer.fc1.params["bias"][0] == 42.0


def test_attention_maps_have_the_documented_shapes(rng):
    model = Transformer(TransformerConfig(src_vocab_size=9, trg_vocab_size=9, width=8, num_heads=2, num_layers=2))
    model.forward(rng.integers(1, 9, (3, 7)), rng.integers(1, 9, (3, 4)))
    maps = model.attention_maps()
    assert [m.shape for m in maps["encoder"]] == [(3, 2, 7, 7)] * 2
    assert [m.shape for m in maps["decoder_self"]] == [(3, 2, 4, 4)] * 2
    assert [m.shape for m in maps["decoder_cross"]] == [(3, 2, 4, 7)] * 2
    gpt = tiny_gpt()
    gpt.forward(rng.integers(0, 13, (2, 6)))
    assert [m.shape for m in gpt.attention_maps()] == [(2, 2, 6, 6)] * 2


@pytest.mark.ex14
def test_kv_cache_decoding_equals_full_recomputation(rng):
    model = tiny_gpt()
    ids = rng.integers(0, 13, (2, 9))
    full, _ = model.forward(ids)
    cache = model.new_kv_cache()
    pieces = [model.forward(ids[:, :4], kv_cache=cache)[0]]
    for t in range(4, 9):
        pieces.append(model.forward(ids[:, t:t + 1], kv_cache=cache)[0])
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-12, atol=1e-12)


def test_dropout_is_identity_in_eval_and_reproducible_in_train(rng):
    model = tiny_gpt(dropout=0.3)
    ids = rng.integers(0, 13, (2, 6))
    train_a, _ = model.forward(ids, rng=np.random.default_rng(5))
    train_b, _ = model.forward(ids, rng=np.random.default_rng(5))
    train_c, _ = model.forward(ids, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(train_a, train_b)
    assert not np.allclose(train_a, train_c)
    model.eval()
    eval_a, _ = model.forward(ids)
    eval_b, _ = model.forward(ids)
    np.testing.assert_array_equal(eval_a, eval_b)
    assert not np.allclose(eval_a, train_a)


@pytest.mark.ex06
def test_sinusoidal_encoding_matches_the_paper_entry_by_entry():
    from numpy_transformer.layers import sinusoidal_encoding
    table = sinusoidal_encoding(20, 6)
    for pos in range(20):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert table[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)


@pytest.mark.ex06
def test_sinusoidal_offset_is_a_rotation_of_each_pair():
    from numpy_transformer.layers import sinusoidal_encoding
    table = sinusoidal_encoding(30, 8)
    k = 5
    for i in range(4):
        omega = 1 / 10000 ** (2 * i / 8)
        rotation = np.array([[math.cos(omega * k), -math.sin(omega * k)], [math.sin(omega * k), math.cos(omega * k)]])
        pairs = table[:25, 2 * i:2 * i + 2]                       # (sin, cos) at pos
        np.testing.assert_allclose(pairs @ rotation, table[k:k + 25, 2 * i:2 * i + 2], atol=1e-12)


@pytest.mark.ex10
def test_split_heads_takes_column_blocks_and_merge_inverts_it(rng):
    from numpy_transformer.layers import merge_heads, split_heads
    x = rng.standard_normal((2, 5, 12))
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(heads[:, 1], x[:, :, 4:8])    # head 1 = columns 4..7
    np.testing.assert_array_equal(merge_heads(heads), x)
