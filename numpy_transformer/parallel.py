"""Data parallelism: split each batch across threads, each thread running forward AND backward on its share.

    batch of B rows  ->  shards of about B / n rows, one per thread
    shard i:  replica_i.forward -> loss L_i, the mean over its c_i counted predictions
              replica_i.backward -> gradients g_i
    loss = sum_i c_i L_i / C,   gradient = sum_i (c_i / C) g_i,   C = sum_i c_i

That is the loss and the gradient of one pass over the whole batch: the loss is a mean over counted
predictions, and nothing in these models mixes different sequences of a batch (attention, LayerNorm
and the FFN all work within one sequence or one token). Only the rounding differs, as sums are added
in another order; how many shards a run used is part of what makes it reproducible.

A replica is a copy of the model's layers that SHARES the model's parameter arrays (no weight is
copied, and an optimiser step on the model updates every replica) but has its own gradients and
caches, so no two threads ever write to the same array. The shards' gradients are added into the
model's own, in shard order, on the calling thread.

Why (measured on the reference GPT step, 2 cores, docs/kernels.md): sharing out every matmul and
every kernel across both cores wakes a sleeping thread about 90 times per step, and on this virtual
machine each wake-up costs 30-90 us during which a core idles: 116 ms per step. Two threads each
running half of the batch, each on one core, meet once per step: 91 ms. While the shards run, BLAS
and the Numba kernels stay on each shard's own thread (the threads ARE the parallelism).

    parallel = DataParallel(model, 2)
    model.zero_grad()
    loss, counted = parallel.loss_and_backward(objective.loss, batch, rng)   # like loss + model.backward()
    optimizer.step()

Debugging: with one shard nothing changes and a debugger never has to follow a thread. train() uses
one unless asked on the NumPy backend and under NUMBA_DISABLE_JIT=1; anywhere, TrainConfig.data_parallel=1
(--data-parallel 1) or NUMPY_TRANSFORMER_DATA_PARALLEL=1 in the environment turns the threads off.
"""
import contextlib
import copy
import numbers
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
import threadpoolctl

from . import backend

try:
    from .kernels.threads import get_num_threads, on_this_thread as kernels_on_this_thread
except ImportError:            # no Numba, or the course kit's student copy (no kernels): nothing to share out
    kernels_on_this_thread = contextlib.nullcontext

    def get_num_threads():
        return 1


ENV_VAR = "NUMPY_TRANSFORMER_DATA_PARALLEL"


def check_shards(shards):
    """shards as an int >= 1, or a ValueError naming the bad value."""
    if isinstance(shards, bool) or not isinstance(shards, numbers.Integral) or shards < 1:
        raise ValueError(f"data parallelism needs a whole number of shards >= 1, got {shards!r}")
    return int(shards)


def default_shards(batch_size):
    """How many threads share a batch when you do not say, at most one per sequence:
    NUMPY_TRANSFORMER_DATA_PARALLEL from the environment if set (1: none, on any backend); else one per
    kernel thread (NUMBA_NUM_THREADS, every core by default) on the Numba backend, and 1 (no threads)
    on the NumPy reference and under NUMBA_DISABLE_JIT=1, where a debugger can follow everything."""
    requested = os.environ.get(ENV_VAR, "").strip()
    if requested:
        try:
            shards = check_shards(int(requested))
        except ValueError:
            raise ValueError(f"{ENV_VAR} must be a whole number >= 1, got {requested!r}") from None
    elif backend.get_backend() != "numba":
        shards = 1
    else:
        from numba import config                      # the Numba backend has it
        shards = 1 if config.DISABLE_JIT else get_num_threads()
    return max(1, min(shards, batch_size))


def blas_controller():
    """threadpoolctl's handle on every BLAS library loaded: NumPy's, and SciPy's, which the kernels'
    np.dot calls (loaded here first, so that it is on the list)."""
    with contextlib.suppress(ImportError):
        import scipy.linalg.cython_blas  # noqa: F401
    return threadpoolctl.ThreadpoolController()


def replica_of(model):
    """A copy of `model` (layers, gradients, settings) whose parameters ARE the model's arrays."""
    shared = {id(value): value for value in model.parameters().values()}
    replica = copy.deepcopy(model, memo=shared)       # deepcopy reuses whatever the memo already holds
    replica.clear_caches()
    return replica


def copy_modes(model, replica):
    """Give each of the replica's layers the model's train/eval mode and attention-weights setting."""
    for (_, layer), (_, twin) in zip(model.named_layers(), replica.named_layers()):
        twin.training = layer.training
        if hasattr(layer, "keep_weights"):
            twin.keep_weights = layer.keep_weights


