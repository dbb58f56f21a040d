"""numpy_transformer: the Transformer with hand-written forward and backward passes in NumPy."""
import os

# Before Numba can start its OpenMP workers: let them sleep when a parallel loop ends instead of
# spinning, so the BLAS call that follows gets both cores (see numpy_transformer/backend.py and
# docs/kernels.md; a setting you make yourself wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The same for OpenBLAS, read when NumPy is first imported: after each call its idle threads keep
# polling for 2^28 clock cycles (~0.1 s) by default, which is most of the time between two matmuls
# of a training step, so the Numba kernel in between found its cores taken. 2^4 cycles: they go to
# sleep at once (measured on the reference step: 123-147 ms instead of 154-225 ms; the benchmark
# compares both). Like the line above, it only takes effect if NumPy was not imported yet.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
