"""The training loop: it learns, it is reproducible, accumulation is exact, and it stops cleanly."""
import json
import os
import re
import signal

import numpy as np
import pytest

from numpy_transformer.checkpoint import load_checkpoint
from numpy_transformer.data import reverse_task, train_val_split
from numpy_transformer.models import GPT, Encoder, EncoderConfig, GPTConfig, Transformer, TransformerConfig
from numpy_transformer.objectives import IGNORE_INDEX, CausalLM, MaskedLM, Seq2Seq, mask_tokens
from numpy_transformer.optim import make_optimizer
from numpy_transformer.train import TrainConfig, TrainingDiverged, plot_history, read_metrics, train, train_step


def tiny_gpt(dtype="float32", vocab=13, max_len=16):
    return GPT(GPTConfig(vocab_size=vocab, max_len=max_len, width=32, num_heads=2, num_layers=2, dtype=dtype))


def toy_ids(n=3000, vocab=13, seed=0):
    """A learnable stream: a repeating pattern with a little noise."""
    rng = np.random.default_rng(seed)
    ids = np.tile(np.arange(vocab), n // vocab + 1)[:n]
    noise = rng.random(n) < 0.1
    return np.where(noise, rng.integers(0, vocab, n), ids)


def lm_objective(block=16):
    train_ids, val_ids = train_val_split(toy_ids(), 0.2)
    return CausalLM(train_ids, val_ids, block, eval_batches=2, eval_batch_size=8)


class OneBatch:
    """The same batch every step: a model that can learn must drive its loss towards 0."""

    def __init__(self, ids):
        self.batch = {"ids": ids[:, :-1], "targets": ids[:, 1:]}

    def train_batch(self, batch_size, rng):
        return self.batch

    def loss(self, model, batch, rng=None):
        _, loss = model.forward(batch["ids"], batch["targets"], rng=rng)
        return float(loss), batch["targets"].size

    def evaluate(self, model):
        loss, _ = self.loss(model, self.batch)
        return {"val_loss": loss, "val_ppl": float(np.exp(loss))}


def quiet(steps, **overrides):
    settings = dict(steps=steps, batch_size=8, lr=3e-3, warmup=5, eval_interval=max(steps // 2, 1),
                    checkpoint_interval=steps, progress=False)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_overfits_one_batch():
    ids = np.random.default_rng(0).integers(0, 13, (4, 17))
    model = tiny_gpt()
    result = train(model, OneBatch(ids), quiet(150, schedule="constant", weight_decay=0.0, lr=1e-2), log=None)
    losses = [r["loss"] for r in result.history if "loss" in r]
    assert losses[0] > 2.0                                        # about ln(13) = 2.56 at the start
    assert losses[-1] < 0.05, f"final loss {losses[-1]}"


def test_same_seed_same_curve_and_other_seed_differs():
    runs = [train(tiny_gpt(), lm_objective(), quiet(12, seed=seed), log=None).history for seed in (3, 3, 4)]
    losses = [[r["loss"] for r in history if "loss" in r] for history in runs]
    assert losses[0] == losses[1]                                 # bit-identical, not approximately
    assert losses[0] != losses[2]


def test_gradient_accumulation_equals_one_big_batch():
    big = np.random.default_rng(1).integers(0, 13, (8, 17))

    class Halves(OneBatch):
        def __init__(self):
            self.calls = 0

        def train_batch(self, batch_size, rng):
            part = big[self.calls % 2 * 4:(self.calls % 2 + 1) * 4] if batch_size == 4 else big
            self.calls += 1
            return {"ids": part[:, :-1], "targets": part[:, 1:]}

    grads = []
    for batch_size, accum in ((8, 1), (4, 2)):
        model = tiny_gpt("float64")
        optimizer = make_optimizer(model, "sgd", lr=0.1)
        config = quiet(1, batch_size=batch_size, grad_accum=accum, grad_clip=0.0)
        loss, _, _ = train_step(model, Halves(), optimizer, config, np.random.default_rng(0))
        grads.append((loss, {k: v.copy() for k, v in optimizer.grads.items()}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-12)
    for name, grad in grads[0][1].items():
        np.testing.assert_allclose(grads[1][1][name], grad, rtol=1e-10, atol=1e-13, err_msg=name)


def test_log_line_rate_is_the_average_since_the_previous_line():
    """The tokens/s on each evaluation line covers every training step since the previous line
    (total tokens / total step time), not just the last step's own rate."""
    lines = []
    result = train(tiny_gpt(), lm_objective(), quiet(6, eval_interval=3), log=lines.append)
    steps = [r for r in result.history if "loss" in r]
    assert len(lines) == 2
    for line, window in zip(lines, (steps[:3], steps[3:])):
        printed = float(re.search(r"\((\d+) tokens/s\)", line).group(1))
        average = len(window) / sum(1 / r["tokens_per_s"] for r in window)   # same tokens every step
        assert printed == pytest.approx(average, abs=0.5)


def test_history_metrics_file_and_plot(tmp_path):
    result = train(tiny_gpt(), lm_objective(), quiet(6, eval_interval=3), run_dir=tmp_path, log=None)
    evals = [r for r in result.history if "val_loss" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(r["val_ppl"] == pytest.approx(np.exp(r["val_loss"])) for r in evals)
    assert read_metrics(tmp_path / "metrics.jsonl") == json.loads(json.dumps(result.history))
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(result.history[0])
    fig = plot_history(result.history)
    fig.savefig(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 1000


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    class NaNAtStep4(OneBatch):
        calls = 0

        def loss(self, model, batch, rng=None):
            loss, n = super().loss(model, batch, rng)
            self.calls += 1
            return (float("nan") if self.calls == 4 else loss), n

    ids = np.random.default_rng(0).integers(0, 13, (4, 17))
    with pytest.raises(TrainingDiverged, match="step 4"):                # one loss call per step: no threads
        train(tiny_gpt(), NaNAtStep4(ids), quiet(10, checkpoint_interval=1, data_parallel=1), run_dir=tmp_path,
              log=None)
    checkpoint = load_checkpoint(tmp_path / "checkpoint.npz")
    assert checkpoint.step == 3
    assert all(np.isfinite(v).all() for v in checkpoint.params.values())


def test_ctrl_c_finishes_the_step_saves_and_returns(tmp_path):
    def press_ctrl_c(record, model):
        if record["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)                   # a real SIGINT to this process

    result = train(tiny_gpt(), lm_objective(), quiet(10), run_dir=tmp_path, callback=press_ctrl_c, log=None)
    assert result.interrupted and result.step == 3
    assert load_checkpoint(tmp_path / "checkpoint.npz").step == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # handler restored


def test_mlm_masking_proportions():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (200, 100))                          # 20,000 tokens
    inputs, targets = mask_tokens(ids, rng, mask_id=60, n_random=50)
    chosen = targets != IGNORE_INDEX
    assert chosen.mean() == pytest.approx(0.15, abs=0.01)
    np.testing.assert_array_equal(targets[chosen], ids[chosen])
    assert np.all(inputs[~chosen] == ids[~chosen])                 # unchosen tokens untouched
    masked = inputs[chosen] == 60
    changed = (inputs[chosen] != 60) & (inputs[chosen] != ids[chosen])
    assert masked.mean() == pytest.approx(0.8, abs=0.03)
    # random replacements: 10%, minus the 1/50 that land on the same id by chance
    assert changed.mean() == pytest.approx(0.1 * 49 / 50, abs=0.02)
    assert np.all(inputs < 61)


def test_masked_lm_trains_the_encoder():
    train_ids, val_ids = train_val_split(toy_ids(), 0.2)
    objective = MaskedLM(train_ids, val_ids, 16, mask_id=13, n_random=13, eval_batches=2, eval_batch_size=8)
    model = Encoder(EncoderConfig(vocab_size=14, max_len=16, width=32, num_heads=2, num_layers=1))
    result = train(model, objective, quiet(30, lr=3e-3), log=None)
    evals = [r["val_loss"] for r in result.history if "val_loss" in r]
    assert evals[-1] < np.log(14)                                  # learned something about the pattern


def test_seq2seq_pipeline_reports_exact_match():
    task = reverse_task(300, 5, seed=0)
    src, tgt = task.seq2seq_arrays()
    (train_src, val_src), (train_tgt, val_tgt) = train_val_split(src, 0.1), train_val_split(tgt, 0.1)
    tok = task.tokenizer
    objective = Seq2Seq(train_src, train_tgt, val_src, val_tgt, *(tok.token_to_id(t) for t in ("<bos>", "<eos>", "<pad>")))
    model = Transformer(TransformerConfig(src_vocab_size=16, trg_vocab_size=16, max_len=8, width=32, num_heads=2,
                                          num_layers=1, pad_id=tok.token_to_id("<pad>")))
    result = train(model, objective, quiet(10), log=None)
    last = result.history[-1]
    assert 0.0 <= last["val_exact_match"] <= 1.0 and np.isfinite(last["val_loss"])


def test_bad_train_config_names_the_value():
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        train(tiny_gpt(), lm_objective(), quiet(0), log=None)


def test_block_size_larger_than_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="block size 64 is larger than the validation text"):
        CausalLM(np.arange(1000) % 7, np.arange(50) % 7, 64)


def test_masked_sentences_never_mask_cls_or_padding():
    from numpy_transformer.objectives import MaskedSentences
    rows = np.full((64, 12), 0)                                    # pad id 0
    rows[:, 0] = 1                                                 # [CLS] id 1
    rows[:, 1:8] = np.random.default_rng(0).integers(3, 20, (64, 7))
    objective = MaskedSentences(rows, rows[:8], mask_id=2, n_random=20, pad_id=0, cls_id=1)
    batch = objective.train_batch(64, np.random.default_rng(1))
    chosen = batch["targets"] != IGNORE_INDEX
    assert chosen[:, 1:8].any() and not chosen[:, 0].any() and not chosen[:, 8:].any()
    assert batch["padding"][:, 8:].all() and not batch["padding"][:, :8].any()   # from the rows, not the inputs


def test_training_drops_attention_maps_but_callbacks_still_see_them():
    model = tiny_gpt()
    ids = np.tile(np.arange(13), (4, 2))[:, :17]
    maps_in_steps, maps_in_callback = [], []

    class Recording(OneBatch):
        def loss(self, model, batch, rng=None):               # the forward of a training step or an evaluation
            result = OneBatch.loss(self, model, batch, rng)
            maps_in_steps.append(model.attention_maps())
            return result

    def callback(record, model):
        model.forward(ids[:1, :8])
        maps_in_callback.append(model.attention_maps())

    train(model, Recording(ids), TrainConfig(steps=2, batch_size=4, eval_interval=2, progress=False),
          callback=callback, log=None)
    assert maps_in_steps and all(m is None for maps in maps_in_steps for m in maps)   # no (B, H, T, T) kept
    assert len(maps_in_callback) == 2
    assert all(m is not None for maps in maps_in_callback for m in maps)   # the model as the user left it
    model.forward(ids[:1, :8])
    assert all(m is not None for m in model.attention_maps())             # each layer's own setting is back
