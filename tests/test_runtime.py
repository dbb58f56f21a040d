"""The process settings numpy_transformer applies on import (numpy_transformer/runtime.py)."""
import json
import subprocess
import sys

import pytest

from numpy_transformer import runtime

SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")   # OpenMP's: must stay untouched
REPORT = f"import json, os, numpy_transformer; print(json.dumps({{k: os.environ.get(k) for k in {SETTINGS}}}))"


def environment_after_import(**env):
    """The environment settings as a fresh interpreter sees them after `import numpy_transformer`."""
    import os
    child_env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    child_env.update(env)
    out = subprocess.run([sys.executable, "-c", REPORT], env=child_env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_sets_sleeping_blas_threads_unless_the_user_chose():
    # no OpenMP setting: nothing in the package uses OpenMP (the kernels run on their own threads),
    # and another library in the same process (torch) keeps its own defaults
    assert environment_after_import() == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None,
                                          "OPENBLAS_THREAD_TIMEOUT": "4"}
    assert environment_after_import(OPENBLAS_THREAD_TIMEOUT="28")["OPENBLAS_THREAD_TIMEOUT"] == "28"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keep_freed_memory_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("NUMPY_TRANSFORMER_KEEP_FREED_MEMORY", "0")
    assert runtime.keep_freed_memory() is False
    monkeypatch.delenv("NUMPY_TRANSFORMER_KEEP_FREED_MEMORY")
    assert runtime.keep_freed_memory() is True
