"""`python -m numpy_transformer ...`: see numpy_transformer/cli.py, or run with --help.

BLAS threads: the command line runs OpenBLAS on ONE thread unless you set OPENBLAS_NUM_THREADS
yourself. Measured on the project's 2-core machine while other processes kept a core busy, the
default pretrain ran at 150-1,900 tokens/s with 2 BLAS threads (each thread waits for a core the
other process holds) against 5,000-12,000 with 1. On a quiet machine 2 threads gained little for
this model size (default pretrain: 108 s with 2 threads, 113 s with 1, the same losses bit for bit);
to use them: `OPENBLAS_NUM_THREADS=2 python -m numpy_transformer pretrain`.
"""
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # read by OpenBLAS when numpy is first imported

from .cli import main  # noqa: E402  (numpy is imported here, after the thread setting)

if __name__ == "__main__":
    sys.exit(main())
