"""One training loop for every model family, with no autograd: forward, model.backward(), optimiser step.

    for step in steps:
        lr = schedule(step)
        zero the gradients
        repeat grad_accum times: batch -> loss = model.forward(...) -> model.backward()   (grads ADD up;
                                 on the Numba backend, threads share each batch: parallel.py)
        grads /= grad_accum; clip by global norm
        optimiser.step(lr)                                                           (arrays updated in place)
        every eval_interval: validation loss and perplexity; every checkpoint_interval: save

What the objective is (causal LM, masked LM, seq2seq, classification) lives in objectives.py; the loop
only needs its train_batch / loss / evaluate. One np.random.Generator, seeded from TrainConfig.seed,
draws every batch and every dropout mask, and its state is saved in the checkpoint: the same seed
gives a bit-identical run (with as many data-parallel threads: a resumed run uses the number it was
started with), and a resumed run continues exactly as if it had never stopped.

Ctrl-C does not tear the run apart: the first one is noted, the current step finishes, a checkpoint
is saved and train() returns with interrupted=True (a second Ctrl-C stops at once). A loss or gradient
that is not finite stops the run with TrainingDiverged before any update, so the last checkpoint saved
is the last good one.
"""
import json
import math
import numbers
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from .checkpoint import check_compatible, load_checkpoint, load_params, save_checkpoint
from .models.common import attention_weights_dropped
from .objectives import tokens_in
from .optim import clip_grad_norm, make_optimizer
from .parallel import DataParallel, default_shards
from .schedules import learning_rate


@dataclass
class TrainConfig:
    steps: int = 1000                  # optimiser steps in total (a resumed run continues up to this)
    batch_size: int = 32               # sequences per micro-batch
    grad_accum: int = 1                # micro-batches per step: effective batch = batch_size * grad_accum
    optimizer: str = "adamw"           # sgd | adam | adamw
    lr: float = 1e-3                   # peak learning rate (the schedule scales it)
    momentum: float = 0.9              # sgd
    beta1: float = 0.9                 # adam, adamw
    beta2: float = 0.99                # adam, adamw
    weight_decay: float = 0.1          # adamw: decoupled; sgd/adam: L2 (never on biases, norms, embeddings)
    decay_embeddings: bool = False     # also decay embedding tables
    schedule: str = "cosine"           # constant | inverse_sqrt | cosine
    warmup: int = 100                  # warm-up steps
    min_lr: float = 1e-4               # cosine floor
    grad_clip: float = 1.0             # max global gradient norm (0: no clipping)
    data_parallel: int = 0             # threads that share each micro-batch (parallel.py); 0: the run being
                                       # resumed's number, else NUMPY_TRANSFORMER_DATA_PARALLEL, else one per
                                       # core on Numba, 1 (none) on NumPy or under NUMBA_DISABLE_JIT=1
    eval_interval: int = 250           # steps between validation evaluations (and at the end)
    checkpoint_interval: int = 250     # steps between checkpoints (and at the end, and on Ctrl-C)
    seed: int = 0                      # seeds the generator for batches and dropout
    progress: bool = True              # tqdm bar (shown only when stderr is a terminal)


