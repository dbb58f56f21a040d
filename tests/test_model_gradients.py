"""Whole models, every parameter, checked on sampled entries against central differences (float64)."""
import numpy as np
import pytest

from conftest import assert_gradcheck
from numpy_transformer.gradcheck import check_model, randomize_parameters
from numpy_transformer.models import GPT, Encoder, EncoderConfig, GPTConfig, Transformer, TransformerConfig


@pytest.mark.parametrize("positional,tie", [("learned", True), ("sinusoidal", False)])
def test_gpt_gradients(rng, positional, tie):
    config = GPTConfig(vocab_size=11, max_len=8, width=8, num_heads=2, num_layers=2, positional=positional,
                       tie_weights=tie, dtype="float64")
    model = randomize_parameters(GPT(config), rng)
    ids = rng.integers(0, 11, (2, 6))
    targets = rng.integers(0, 11, (2, 6))
    report = check_model(model, lambda: model.forward(ids, targets)[1], rng)
    assert len(report.rows) == len(model.parameters())
    assert_gradcheck(report, where="GPT")


@pytest.mark.parametrize("head", ["mlm", "classify"])
def test_encoder_gradients(rng, head):
    config = EncoderConfig(vocab_size=13, max_len=8, width=8, num_heads=2, num_layers=2, num_classes=3,
                           type_vocab_size=2, dtype="float64")
    model = randomize_parameters(Encoder(config), rng)
    ids = rng.integers(0, 13, (3, 6))
    padding = np.zeros((3, 6), dtype=bool)
    padding[1, 4:] = True
    types = (np.arange(6) >= 3).astype(int)[None].repeat(3, axis=0)
    if head == "mlm":
        targets = np.full((3, 6), -100)
        targets[:, [1, 4]] = rng.integers(0, 13, (3, 2))    # predict two masked positions per row
    else:
        targets = np.array([0, 2, 1])
    run = lambda: model.forward(ids, targets, padding_mask=padding, token_type_ids=types, head=head)[1]
    report = check_model(model, run, rng)
    head_prefix = "mlm_" if head == "mlm" else ("pooler", "classifier")
    unused_head = [r for r in report.rows if r.name.startswith(("pooler", "classifier") if head == "mlm" else "mlm_")]
    assert all(r.max_abs_diff == 0 for r in unused_head), "the unused head got a gradient"
    assert any(r.name.startswith(head_prefix) for r in report.rows)
    assert_gradcheck(report, where=f"Encoder {head}")


@pytest.mark.parametrize("pre_norm", [False, True])
def test_transformer_gradients(rng, pre_norm):
    config = TransformerConfig(src_vocab_size=9, trg_vocab_size=7, max_len=8, width=8, num_heads=2, num_layers=2,
                               pre_norm=pre_norm, label_smoothing=0.1, dtype="float64")
    model = randomize_parameters(Transformer(config), rng)
    src = rng.integers(1, 9, (2, 6))
    src[1, 4:] = 0                                       # source padding (pad_id 0)
    trg = rng.integers(1, 7, (2, 5))
    targets = rng.integers(1, 7, (2, 5))
    targets[1, 3:] = 0                                   # padded targets are ignored
    report = check_model(model, lambda: model.forward(src, trg, targets)[1], rng)
    assert any(r.name.startswith("src_embed") for r in report.rows)   # gradient reached the encoder
    assert_gradcheck(report, where=f"Transformer pre_norm={pre_norm}")
