"""Data parallelism: split each batch across threads, each thread running forward AND backward on its share.

    batch of B rows  ->  shards of about B / n rows, one per thread
    shard i:  replica_i.forward -> loss L_i, the mean over its c_i counted predictions
              replica_i.backward -> gradients g_i
    loss = sum_i c_i L_i / C,   gradient = sum_i (c_i / C) g_i,   C = sum_i c_i

Without dropout that is the loss and the gradient of one pass over the whole batch: the loss is a
mean over counted predictions, and nothing in these models mixes different sequences of a batch
(attention, LayerNorm and the FFN all work within one sequence or one token); only the rounding
differs, as sums are added in another order. c_i is read from the model's own loss layer, so the
weights always match the loss's denominator. With dropout each shard draws its own masks
(shard_generators), so the masks, and the batches drawn after them, depend on the number of shards.
Either way a run is reproducible bit for bit with the same seed and the same number of shards.

A replica is a copy of the model's layers that SHARES the model's parameter arrays (no weight is
copied, and an optimiser step on the model updates every replica) but has its own gradients and
caches, so no two threads ever write to the same array. The shards' gradients are added into the
model's own, in shard order, on the calling thread. Replicas are made once and follow the model's
train/eval mode and attention-weights setting; they are made again when a parameter array is
replaced or the layers change. Any other setting you change afterwards (a dropout rate, label
smoothing) needs DataParallel.rebuild().

Why (measured on the reference GPT step, 2 cores, docs/kernels.md): sharing out every matmul and
every kernel across both cores wakes a sleeping thread about 90 times per step, and on this virtual
machine each wake-up costs 30-90 us during which a core idles: 113 ms per step. Two threads each
running half of the batch, each on one core, meet once per step: 91 ms. While the shards run, BLAS
runs single-threaded (a process-wide setting, made through threadpoolctl and undone afterwards) and
the Numba kernels stay on each shard's own thread: the shards' threads ARE the parallelism.

    parallel = DataParallel(model, 2)
    model.zero_grad()
    loss, counted = parallel.loss_and_backward(objective.loss, batch, rng)   # like loss + model.backward()
    optimizer.step()

loss_fn (an objective's .loss) is then called once per shard, at the same time on different
threads, with a replica in place of the model and a slice of the batch in place of the batch.

Debugging: with one shard nothing changes and a debugger never has to follow a thread. On the NumPy
backend and under NUMBA_DISABLE_JIT=1, train() uses one shard unless asked for more; anywhere,
TrainConfig.data_parallel=1 (--data-parallel 1) or NUMPY_TRANSFORMER_DATA_PARALLEL=1 keeps it to one.
"""
import contextlib
import copy
import numbers
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from . import backend
from .flat import BufferFinder, gather

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
    NUMPY_TRANSFORMER_DATA_PARALLEL from the environment if set (1: none, on any backend; 0: as if
    unset); else one per kernel thread (NUMBA_NUM_THREADS, every core by default) on the Numba backend,
    and 1 (no threads) on the NumPy reference and under NUMBA_DISABLE_JIT=1, where a debugger can
    follow everything. (train() asks only when neither TrainConfig.data_parallel nor a resumed run says.)"""
    requested = os.environ.get(ENV_VAR, "").strip() or "0"
    if not requested.isdigit():                       # digits only: no sign, no decimal point
        raise ValueError(f"{ENV_VAR} must be a whole number >= 0 (0: automatic), got {requested!r}")
    shards = int(requested)
    if shards == 0:                                   # automatic
        if backend.get_backend() != "numba":
            shards = 1
        else:
            from numba import config                  # the Numba backend has it
            shards = 1 if config.DISABLE_JIT else get_num_threads()
    return max(1, min(shards, batch_size))


def blas_controller():
    """threadpoolctl's handle on every BLAS library loaded: NumPy's, and SciPy's, which the kernels'
    np.dot calls (loaded here first, so that it is on the list)."""
    import threadpoolctl                                # only needed once threads share a batch
    with contextlib.suppress(ImportError):
        import scipy.linalg.cython_blas  # noqa: F401
    return threadpoolctl.ThreadpoolController()


def replica_of(model):
    """A copy of `model` (layers, gradients, settings) whose parameters ARE the model's arrays."""
    # deepcopy's memo maps id(original) -> its copy; mapping each parameter to ITSELF means "reuse, don't copy"
    shared = {id(value): value for value in model.parameters().values()}
    replica = copy.deepcopy(model, memo=shared)
    gather(replica, "dparams")                          # its own gradients, copied: into one buffer (flat.py)
    replica.clear_caches()
    for _, layer in replica.named_layers():            # the maps the model's last forward left behind
        if vars(layer).get("attention_weights") is not None:
            layer.attention_weights = None
    loss_layer = getattr(replica, "loss_fn", None)
    if loss_layer is not None:
        loss_layer.cache = None
    return replica


def layer_names(model):
    return [name for name, _ in model.named_layers()]


def copy_modes(layers, twins):
    """Give each of a replica's layers (twins, in named_layers order) the train/eval mode and
    attention-weights setting of the model's layer in the same place (layers, in the same order)."""
    for layer, twin in zip(layers, twins):
        twin.training = layer.training
        if hasattr(layer, "keep_weights"):
            twin.keep_weights = layer.keep_weights