@dataclass
class TrainResult:
    history: list                      # [{"step", "loss", "lr", "grad_norm", "tokens_per_s", "seconds"}
                                       #  | {"step", "val_loss", "val_ppl", ...}]
    step: int                          # steps completed
    interrupted: bool = False
    checkpoint_path: str | None = None
    seconds: float = 0.0


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite."""


def check_train_config(config):
    """ValueError naming the first impossible setting."""
    for name in ("steps", "batch_size", "grad_accum", "eval_interval", "checkpoint_interval"):
        value = getattr(config, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not config.lr > 0:
        raise ValueError(f"lr must be positive, got {config.lr}")
    if (isinstance(config.data_parallel, bool) or not isinstance(config.data_parallel, numbers.Integral)
            or config.data_parallel < 0):
        raise ValueError(f"data_parallel must be 0 (automatic) or a positive integer, got {config.data_parallel!r}")
    if config.warmup < 0 or config.grad_clip < 0:
        raise ValueError(f"warmup and grad_clip must be >= 0, got {config.warmup} and {config.grad_clip}")


class DeferredInterrupt:
    """Within `with`, the first Ctrl-C only sets .requested (the loop checks it between steps);
    a second one raises KeyboardInterrupt as usual. Does nothing outside the main thread."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def train(model, objective, config: TrainConfig, run_dir=None, resume=False, tokenizer=None, extra=None,
          callback=None, log=print):
    """Train `model` on `objective`; returns a TrainResult with the metrics history.

    run_dir: where checkpoint.npz and metrics.jsonl go (None: nothing is written).
    resume: continue from run_dir/checkpoint.npz (the model config must match).
    tokenizer, extra: stored in the checkpoint so that `generate` and `evaluate` can rebuild everything.
    callback(record, model): called after every step with that step's record (notebooks plot with it);
    returning True stops the run after that step. log: prints one line per evaluation (None: silent).
    """
    check_train_config(config)
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.momentum, config.beta1,
                               config.beta2, weight_decay=config.weight_decay,
                               decay_embeddings=config.decay_embeddings)
    ckpt_path = None if run_dir is None else os.path.join(run_dir, "checkpoint.npz")
    used = None                                        # threads sharing a batch in the run resumed
    if resume:
        rng, start, history, used = restore(ckpt_path, model, optimizer, config)
    else:
        rng, start, history = np.random.default_rng(config.seed), 0, []
    shards = threads_sharing(config, used)
    if log is not None and used and shards != used:
        log(f"note: the run so far split each batch across {used} thread(s), this part across {shards}: it "
            f"continues, but not with the same bits as if it had never stopped (--data-parallel {used} would)")
    if log is not None and shards > (os.cpu_count() or 1):
        log(f"note: {shards} threads share each batch on {os.cpu_count()} cores; more threads than cores makes "
            f"each step slower (--data-parallel 0 takes one per core)")
    extra = dict(extra or {}, train_config=vars(config), data_parallel_shards=shards)
    metrics = MetricsLog(run_dir, history)
    parallel = DataParallel(model, shards) if shards > 1 else None
    bar, started, interrupted = make_progress_bar(config, start), time.perf_counter(), False
    window_tokens, window_seconds = 0, 0.0             # training steps since the last log line
    try:
        with DeferredInterrupt() as interrupt:
            for step in range(start, config.steps):
                tick = time.perf_counter()
                lr = learning_rate(step, config.schedule, config.lr, config.steps, config.warmup, config.min_lr)
                with attention_weights_dropped(model):  # no T x T maps while training; callbacks still see them
                    loss, grad_norm, n_tokens = train_step(model, objective, optimizer, config, rng, parallel)
                if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                    kept = f"the last good checkpoint is {ckpt_path}" if ckpt_path else "no checkpoint was written"
                    raise TrainingDiverged(f"loss became {loss} (gradient norm {grad_norm}) at step {step + 1} "
                                           f"with lr {lr:.3g}; stopped before updating, {kept}. Try a lower lr.")
                optimizer.step(lr)
                now = time.perf_counter()
                record = metrics.add({"step": step + 1, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                                      "tokens_per_s": n_tokens / (now - tick), "seconds": now - started})
                window_tokens, window_seconds = window_tokens + n_tokens, window_seconds + (now - tick)
                bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
                bar.update(1)
                stop = bool(callback is not None and callback(record, model))
                finishing = step + 1 == config.steps or stop
                if (step + 1) % config.eval_interval == 0 or finishing:
                    with attention_weights_dropped(model):
                        scores = evaluate(model, objective)
                    log_line(bar, log, metrics.add({"step": step + 1, **scores}), record, window_tokens / window_seconds)
                    window_tokens, window_seconds = 0, 0.0
                if (step + 1) % config.checkpoint_interval == 0 or finishing or interrupt.requested:
                    if ckpt_path is not None:
                        save_checkpoint(ckpt_path, model, optimizer, step + 1, rng, tokenizer,
                                        dict(extra, history=history))
                if interrupt.requested or stop:
                    interrupted = interrupt.requested
                    break
    finally:                                           # also when diverged, or on a second Ctrl-C
        bar.close()
        metrics.close()
        if parallel is not None:
            parallel.close()
    completed = sum(1 for r in history if "loss" in r)
    return TrainResult(history, completed, interrupted, ckpt_path, time.perf_counter() - started)


def threads_sharing(config, used=None):
    """How many threads split each micro-batch: config.data_parallel; if 0, the number a resumed run
    used, else parallel.default_shards; never more than the sequences in a batch."""
    return min(config.data_parallel or used or default_shards(config.batch_size), config.batch_size)


def describe_threads(shards):
    return f"{shards} threads share each batch" if shards > 1 else "one thread (no batch split)"


