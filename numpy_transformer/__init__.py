"""numpy_transformer: the Transformer with hand-written forward and backward passes in NumPy."""
import os

# Before Numba can start its OpenMP workers: let them sleep when a parallel loop ends instead of
# spinning, so the BLAS call that follows gets both cores (see numpy_transformer/backend.py and
# docs/kernels.md; a setting you make yourself wins).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
