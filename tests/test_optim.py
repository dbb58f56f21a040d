"""Optimisers against updates computed by hand, schedule shapes, clipping, the weight-decay mask."""
import math

import numpy as np
import pytest

from numpy_transformer.layers.base import Layer
from numpy_transformer.models import GPT, GPTConfig
from numpy_transformer.optim import SGD, Adam, AdamW, clip_grad_norm, decay_mask, make_optimizer
from numpy_transformer.schedules import cosine, inverse_sqrt, learning_rate


class TwoParams(Layer):
    """A weight matrix and a bias with known values and gradients."""

    def __init__(self):
        super().__init__()
        self.add_param("weight", np.array([[1.0, -2.0], [0.5, 3.0]]))
        self.add_param("bias", np.array([0.1, -0.2]))
        self.dparams["weight"][...] = [[0.2, -0.4], [1.0, 0.0]]
        self.dparams["bias"][...] = [0.5, -1.0]


def test_sgd_momentum_matches_hand_computation():
    model = TwoParams()
    w0, g = model.params["weight"].copy(), model.dparams["weight"].copy()
    opt = SGD(model, lr=0.1, momentum=0.9, weight_decay=0.0)
    opt.step()                                   # v1 = g, p1 = p0 - 0.1 g
    np.testing.assert_allclose(model.params["weight"], w0 - 0.1 * g)
    opt.step()                                   # v2 = 0.9 g + g, p2 = p1 - 0.1 * 1.9 g
    np.testing.assert_allclose(model.params["weight"], w0 - 0.1 * g - 0.1 * 1.9 * g)


@pytest.mark.ex12
def test_adam_first_steps_match_hand_computation():
    model = TwoParams()
    p0, g = model.params["bias"].copy(), model.dparams["bias"].copy()
    opt = Adam(model, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    opt.step()
    # step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) = lr * sign(g)
    np.testing.assert_allclose(model.params["bias"], p0 - 0.01 * g / (np.abs(g) + 1e-8))
    opt.step()
    m = 0.9 * (0.1 * g) + 0.1 * g                 # same gradient twice
    v = 0.999 * (0.001 * g * g) + 0.001 * g * g
    m_hat, v_hat = m / (1 - 0.9 ** 2), v / (1 - 0.999 ** 2)
    expected = p0 - 0.01 * g / (np.abs(g) + 1e-8) - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(model.params["bias"], expected)


@pytest.mark.ex12
def test_adamw_decays_weights_but_not_biases():
    model = TwoParams()
    w0, b0 = model.params["weight"].copy(), model.params["bias"].copy()
    gw, gb = model.dparams["weight"].copy(), model.dparams["bias"].copy()
    opt = AdamW(model, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.5)
    opt.step()
    adam_w = 0.01 * gw / (np.abs(gw) + 1e-8)
    np.testing.assert_allclose(model.params["weight"], w0 - 0.01 * 0.5 * w0 - adam_w)   # decoupled decay
    np.testing.assert_allclose(model.params["bias"], b0 - 0.01 * gb / (np.abs(gb) + 1e-8))  # no decay


def test_decay_mask_skips_biases_norms_and_embeddings():
    model = GPT(GPTConfig(vocab_size=11, max_len=8, width=16, num_heads=2, num_layers=1))
    mask = decay_mask(model)
    assert mask["embed.tokens.weight"] is False and mask["embed.positions.weight"] is False
    assert mask["blocks.0.attn.sublayer.query.weight"] is True
    assert mask["blocks.0.attn.sublayer.query.bias"] is False
    assert mask["blocks.0.attn.norm.gamma"] is False and mask["final_norm.beta"] is False
    assert decay_mask(model, decay_embeddings=True)["embed.tokens.weight"] is True


def test_updates_are_in_place_and_keep_float32():
    model = GPT(GPTConfig(vocab_size=11, max_len=8, width=16, num_heads=2, num_layers=1))
    params_before = model.parameters()
    ids = np.random.default_rng(0).integers(0, 11, (2, 8))
    _, loss = model.forward(ids, ids)
    model.backward()
    opt = make_optimizer(model, "adamw", lr=1e-2, weight_decay=0.1)
    before = {k: v.copy() for k, v in params_before.items()}
    opt.step()
    after = model.parameters()
    assert all(after[k] is params_before[k] for k in after)           # the same arrays, updated
    assert any(not np.array_equal(before[k], after[k]) for k in after)
    assert all(v.dtype == np.float32 for v in after.values())
    assert all(v.dtype == np.float32 for v in opt.state_dict().values() if v.ndim > 0)


def test_state_dict_round_trip_and_mismatch_error():
    model = TwoParams()
    opt = Adam(model, lr=0.1)
    opt.step()
    state = {k: v.copy() for k, v in opt.state_dict().items()}
    other = Adam(TwoParams(), lr=0.1)
    other.load_state_dict(state)
    assert other.t == 1
    np.testing.assert_array_equal(other.m["weight"], opt.m["weight"])
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"t": np.array(1)})


def test_clip_grad_norm_scales_to_max_and_returns_the_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}    # global norm 5
    norm = clip_grad_norm(grads, max_norm=1.0)
    assert norm == pytest.approx(5.0)
    assert math.sqrt(sum((g ** 2).sum() for g in grads.values())) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0], rtol=1e-5)       # direction kept
    small = {"a": np.array([0.3, 0.4])}
    assert clip_grad_norm(small, max_norm=1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small["a"], [0.3, 0.4])              # below the max: untouched


def test_unknown_optimizer_and_bad_lr_raise():
    with pytest.raises(ValueError, match="'lion'"):
        make_optimizer(TwoParams(), "lion")
    with pytest.raises(ValueError, match="-1"):
        SGD(TwoParams(), lr=-1)


def test_schedule_shapes():
    total, warmup, base = 1000, 100, 1e-3
    cos = [cosine(s, base, warmup, total, min_lr=1e-5) for s in range(total)]
    assert cos[0] == pytest.approx(base / warmup)                      # warm-up starts small
    assert np.all(np.diff(cos[:warmup]) > 0)                           # rises linearly
    assert max(cos) == pytest.approx(base)                             # peak at the end of warm-up
    assert np.all(np.diff(cos[warmup:]) <= 1e-15)                      # then only falls
    assert cos[-1] == pytest.approx(1e-5)                              # to min_lr on the last step
    inv = [inverse_sqrt(s, base, warmup) for s in range(total)]
    assert int(np.argmax(inv)) == warmup - 1 and max(inv) == pytest.approx(base)
    assert inv[4 * warmup - 1] == pytest.approx(base / 2)              # 1/sqrt(step) after warm-up
    paper = inverse_sqrt(3999, 1.0, 4000, width=512)                   # the paper's peak, 512^-0.5 4000^-0.5
    assert paper == pytest.approx(512 ** -0.5 * 4000 ** -0.5)
    assert learning_rate(7, "constant", 0.3, total) == 0.3
    with pytest.raises(ValueError, match="'linear'"):
        learning_rate(0, "linear", 0.1, total)
