"""Shared test helpers: a gradient-check assertion that prints its report, and the session's worst error."""
import numpy as np
import pytest

GRADCHECK_TOL = 1e-7          # relative error a correct float64 backward reaches easily (see gradcheck.py)
_worst = {"rel_error": 0.0, "where": ""}


def assert_gradcheck(report, tol=GRADCHECK_TOL, where=""):
    """Fail with the whole per-parameter table when any relative error exceeds tol."""
    if report.max_rel_error > _worst["rel_error"]:
        _worst["rel_error"], _worst["where"] = report.max_rel_error, f"{where} {report.worst().name}"
    assert report.rows, "the gradient check compared nothing"
    assert report.passed(tol), f"gradient check failed (tol {tol:.0e}):\n{report}"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_terminal_summary(terminalreporter):
    if _worst["where"]:
        terminalreporter.write_line(
            f"largest gradient-check relative error: {_worst['rel_error']:.2e} ({_worst['where'].strip()})")
