"""Checkpoints: round trip, resume equals uninterrupted, atomic writes, and clear errors on bad files."""
import json
import os

import numpy as np
import pytest

from numpy_transformer.checkpoint import (CHECKPOINT_VERSION, check_compatible, load_checkpoint, load_params,
                                          save_checkpoint)
from numpy_transformer.data import CharTokenizer, load_tokenizer, train_val_split
from numpy_transformer.models import GPT, GPTConfig, Transformer, TransformerConfig
from numpy_transformer.objectives import CausalLM
from numpy_transformer.optim import make_optimizer
from numpy_transformer.train import TrainConfig, train


def tiny_gpt(width=32, seed=0):
    return GPT(GPTConfig(vocab_size=13, max_len=16, width=width, num_heads=2, num_layers=2, dropout=0.1, seed=seed))


def objective():
    ids = np.random.default_rng(0).integers(0, 13, 3000)
    train_ids, val_ids = train_val_split(ids, 0.2)
    return CausalLM(train_ids, val_ids, 16, eval_batches=2, eval_batch_size=8)


def config(steps, **overrides):
    settings = dict(steps=steps, batch_size=8, lr=3e-3, warmup=3, eval_interval=5, checkpoint_interval=5,
                    progress=False, seed=7)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_round_trip_restores_everything(tmp_path):
    model = Transformer(TransformerConfig(max_len=12, width=32, num_heads=2, num_layers=1))
    optimizer = make_optimizer(model, "adamw", lr=1e-3)
    rng = np.random.default_rng(5)
    rng.random(3)
    tok = CharTokenizer("abc", special_tokens=["<pad>"])
    path = save_checkpoint(tmp_path / "c.npz", model, optimizer, step=17, rng=rng, tokenizer=tok,
                           extra={"note": "hello"})
    ckpt = load_checkpoint(path)
    assert (ckpt.family, ckpt.step, ckpt.extra) == ("transformer", 17, {"note": "hello"})
    assert load_tokenizer(ckpt.tokenizer) == tok
    assert ckpt.make_rng().random() == rng.random()                   # the generator continues identically
    rebuilt = ckpt.build_model()
    for name, value in model.parameters().items():
        np.testing.assert_array_equal(rebuilt.parameters()[name], value)
    assert set(ckpt.optim_state) == set(optimizer.state_dict())
    with np.load(path, allow_pickle=False) as npz:                   # plain arrays only
        assert int(npz["format_version"]) == CHECKPOINT_VERSION


def test_resume_gives_the_same_losses_as_uninterrupted(tmp_path):
    full = train(tiny_gpt(), objective(), config(20), log=None)
    # the same 20-step run (same schedule), stopped after step 10 by the callback, as Ctrl-C would
    first = train(tiny_gpt(), objective(), config(20), run_dir=tmp_path, log=None,
                  callback=lambda record, model: record["step"] == 10)
    # a NEW model (other init seed, so nothing leaks through memory) resumed from the file
    resumed = train(tiny_gpt(seed=99), objective(), config(20), run_dir=tmp_path, resume=True, log=None)
    full_losses = [r["loss"] for r in full.history if "loss" in r]
    resumed_losses = [r["loss"] for r in resumed.history if "loss" in r]
    assert len(resumed_losses) == 20 and first.step == 10
    assert resumed_losses == full_losses                             # bit-identical, dropout included
    full_evals = [r["val_loss"] for r in full.history if "val_loss" in r]
    assert [r["val_loss"] for r in resumed.history if "val_loss" in r] == full_evals


def test_resume_with_another_config_is_a_clear_error(tmp_path):
    train(tiny_gpt(), objective(), config(5), run_dir=tmp_path, log=None)
    before = (tmp_path / "checkpoint.npz").read_bytes()
    with pytest.raises(ValueError, match="width=32 .this run: 64."):
        train(tiny_gpt(width=64), objective(), config(10), run_dir=tmp_path, resume=True, log=None)
    assert (tmp_path / "checkpoint.npz").read_bytes() == before      # nothing overwritten


def test_params_of_another_shape_are_rejected():
    params = {k: v.copy() for k, v in tiny_gpt().parameters().items()}
    params["embed.tokens.weight"] = np.zeros((13, 8), np.float32)
    with pytest.raises(ValueError, match="embed.tokens.weight"):
        load_params(tiny_gpt(), params)


def test_truncated_and_corrupted_files_give_value_errors(tmp_path):
    path = save_checkpoint(tmp_path / "good.npz", tiny_gpt(), step=1)
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_checkpoint(truncated)
    corrupted = tmp_path / "corrupted.npz"
    middle = len(data) // 2
    corrupted.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_checkpoint(corrupted)
    text = tmp_path / "text.npz"
    text.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_checkpoint(text)
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")


def test_another_version_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", tiny_gpt(), step=1)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["format_version"] = np.array(CHECKPOINT_VERSION + 1)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ValueError, match=f"format version {CHECKPOINT_VERSION + 1}"):
        load_checkpoint(tmp_path / "future.npz")


def test_family_mismatch_is_rejected(tmp_path):
    save_checkpoint(tmp_path / "c.npz", tiny_gpt(), step=1)
    with pytest.raises(ValueError, match="holds a gpt model, not a transformer"):
        check_compatible(load_checkpoint(tmp_path / "c.npz"), Transformer(TransformerConfig()))


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    model = tiny_gpt()
    save_checkpoint(tmp_path / "c.npz", model, step=1)
    first = (tmp_path / "c.npz").read_bytes()

    class FailsMidWrite:                   # np.savez reads arrays one by one; this one fails half-way
        def __array__(self, *args, **kwargs):
            raise OSError("disk full (simulated)")

    model.blocks[1].ffn.sublayer.fc2.params["weight"] = FailsMidWrite()
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.npz", model, step=2)
    assert (tmp_path / "c.npz").read_bytes() == first                 # the old checkpoint survives
    assert os.listdir(tmp_path) == ["c.npz"]                          # no temporary file left behind
    meta = json.loads(str(np.load(tmp_path / "c.npz", allow_pickle=False)["meta"]))
    assert meta["step"] == 1
