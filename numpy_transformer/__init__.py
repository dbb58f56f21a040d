"""numpy_transformer: the Transformer with hand-written forward and backward passes in NumPy."""
from . import runtime

# When we are imported first, before NumPy loads OpenBLAS: BLAS threads that sleep when idle instead of
# polling, and freed memory kept for reuse. Why, and what each setting was measured to gain:
# numpy_transformer/runtime.py and docs/kernels.md. A setting you make wins.
runtime.apply()

__version__ = "0.1.0"
