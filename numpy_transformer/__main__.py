"""`python -m numpy_transformer ...`: see numpy_transformer/cli.py, or run with --help.

BLAS threads: OpenBLAS uses every core unless you set OPENBLAS_NUM_THREADS. The package, imported
before this module and before NumPy, makes its idle threads sleep at once (runtime.py,
OPENBLAS_THREAD_TIMEOUT=4).
Before that setting, two BLAS threads crawled whenever another process held a core (150-1,900
tokens/s against 5,000-12,000 with one), and this entry point forced one thread. With it, on the
project's 2-core machine: 150 default pretrain steps in 17.6 s with 2 threads against 30.4 s with 1
(same losses), and with a busy-looping process on one core the reference step took 213-217 ms with
2 threads against 220-228 ms with 1. `OPENBLAS_NUM_THREADS=1 python -m numpy_transformer ...` still
chooses one.
"""
import sys

from .cli import main   # the package's __init__ (and its thread settings) ran before this module

if __name__ == "__main__":
    sys.exit(main())
