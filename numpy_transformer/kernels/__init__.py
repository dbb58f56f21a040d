"""The Numba fast path, file for file beside the layers it speeds up.

    attention.py  fused attention forward (online softmax) and backward (recomputed weights),
                  block-by-tile products in BLAS
    linear.py     y = x W + b as ONE BLAS call over all rows, bias added in place (no Numba needed)
    ffn.py        bias + activation fused around the BLAS matmuls, and its backward
    layernorm.py  LayerNorm forward and backward
    loss.py       softmax cross-entropy forward and backward
    matmul.py     a tiled matmul for teaching (not on the fast path)

Each public function has the name, arguments, outputs and cache of its NumPy twin in layers/, so
numpy_transformer.backend can swap one for the other. Each kernel is a plain Python function
``*_loops`` compiled by alias (``*_jit = njit(...)(*_loops)``): set NUMBA_DISABLE_JIT=1 and the same
code runs as Python, which a debugger steps through.
"""
