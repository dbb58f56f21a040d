"""The plotting module: every function returns a Figure (no pyplot state), saves PNG and SVG, and
the per-head entropy is right on the two extreme cases."""
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

from numpy_transformer import viz
from numpy_transformer.layers import sinusoidal_encoding


def test_attention_plots_return_figures_and_save(tmp_path, rng):
    weights = rng.dirichlet(np.ones(5), size=4)                     # (T=4, S=5), rows sum to 1
    fig = viz.plot_cross_attention(weights, list("abcd"), list("vwxyz"), title="cross")
    assert isinstance(fig, Figure) and fig.axes[0].get_xlabel().startswith("source")
    for suffix in (".png", ".svg"):
        path = viz.save_figure(fig, tmp_path / f"cross{suffix}")
        assert path.stat().st_size > 1000
    grid = viz.plot_attention_grid([rng.dirichlet(np.ones(3), size=(2, 3))] * 2, list("abc"), list("abc"))
    assert len(grid.axes) == 4
    over = viz.plot_attention_over_training([(0, weights), (10, weights)], list("abcd"), list("vwxyz"))
    assert len(over.axes) == 2
    assert isinstance(viz.plot_positional_encoding(sinusoidal_encoding(20, 8)), Figure)


def test_attention_entropy_extremes():
    S = 6
    uniform = np.full((2, 3, 4, S), 1.0 / S)
    np.testing.assert_allclose(viz.attention_entropy(uniform), [math.log(S)] * 3)
    one_hot = np.zeros((2, 3, 4, S))
    one_hot[..., 2] = 1.0
    np.testing.assert_allclose(viz.attention_entropy(one_hot), [0.0] * 3)
    fig = viz.plot_head_entropy([viz.attention_entropy(uniform), viz.attention_entropy(one_hot)])
    assert len(fig.axes[0].patches) == 6


def test_loss_curves_from_a_history():
    history = [{"step": s, "loss": 3.0 / s} for s in range(1, 50)] + [{"step": 49, "val_loss": 0.1}]
    fig = viz.plot_loss_curves(history, smooth=5)
    assert len(fig.axes[0].lines) == 2


def test_bad_inputs_name_the_problem(tmp_path, rng):
    with pytest.raises(ValueError, match=r"weights must be \(T, S\)"):
        viz.plot_attention(np.ones(3), ["a"], ["b"])
    with pytest.raises(ValueError, match="do not match 2 query and 3 key labels"):
        viz.plot_attention(np.ones((2, 2)), ["a", "b"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="saved as .png or .svg, got 'plot.jpg'"):
        viz.save_figure(Figure(), tmp_path / "plot.jpg")


def test_explorer_builds_offline_widgets(rng):
    widgets = pytest.importorskip("ipywidgets")
    explorer = viz.attention_explorer([rng.dirichlet(np.ones(3), size=(2, 3))] * 2, list("abc"), list("abc"))
    assert isinstance(explorer, widgets.VBox)
    sliders = explorer.children[0].children
    assert [s.description for s in sliders] == ["layer", "head"] and sliders[0].max == 1
