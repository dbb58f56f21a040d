"""The one switch between the NumPy reference and the Numba kernels.

    NUMPY_TRANSFORMER_BACKEND=numpy python train.py     # the environment variable, read at import
    backend.set_backend("numba"); backend.get_backend()  # a function
    with backend.use_backend("numpy"): ...              # a context manager, restores the old one

"numba" is the default when Numba imports; "numpy" is always available. The layer shells ask
``backend.dispatch(f)`` for the function to call: ``f`` itself (a pure NumPy function from layers/)
on "numpy", or its twin of the same name in numpy_transformer/kernels/ on "numba". Twins take the
same arguments and return the same outputs and cache, so a forward on one backend can feed the
backward of the other.

Threads and memory: the kernels (on their own threads, kernels/threads.py) and OpenBLAS's matmuls
take turns on the same cores, so idle threads of either must sleep rather than spin, and NumPy's
temporaries should reuse freed memory. numpy_transformer/runtime.py makes the settings this needs on
import (each measured; a value you set yourself wins); ``python -m numpy_transformer.bench``
measures the step with each of them undone, and with the kernels on one thread.
"""
import importlib
import os
from contextlib import contextmanager
from pathlib import Path

BACKENDS = ("numba", "numpy")
ENV_VAR = "NUMPY_TRANSFORMER_BACKEND"


def numba_available():
    """True when Numba imports and the kernels are present (it is in requirements.txt, but the
    reference never needs it; the course kit's student copy leaves the kernels out)."""
    if not (Path(__file__).resolve().parent / "kernels" / "__init__.py").exists():
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def check_backend(name):
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is unknown; choose one of {BACKENDS}")
    if name == "numba" and not numba_available():
        raise ValueError("backend 'numba' needs Numba, which does not import here; use 'numpy'")
    return name


def default_backend():
    """The environment variable if set, else "numba" when it imports, else "numpy"."""
    requested = os.environ.get(ENV_VAR, "").strip().lower()
    if requested:
        return check_backend(requested)
    return "numba" if numba_available() else "numpy"


# The current backend: the only module-level state, changed only by the functions below.
_current = default_backend()


def get_backend():
    """"numba" or "numpy"."""
    return _current


def set_backend(name):
    """Switch every layer to the given backend ("numba" or "numpy") from the next forward on."""
    global _current
    _current = check_backend(name)


@contextmanager
def use_backend(name):
    """with use_backend("numpy"): ... runs the block on that backend and restores the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield name
    finally:
        set_backend(previous)


def dispatch(reference):
    """The function to call for ``reference`` (a pure function from numpy_transformer.layers).

    On "numpy": reference itself. On "numba": the function of the same name in the kernels module
    of the same name, e.g. layers.layernorm.layernorm_forward -> kernels.layernorm.layernorm_forward.
    """
    if _current == "numpy":
        return reference
    module_name = reference.__module__.rsplit(".", 1)[-1]          # "layernorm"
    kernels = importlib.import_module(f"numpy_transformer.kernels.{module_name}")
    return getattr(kernels, reference.__name__)
