"""Token embedding in Numba: the twin of layers/embedding.py (same arguments, outputs and cache).

The forward is a row gather, already one fast NumPy call, so it is the reference's own function.
The backward sums the gradient of every position into the row of its token id. NumPy's way,
np.add.at, is a general unbuffered scatter that handles one element at a time; here each thread
owns a block of columns (so no two threads ever add into the same entry) and walks the positions
in order, adding a whole block of a row at once:
    dweight[ids[n], c] += dout[n, c]      for every position n, column c
"""
import numpy as np
from numba import njit

from ..layers.embedding import embedding_forward  # noqa: F401  (the forward is the reference's: a gather)
from .threads import run_tasks

COLUMN_CHUNK = 64       # columns per parallel task
NS_PER_ENTRY = 0.2      # one thread's time per entry of dout added in, roughly (run_tasks' estimate)


def embedding_backward_loops(first, last, ids, dout, dweight):
    """ids: (N,) int, dout: (N, C) -> adds each dout[n] into dweight[ids[n]] (V, C), which must arrive
    zeroed, for the column chunks first..last-1 (COLUMN_CHUNK columns each)."""
    N, C = dout.shape
    for chunk in range(first, last):                    # each task owns its columns: no shared sums
        c0 = chunk * COLUMN_CHUNK
        width = min(COLUMN_CHUNK, C - c0)
        for n in range(N):                              # positions in order, as np.add.at adds them
            target = dweight[ids[n], c0:c0 + width]     # (width,) views, indexed from 0
            source = dout[n, c0:c0 + width]             # (width,)
            for c in range(width):
                target[c] += source[c]


embedding_backward_jit = njit(cache=True, nogil=True, error_model="numpy")(embedding_backward_loops)


def embedding_backward(dout, cache):
    """Numba twin of layers.embedding.embedding_backward: dout (B, T, C) -> dweight (V, C)."""
    ids, vocab_size = cache
    C = dout.shape[-1]
    dweight = np.zeros((vocab_size, C), dtype=dout.dtype)                 # (V, C)
    flat_ids = np.ascontiguousarray(ids.reshape(-1), dtype=np.int64)     # (N,)
    run_tasks(embedding_backward_jit, (C + COLUMN_CHUNK - 1) // COLUMN_CHUNK, flat_ids,
              np.ascontiguousarray(dout.reshape(-1, C)), dweight, work_ns=NS_PER_ENTRY * flat_ids.size * C)
    return dweight
