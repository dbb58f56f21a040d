"""The Numba fast path, file for file beside the layers it speeds up.

    attention.py  fused attention forward (online softmax) and backward (recomputed weights),
                  block-by-tile products in BLAS
    linear.py     y = x W + b as ONE BLAS call over all rows, bias added in place (no Numba needed);
                  linear_many_* project q, k and v with one matmul (used by layers/multihead.py)
    embedding.py  the embedding's backward: column blocks per thread instead of np.add.at
    ffn.py        bias + activation fused around the BLAS matmuls, and its backward (erf, tanh and exp
                  built from arithmetic that vectorises; erf_fit.py fits and measures erf's tail polynomial)
    layernorm.py  LayerNorm forward and backward
    loss.py       softmax cross-entropy forward and backward
    optim.py      the Adam / AdamW update in one pass: of one parameter (Adam.update calls it), or of all of
                  them when they lie in one buffer (adam_update_segments, for Adam.update_all); add_scaled
                  adds the batch-splitting threads' gradients (parallel.py)
    threads.py    run_tasks: shares a kernel's independent tasks across threads
    matmul.py     a tiled matmul for teaching (not on the fast path)

Each function named like one in layers/ (attention_forward, linear_backward, ...) has the arguments,
outputs and cache of that NumPy twin, so numpy_transformer.backend can swap one for the other
(linear_many_* and the teaching matmul have no twin; optim.adam_update is the twin of the body of
optim.Adam.update, which calls it). Each kernel is a plain Python function
``*_loops`` compiled by alias (``*_jit = njit(...)(*_loops)``): set NUMBA_DISABLE_JIT=1 and the same
code runs as Python, which a debugger steps through.
"""
