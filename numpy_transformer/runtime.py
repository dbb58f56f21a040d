"""Process-wide settings that make a training step fast on a small CPU, applied on import.

Each was measured on the reference training step (docs/kernels.md, `python -m numpy_transformer.bench`
compares the step with and without it), and each gives way to a value you set yourself. (The kernels'
own threads, kernels/threads.py, block on a lock when idle and need no setting.)

OPENBLAS_THREAD_TIMEOUT=4
    OpenBLAS's idle threads poll for 2^28 clock cycles (~0.1 s) after every call, most of the time
    between two matmuls, and the Numba kernels in between ran at about half speed.
    2^4 cycles: they go to sleep at once. Read when NumPy is first imported, so it only takes effect
    when numpy_transformer is imported first (as `python -m numpy_transformer ...` does). It matters
    where the cores share each operation (evaluation, generation, --data-parallel 1); in a training
    step whose batch is split across threads (parallel.py), BLAS runs on one thread per share anyway.
glibc malloc: keep freed memory (M_TRIM_THRESHOLD 512 MiB, M_MMAP_THRESHOLD 32 MiB)
    Every NumPy temporary is a fresh allocation. Under glibc's defaults, large ones are mapped from
    the kernel and handed back when freed, so the next step pays page faults and zero-filling for
    the same memory again. With these settings freed blocks stay in the process's heap for reuse
    (it keeps up to 512 MiB of freed memory instead of returning it): the step runs 1.2-1.4x
    faster. Applied at once through mallopt; only on Linux with glibc. Turn it off with
    NUMPY_TRANSFORMER_KEEP_FREED_MEMORY=0 in the environment.
"""
import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1          # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD_BYTES = 512 * 2**20
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's upper limit for this setting on 64-bit machines


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse; True if it was applied."""
    if not sys.platform.startswith("linux") or os.environ.get("NUMPY_TRANSFORMER_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):               # not glibc (e.g. musl): leave malloc alone
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


SET_HERE = []                  # names of the environment variables apply() set (the rest were yours)


def setdefault_env(name, value):
    if name not in os.environ:
        os.environ[name] = value
        SET_HERE.append(name)


def apply():
    """Make the settings above (environment variables only where you have not set them)."""
    setdefault_env("OPENBLAS_THREAD_TIMEOUT", "4")
    keep_freed_memory()