def split_batch(batch, shards):
    """[batch dict per shard]: every array cut along its first (batch) axis into nearly equal parts;
    fewer parts when the batch has fewer rows than shards."""
    sizes = {key: len(value) for key, value in batch.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"cannot split a batch whose arrays have different lengths: {sizes}")
    rows = next(iter(sizes.values()))
    parts = min(shards, rows)
    bounds = [part * rows // parts for part in range(parts + 1)]
    return [{key: value[bounds[i]:bounds[i + 1]] for key, value in batch.items()} for i in range(parts)]


class DataParallel:
    """Runs loss and backward of each batch as `shards` threads, each on its own replica of the model.

    model: any of the models (or a layer with a loss); its gradients receive the sum. shards: threads
    (the calling thread is one of them). Close it (or use `with`) to stop its threads.
    """

    def __init__(self, model, shards):
        self.model = model
        self.shards = check_shards(shards)
        self.replicas = []
        self.executor = None
        self.blas = None

    # --- the step ---------------------------------------------------------------------------------
    def loss_and_backward(self, loss_fn, batch, rng=None):
        """Like `loss, counted = loss_fn(model, batch, rng); model.backward()`, with the batch split
        across threads: ADDS the batch's gradient into the model's (as backward does) and returns
        (loss, counted) for the whole batch.

        loss_fn(model, batch, rng) -> (mean loss, predictions counted), e.g. an objective's .loss.
        rng: the generator for dropout masks (None: no dropout); see shard_generators.
        """
        pieces = split_batch(batch, self.shards)
        if len(pieces) == 1:                                    # nothing to share: the plain step, same bits
            loss, counted = loss_fn(self.model, batch, rng)
            self.model.backward()
            return loss, counted
        replicas = self.ready_replicas(len(pieces))
        generators = shard_generators(rng, len(pieces))
        with self.blas.limit(limits=1, user_api="blas"):       # each thread's matmuls on its own core
            waiting = [self.executor.submit(run_shard, replica, loss_fn, piece, generator)
                       for replica, piece, generator in zip(replicas[1:], pieces[1:], generators[1:])]
            try:
                results = [run_shard(replicas[0], loss_fn, pieces[0], generators[0])]   # this thread: shard 0
            finally:
                wait(waiting)                                   # every shard done, even if this one failed
        results += [future.result() for future in waiting]      # (raises a shard's exception)
        losses = [loss for loss, _ in results]
        counts = [counted for _, counted in results]
        total = sum(counts)
        self.add_gradients(replicas, counts, total)
        loss = sum(loss * counted for loss, counted in zip(losses, counts)) / max(total, 1)
        return loss, total

    def add_gradients(self, replicas, counts, total):
        """model gradient += sum_i (c_i / C) g_i, shard by shard in order (scales the replicas' in place)."""
        grads = self.model.grads()
        for replica, counted in zip(replicas, counts):
            if counted == 0:                                    # its loss counted nothing: zero gradient
                continue
            weight = counted / total
            for name, replica_grad in replica.grads().items():
                replica_grad *= replica_grad.dtype.type(weight)
                grads[name] += replica_grad

    # --- replicas and threads -----------------------------------------------------------------------
    def ready_replicas(self, count):
        """`count` replicas in the model's current modes, rebuilt if the model's parameter arrays
        were replaced since they were made (say, by a new output layer for fine-tuning)."""
        params = self.model.parameters()
        stale = not self.replicas or any(
            replica.parameters().keys() != params.keys()
            or any(value is not params[name] for name, value in replica.parameters().items())
            for replica in self.replicas)
        if stale:
            self.replicas = [replica_of(self.model) for _ in range(self.shards)]
        if self.executor is None and self.shards > 1:
            self.executor = ThreadPoolExecutor(self.shards - 1, thread_name_prefix="numpy_transformer-shard")
        if self.blas is None:
            self.blas = blas_controller()
        for replica in self.replicas[:count]:
            copy_modes(self.model, replica)
        return self.replicas[:count]

    def close(self):
        """Stop the threads (each finishes its shard first)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def shard_generators(rng, count):
    """[generator per shard]: the first shard draws from `rng` itself; each other one from a generator
    seeded from the numbers a COPY of rng would draw next. So a model without dropout draws nothing,
    and a run sees the same batches with threads as without. [None] * count without a generator."""
    if rng is None:
        return [None] * count
    seeds = copy.deepcopy(rng).integers(2**63, size=count - 1)
    return [rng] + [np.random.default_rng(seed) for seed in seeds]


def run_shard(replica, loss_fn, batch, rng):
    """One shard on the calling thread: its gradient alone (the replica's zeroed first), and (loss, counted)."""
    with kernels_on_this_thread():
        replica.zero_grad()
        loss, counted = loss_fn(replica, batch, rng)
        replica.backward()
    return loss, counted