def predictions_counted(replica, reported):
    """How many predictions the replica's loss just averaged over: what its CrossEntropyLoss counted
    (the weight must match the loss's own denominator exactly), else the objective's `reported` count."""
    return getattr(getattr(replica, "loss_fn", None), "counted", reported)


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
        self.replica_layers = []    # [[layer, ...] per replica], in named_layers order (rebuild)
        self.built_from = None      # {"layers": names, "params": arrays} of the model the replicas were made from
        self.executor = None
        self.blas = None
        self.find_model_buffer = BufferFinder()                     # the buffers behind the gradients (flat.py)
        self.find_replica_buffers = [BufferFinder() for _ in range(self.shards)]

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
                wait_for_every(waiting)                         # even if this one failed, or on Ctrl-C
        results += [future.result() for future in waiting]      # (raises a shard's exception)
        losses = [loss for loss, _ in results]
        counts = [counted for _, counted in results]
        total = sum(counts)
        self.add_gradients(replicas, counts, total)
        loss = sum(loss * counted for loss, counted in zip(losses, counts)) / max(total, 1)
        return loss, total

    def add_gradients(self, replicas, counts, total):
        """model gradient += sum_i (c_i / C) g_i, shard by shard in order; each product is rounded to the
        dtype before it is added, on both backends (the Numba kernel in one pass, NumPy in two). When the
        model's gradients lie in one buffer and so do the replica's (flat.py), one kernel call adds them all."""
        grads = self.model.grads()
        fused = backend.get_backend() == "numba"
        if fused:
            from .kernels.optim import add_scaled
            target = self.find_model_buffer(grads.values())
        for i, (replica, counted) in enumerate(zip(replicas, counts)):
            if counted == 0:                                    # its loss counted nothing: zero gradient
                continue
            weight = counted / total
            replica_grads = replica.grads()
            if fused and target is not None and list(replica_grads) == list(grads):   # same names, same order
                source = self.find_replica_buffers[i](replica_grads.values())
                if source is not None and add_scaled(target, source, weight):   # same size and dtype
                    continue
            for name, replica_grad in replica_grads.items():
                if not (fused and add_scaled(grads[name], replica_grad, weight)):
                    replica_grad *= replica_grad.dtype.type(weight)
                    grads[name] += replica_grad

    # --- replicas and threads -----------------------------------------------------------------------
    def ready_replicas(self, count):
        """`count` replicas in the model's current modes. All self.shards of them are made at once, and
        made again if a parameter array of the model was replaced (say, a new output layer for
        fine-tuning) or its layers' names changed since. A layer without parameters replaced under the
        same name (another Dropout) is not noticed: call rebuild() then."""
        named = list(self.model.named_layers())                # one walk of the model's tree, used twice
        params = self.model.parameters()
        stale = (not self.replicas or [name for name, _ in named] != self.built_from["layers"]
                 or params.keys() != self.built_from["params"].keys()
                 or any(value is not self.built_from["params"][name] for name, value in params.items()))
        if stale:
            self.rebuild()
        if self.executor is None:
            self.executor = ThreadPoolExecutor(self.shards - 1, thread_name_prefix="numpy_transformer-shard")
        if self.blas is None:
            self.blas = blas_controller()
        layers = [layer for _, layer in named]
        for twins in self.replica_layers[:count]:
            copy_modes(layers, twins)
        return self.replicas[:count]

    def rebuild(self):
        """Make the replicas again from the model as it is now (after changing a setting of its layers)."""
        self.replicas = [replica_of(self.model) for _ in range(self.shards)]
        # each replica's layers in named_layers order: a replica's tree never changes, so it is walked once
        self.replica_layers = [[layer for _, layer in replica.named_layers()] for replica in self.replicas]
        # what they were made from: the replicas hold these very arrays (0.5 ms a step to ask each replica)
        self.built_from = {"layers": layer_names(self.model), "params": self.model.parameters()}

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
    """[generator per shard]: shard 0 uses rng itself; the others get fresh generators seeded from the
    next numbers rng would produce (read from a copy, so rng itself does not advance). Without dropout
    nothing is drawn, and the batches match a run without threads; with dropout, shard 0 draws fewer
    numbers than one pass would, so later batches differ. [None] * count when rng is None."""
    if rng is None:
        return [None] * count
    seeds = copy.deepcopy(rng).integers(2**63, size=count - 1)
    return [rng] + [np.random.default_rng(seed) for seed in seeds]


def run_shard(replica, loss_fn, batch, rng):
    """One shard on the calling thread: its gradient alone (the replica's zeroed first), and (loss, counted)."""
    with kernels_on_this_thread():
        replica.zero_grad()
        loss, reported = loss_fn(replica, batch, rng)
        replica.backward()
    return loss, predictions_counted(replica, reported)


def wait_for_every(futures):
    """Wait until every future is done. A Ctrl-C meanwhile is held back until then and raised after:
    a shard still running would go on writing its replica, and BLAS would be back on several
    threads under it."""
    interrupt = None
    while True:
        try:
            wait(futures)
            break
        except KeyboardInterrupt as exc:
            interrupt = exc
    if interrupt is not None:
        raise interrupt