def train_step(model, objective, optimizer, config, rng, parallel=None):
    """Gradients of one step from config.grad_accum micro-batches, averaged and clipped (no update yet).
    parallel: a parallel.DataParallel of the model to split each micro-batch across threads, or None.

    Returns (mean loss, gradient norm before clipping, tokens seen).
    """
    model.train()
    model.zero_grad()
    loss_sum, n_tokens = 0.0, 0
    for _ in range(config.grad_accum):
        batch = objective.train_batch(config.batch_size, rng)
        if parallel is None:
            loss, _ = objective.loss(model, batch, rng)
            model.backward()                               # ADDS this micro-batch's gradients
        else:
            loss, _ = parallel.loss_and_backward(objective.loss, batch, rng)   # the same, shared by threads
        loss_sum, n_tokens = loss_sum + loss, n_tokens + tokens_in(batch)
    if config.grad_accum > 1:
        for grad in optimizer.grads.values():
            grad /= config.grad_accum                      # the mean over micro-batches, as one big batch
    grad_norm = clip_grad_norm(optimizer.grads, config.grad_clip)
    return loss_sum / config.grad_accum, grad_norm, n_tokens


def restore(ckpt_path, model, optimizer, config):
    """Load run_dir/checkpoint.npz into model and optimiser; returns (rng, step, history) to continue from,
    and how many threads shared each batch in that run (None if it did not say)."""
    if ckpt_path is None:
        raise ValueError("resume needs a run directory holding checkpoint.npz")
    checkpoint = load_checkpoint(ckpt_path)
    check_compatible(checkpoint, model)
    load_params(model, checkpoint.params)
    optimizer.load_state_dict(checkpoint.optim_state)
    if checkpoint.step > config.steps:
        raise ValueError(f"checkpoint is at step {checkpoint.step}, beyond the {config.steps} steps asked for")
    return (checkpoint.make_rng(), checkpoint.step, checkpoint.extra.get("history", []),
            checkpoint.extra.get("data_parallel_shards"))


class MetricsLog:
    """The history list, mirrored line by line to run_dir/metrics.jsonl (rewritten from the start)."""

    def __init__(self, run_dir, history):
        self.history = history
        self.file = None
        if run_dir is not None:
            os.makedirs(run_dir, exist_ok=True)
            self.file = open(os.path.join(run_dir, "metrics.jsonl"), "w", encoding="utf-8")
            for record in history:
                self.file.write(json.dumps(record) + "\n")

    def add(self, record):
        self.history.append(record)
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        return record

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def evaluate(model, objective):
    """The objective's validation metrics, computed in eval mode (no dropout)."""
    model.eval()
    metrics = objective.evaluate(model)
    model.train()
    return metrics


def make_progress_bar(config, start):
    """A tqdm bar on stderr showing loss, tokens/s and ETA; disabled unless stderr is a terminal."""
    from tqdm.auto import tqdm
    enabled = config.progress and sys.stderr.isatty()
    return tqdm(total=config.steps, initial=start, disable=not enabled, unit="step", dynamic_ncols=True)


def log_line(bar, log, evaluation, record, tokens_per_s):
    """One line per evaluation, written above the progress bar. tokens_per_s: the training rate over
    the steps since the previous line (one step's own rate jumps around with the machine's load)."""
    extras = "".join(f"  {key[4:]} {value:.3f}" for key, value in evaluation.items()
                     if key.startswith("val_") and key not in ("val_loss", "val_ppl"))
    line = (f"step {evaluation['step']:>6}  train loss {record['loss']:.4f}  val loss {evaluation['val_loss']:.4f}"
            f"  val ppl {evaluation['val_ppl']:.2f}{extras}  ({tokens_per_s:.0f} tokens/s)")
    if log is None:
        return
    if not bar.disable:
        bar.write(line)
    else:
        log(line)


def read_metrics(path):
    """The records of a metrics.jsonl file, as a list of dicts."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_history(history, ax=None, smooth=20):
    """Training loss (light: every step; dark: a running mean over `smooth` steps) and validation loss.

    Returns the matplotlib Figure; never calls plt.show (save it with fig.savefig).
    """
    if ax is None:
        from matplotlib.figure import Figure        # no pyplot: no global state, no window, works headless
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
    else:
        fig = ax.figure
    train_records = [r for r in history if "loss" in r]
    val_records = [r for r in history if "val_loss" in r]
    if train_records:
        steps = np.array([r["step"] for r in train_records])            # (N,)
        losses = np.array([r["loss"] for r in train_records])           # (N,)
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        window = max(1, min(smooth, len(losses)))
        running = np.convolve(losses, np.ones(window) / window, mode="valid")   # (N - window + 1,)
        ax.plot(steps[window - 1:], running, color="tab:blue", label=f"train (mean of {window})")
    if val_records:
        ax.plot([r["step"] for r in val_records], [r["val_loss"] for r in val_records], "o-",
                color="tab:orange", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
