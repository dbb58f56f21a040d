"""Share a kernel's independent tasks across threads: the kernels' only parallelism.

    run_tasks(kernel, count, *args, work_ns=...)
        calls kernel(first, last, *args) on nearly equal [first, last) slices of range(count), one
        slice per thread (the calling thread takes the first), and returns when all are done.

Each kernel loops over its own slice of independent tasks (rows, blocks of rows, (batch, head)
pairs) and is jitted with nogil=True, so the threads run it at the same time. The slices depend on
the thread count, but every task writes only its own outputs, so results do not.

Why not Numba's `prange`: each parallel loop is compiled into a separate "gufunc" that links in and
re-optimises everything its body calls. Measured here, that was ~2.5 s of compile time per loop and
dtype for the attention kernels, and about half of all compile time (every kernel in float32 and
float64: 54 s with prange, 25 s without, 15-17 s once the attention kernels were flattened too);
the training step ran at the same speed either way. And
these threads sleep when idle (a blocked lock), so they never hold a core that BLAS wants, which
OpenMP's spinning threads did.

What it costs: waking a thread takes ~70 us here, so a job estimated (work_ns) under MIN_PARALLEL_NS
stays on the calling thread (token-by-token generation is all such jobs). Everything also stays on
the calling thread under NUMBA_DISABLE_JIT=1, where the kernels are Python that a debugger steps
through, when another thread is already using the workers, and within on_this_thread().

Threads: NUMBA_NUM_THREADS (Numba's setting, default: every core), or set_num_threads(n) below
(numba.set_num_threads sizes Numba's own parallel pool, which these kernels do not use).
"""
import numbers
import threading
from contextlib import contextmanager

from numba import config

MIN_PARALLEL_NS = 200_000      # 0.2 ms: a job this short stays on the calling thread (a wake-up costs ~70 us)
_workers = []                                   # started on first use, then kept (daemon threads)
_in_use = threading.Lock()                      # held while a job is shared out
_threads = [max(1, config.NUMBA_NUM_THREADS)]   # a list so set_num_threads can change it
_this_thread = threading.local()                # .alone: True while on_this_thread() is active here


def set_num_threads(count):
    """Use `count` threads (the calling one included) from now on; 1 runs everything in the caller."""
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"set_num_threads: count must be a whole number >= 1, got {count!r}")
    _threads[0] = int(count)


def get_num_threads():
    return _threads[0]


@contextmanager
def on_this_thread():
    """Within `with`, every kernel this thread calls runs on this thread alone. For a caller that is
    already one of several threads at work (parallel.py gives each thread a share of the batch)."""
    previous = getattr(_this_thread, "alone", False)
    _this_thread.alone = True
    try:
        yield
    finally:
        _this_thread.alone = previous


class Worker:
    """One daemon thread that runs one slice at a time: start() hands it work, finish() collects it."""

    def __init__(self):
        self.job = None
        self.error = None
        self.ready = threading.Event()
        self.finished = threading.Event()
        threading.Thread(target=self.loop, daemon=True, name="numpy_transformer-kernel").start()

    def loop(self):
        while True:
            self.ready.wait()
            self.ready.clear()
            kernel, first, last, args = self.job
            try:
                kernel(first, last, *args)
            except BaseException as exc:            # handed to the caller by finish()
                self.error = exc
            self.finished.set()

    def start(self, kernel, first, last, args):
        self.job = (kernel, first, last, args)
        self.error = None
        self.finished.clear()
        self.ready.set()

    def finish(self):
        """Wait until the slice is done, and return its exception (or None). A Ctrl-C meanwhile is held
        back until then and returned instead: the slice's outputs must be complete, and this worker
        free, before anyone can use either again."""
        interrupt = None
        while not self.finished.is_set():
            try:
                self.finished.wait()
            except KeyboardInterrupt as exc:
                interrupt = exc
        self.job = None
        error, self.error = self.error, None
        return interrupt or error


def slice_bounds(count, parts):
    """[first, last) bounds of `parts` nearly equal slices of range(count)."""
    return [(part * count // parts, (part + 1) * count // parts) for part in range(parts)]


def run_tasks(kernel, count, *args, work_ns):
    """kernel(first, last, *args) over range(count), split across threads.

    work_ns: roughly how long the whole job takes on one thread, in nanoseconds (each caller
    estimates it from its sizes). Under MIN_PARALLEL_NS it runs on this thread: waking another
    thread would cost more than it saves.
    """
    parts = min(_threads[0], count)
    if (parts <= 1 or config.DISABLE_JIT or work_ns < MIN_PARALLEL_NS or getattr(_this_thread, "alone", False)
            or not _in_use.acquire(blocking=False)):
        kernel(0, count, *args)
        return
    started = []
    try:
        while len(_workers) < parts - 1:
            _workers.append(Worker())
        bounds = slice_bounds(count, parts)
        for worker, (first, last) in zip(_workers, bounds[1:]):
            worker.start(kernel, first, last, args)
            started.append(worker)
        kernel(bounds[0][0], bounds[0][1], *args)      # this thread takes the first slice
    finally:                                            # even if that failed: wait for EVERY started slice
        errors = [worker.finish() for worker in started]
        _in_use.release()
    for error in errors:                                # this thread's slice went fine; theirs may not have
        if error is not None:
            raise error
