"""kernels/threads.py: how the kernels share work across threads.

The split must never change a result (each task writes only its own outputs, and the LayerNorm and
FFN backward add their per-block sums in block order), errors in a worker must reach the caller, and
small jobs, NUMBA_DISABLE_JIT runs and nested callers must stay on the calling thread.
"""
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from numpy_transformer.kernels import attention, ffn, layernorm, threads


@pytest.fixture
def thread_count():
    """Set the thread count for one test, and restore it afterwards."""
    before = threads.get_num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(before)


def recorder():
    """A plain Python 'kernel' that notes which thread ran which slice."""
    seen = []

    def kernel(first, last, out):
        seen.append((first, last, threading.get_ident()))
        out[first:last] = np.arange(first, last)
    return kernel, seen


def test_slices_cover_the_range_once():
    for count in (1, 2, 3, 7, 64):
        for parts in (1, 2, 3, 5):
            bounds = threads.slice_bounds(count, parts)
            covered = [i for first, last in bounds for i in range(first, last)]
            assert covered == list(range(count))


def test_big_jobs_use_several_threads_small_jobs_one(thread_count):
    thread_count(3)
    kernel, seen = recorder()
    out = np.zeros(10)
    threads.run_tasks(kernel, 10, out, work_ns=10 * threads.MIN_PARALLEL_NS)
    np.testing.assert_array_equal(out, np.arange(10))
    assert sorted((first, last) for first, last, _ in seen) == [(0, 3), (3, 6), (6, 10)]
    assert len({ident for _, _, ident in seen}) == 3
    assert (0, 3, threading.get_ident()) in seen        # the caller takes the first slice
    seen.clear()
    threads.run_tasks(kernel, 10, out, work_ns=threads.MIN_PARALLEL_NS / 2)
    assert seen == [(0, 10, threading.get_ident())]


def test_on_this_thread_keeps_big_jobs_on_the_calling_thread_only_there(thread_count):
    """parallel.py's threads each run their kernels alone; other threads still share theirs out."""
    thread_count(2)
    kernel, seen = recorder()
    out = np.zeros(10)
    big = 10 * threads.MIN_PARALLEL_NS
    with threads.on_this_thread():
        threads.run_tasks(kernel, 10, out, work_ns=big)
        assert seen == [(0, 10, threading.get_ident())]
        seen.clear()
        elsewhere = threading.Thread(target=threads.run_tasks, args=(kernel, 10, out), kwargs={"work_ns": big})
        elsewhere.start()
        elsewhere.join()
        assert len(seen) == 2                           # that thread was not inside on_this_thread()
    seen.clear()
    threads.run_tasks(kernel, 10, out, work_ns=big)
    assert len(seen) == 2                               # and here it ends with the block


def test_disabled_jit_runs_on_the_calling_thread(thread_count, monkeypatch):
    thread_count(2)
    monkeypatch.setattr(threads.config, "DISABLE_JIT", True)
    kernel, seen = recorder()
    threads.run_tasks(kernel, 4, np.zeros(4), work_ns=1e12)
    assert seen == [(0, 4, threading.get_ident())]


def test_a_worker_error_reaches_the_caller_and_the_pool_still_works(thread_count):
    thread_count(2)

    def kernel(first, last):
        if first > 0:
            raise RuntimeError(f"task {first} failed")
    with pytest.raises(RuntimeError, match="task 1 failed"):
        threads.run_tasks(kernel, 2, work_ns=1e12)
    kernel_ok, seen = recorder()
    threads.run_tasks(kernel_ok, 2, np.zeros(2), work_ns=1e12)
    assert len(seen) == 2


def test_a_failure_still_waits_for_every_slice(thread_count):
    """One worker's slice fails at once while another is still running: run_tasks must wait for that
    one too before it raises, or the next job would find a worker busy and return half-written outputs."""
    thread_count(3)
    out = np.zeros(9)

    def kernel(first, last):
        if first == 3:
            raise RuntimeError("second slice failed")
        if first == 6:
            time.sleep(0.3)                             # the third slice is still running
        out[first:last] = 1
    with pytest.raises(RuntimeError, match="second slice failed"):
        threads.run_tasks(kernel, 9, work_ns=1e12)
    np.testing.assert_array_equal(out[6:], 1)           # the slow slice had finished
    kernel_ok, seen = recorder()
    result = np.zeros(9)
    threads.run_tasks(kernel_ok, 9, result, work_ns=1e12)
    np.testing.assert_array_equal(result, np.arange(9))


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_waiting_is_held_until_the_slices_are_done(thread_count):
    """A Ctrl-C (a real SIGINT, as from an interrupted notebook cell) arriving while the caller waits
    for the workers is raised only once their slices are complete; the next job then runs whole."""
    thread_count(2)
    out = np.zeros(4)

    def kernel(first, last):
        if first > 0:
            time.sleep(0.4)                             # the worker's slice takes a while
        out[first:last] = 1
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()   # while the caller waits
    with pytest.raises(KeyboardInterrupt):
        threads.run_tasks(kernel, 4, work_ns=1e12)
        time.sleep(2)                                   # (only reached if the signal came late)
    np.testing.assert_array_equal(out, 1)
    kernel_ok, seen = recorder()
    result = np.zeros(4)
    threads.run_tasks(kernel_ok, 4, result, work_ns=1e12)
    np.testing.assert_array_equal(result, np.arange(4))


def test_nested_call_stays_on_its_thread(thread_count):
    """A kernel that itself calls run_tasks (or two user threads at once) must not wait on busy workers."""
    thread_count(2)
    inner_seen = []

    def inner(first, last):
        inner_seen.append(threading.get_ident())

    def outer(first, last):
        threads.run_tasks(inner, 4, work_ns=1e12)
    threads.run_tasks(outer, 2, work_ns=1e12)
    assert len(inner_seen) == 2                         # each outer slice ran inner itself, in one piece


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        threads.set_num_threads(bad)


def test_results_do_not_depend_on_the_thread_count(thread_count, rng, monkeypatch):
    """Bit for bit on 1, 2, 3 and 5 threads: attention (its 12 (batch, head) pairs split at sequence
    boundaries and inside sequences: each slice copies and stores only its own heads), the LayerNorm and
    FFN backward (their parameter gradients are summed in parts, one per block of rows); every job is
    shared out, however small."""
    monkeypatch.setattr(threads, "MIN_PARALLEL_NS", 0)
    q, k, v, dout = (rng.standard_normal((4, 3, 130, 16)).astype(np.float32) for _ in range(4))
    x = rng.standard_normal((300, 96)).astype(np.float32)
    gamma, beta = rng.standard_normal(96).astype(np.float32), rng.standard_normal(96).astype(np.float32)
    pre = rng.standard_normal((300, 200)).astype(np.float32)
    dhidden = rng.standard_normal((300, 200)).astype(np.float32)
    results = []
    for count in (1, 2, 3, 5):
        thread_count(count)
        out, cache = attention.attention_forward(q, k, v, causal=True, need_weights=False)
        grads = attention.attention_backward(dout, cache)
        y, ln_cache = layernorm.layernorm_forward(x, gamma, beta)
        ln_grads = layernorm.layernorm_backward(x, ln_cache)
        hidden, slope = ffn.bias_act_forward(pre.copy(), gamma[:1].repeat(200), "gelu_tanh")
        ffn_grads = ffn.bias_act_backward(dhidden, slope)
        results.append([out, *grads, y, *ln_grads, hidden, slope, *ffn_grads])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
