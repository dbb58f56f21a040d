"""The teaching matmul (kernels/matmul.py) on shapes that cross its tile edges.

Its blocks are MC x KC of A and KC x NC of B, zero-padded to whole 4 x 4 micro-steps; these shapes
leave partial tiles, partial slices of k and padded rows/steps, in both dtypes.
"""
import numpy as np
import pytest

from numpy_transformer.kernels import matmul as matmul_kernels
from numpy_transformer.kernels.matmul import matmul_tiled, matmul_tiled_jit, tile_count

MC, NC, KC = matmul_kernels.MC, matmul_kernels.NC, matmul_kernels.KC

SHAPES = [(37, 53, 21), (1, 1, 1), (3, 2, 5), (MC + 3, KC + 5, 9), (5, 7, NC + 3), (MC, 8, NC), (2, 0, 3)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_blas(shape, dtype, rng):
    M, K, N = shape
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    c = matmul_tiled(a, b)
    assert c.dtype == dtype and c.shape == (M, N)
    reference = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 2e-5 * max(1.0, np.sqrt(K))
    np.testing.assert_allclose(c, reference, rtol=tol, atol=tol)


def test_jitted_equals_python_across_tile_edges(rng):
    """Bit for bit in float64, with a partial slice of k and padded rows (small enough for Python)."""
    a, b = rng.standard_normal((MC + 3, KC + 5)), rng.standard_normal((KC + 5, 19))
    compiled, python = np.zeros((MC + 3, 19)), np.zeros((MC + 3, 19))
    tiles = tile_count(MC + 3, 19)                      # 2: a full tile of rows and 3 rows more
    assert tiles == 2
    matmul_tiled_jit(0, tiles, a, b, compiled)
    getattr(matmul_tiled_jit, "py_func", matmul_tiled_jit)(0, tiles, a, b, python)
    np.testing.assert_allclose(compiled, a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(compiled, python)


def test_non_contiguous_inputs_and_overwrite(rng):
    a = rng.standard_normal((40, 60))[:, ::2]          # (40, 30), every other column
    b = rng.standard_normal((30, 50))
    np.testing.assert_allclose(matmul_tiled(a, b), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(matmul_tiled(b.T, a.T), (a @ b).T, rtol=1e-12, atol=1e-12)
    c = np.full((40, 50), np.nan)                       # the kernel overwrites c, it does not add to it
    matmul_tiled_jit(0, 1, np.ascontiguousarray(a), b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-12, atol=1e-12)


def test_inf_stays_in_its_row_and_column():
    """Zero padding must not turn an inf into NaN anywhere: only its own row of c sees it."""
    a = np.ones((6, 5))
    b = np.ones((5, 7))
    a[2, 4] = np.inf
    c = matmul_tiled(a, b)
    assert np.all(np.isinf(c[2])) and np.all(np.isfinite(np.delete(c, 2, axis=0)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="cannot multiply"):
        matmul_tiled(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="dtypes differ"):
        matmul_tiled(np.ones((2, 3)), np.ones((3, 2), dtype=np.float32))
