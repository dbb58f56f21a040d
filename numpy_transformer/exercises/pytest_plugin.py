"""A pytest plugin (loaded from pyproject.toml) for the course kit.

- Registers one marker per exercise (ex01 ... ex14): ``pytest -m ex07`` runs the tests of exercise 07.
- In a student copy, a test that fails only because it reached an unwritten exercise (the stub's
  NotImplementedError) is reported as SKIPPED "needs exercise NN-name" instead of failing, so every
  test that does not depend on an exercise still has to pass. ``--strict-exercises`` turns this off.
- Sets NUMPY_TRANSFORMER_NOTEBOOK_QUICK=1 (unless already set) so the notebooks that train for minutes
  run with fewer steps when the suite executes them; a person running a notebook gets the full run.
- Sets OPENBLAS_NUM_THREADS=1 (unless already set) for the processes the suite starts (notebook
  kernels, the command line): the tests' matrices are tiny, and two BLAS threads on a busy 2-core
  machine were measured up to 4x slower than one (the command line makes the same choice).
"""
import os
import re

import pytest

from .registry import LADDER

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# the stub's exception, or the command line's one-line report of it (a test running the CLI)
STUB = re.compile(r"(?:NotImplementedError: '?|error: )exercise (\d\d-[a-z0-9-]+) is yours to write")


def pytest_addoption(parser):
    parser.addoption("--strict-exercises", action="store_true",
                     help="report unwritten exercises as failures instead of skips")


def pytest_configure(config):
    os.environ.setdefault("NUMPY_TRANSFORMER_NOTEBOOK_QUICK", "1")      # inherited by notebook kernels
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")                  # ... and by every subprocess
    for exercise in LADDER:
        config.addinivalue_line("markers", f"{exercise.marker}: tests of exercise {exercise.id} ({exercise.title})")


def pytest_runtest_setup(item):
    """Record which exercises a test belongs to (it shows in --junitxml reports)."""
    numbers = [m.name for m in item.iter_markers() if re.fullmatch(r"ex\d\d", m.name)]
    if numbers:
        item.user_properties.append(("exercises", ",".join(numbers)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed or item.config.getoption("--strict-exercises"):
        return
    text = ANSI.sub("", str(report.longrepr))          # notebook reports come coloured
    stub = STUB.search(text)
    if stub:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"needs exercise {stub.group(1)}")
