"""Pictures of what a model does. Every function takes ax=None (or draws a new Figure), returns the
Figure, and never calls plt.show: save with fig.savefig(path), or let a notebook display it.

Figures are made with matplotlib.figure.Figure rather than pyplot, so nothing global changes and
no display is needed (it works on a headless machine and in tests).
"""
import numpy as np


def new_figure(width, height):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height))


def show_token(label):
    """Make whitespace visible in tick labels: '\\n' -> '\u21b5', ' ' -> '\u2423'."""
    return label.replace("\n", "\u21b5").replace(" ", "\u2423")


def plot_attention(weights, query_labels, key_labels, ax=None, title=None):
    """One attention matrix as a heat map. weights: (T, S), row t = how query t spread its attention
    over the S keys (rows sum to 1). Returns the Figure."""
    weights = np.asarray(weights)
    if weights.ndim != 2:
        raise ValueError(f"weights must be (T, S), got shape {weights.shape}")
    if weights.shape != (len(query_labels), len(key_labels)):
        raise ValueError(f"weights {weights.shape} do not match {len(query_labels)} query and "
                         f"{len(key_labels)} key labels")
    if ax is None:
        fig = new_figure(0.3 * len(key_labels) + 2, 0.3 * len(query_labels) + 1.5)
        ax = fig.subplots()
    fig = ax.figure
    ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(key_labels)), [show_token(k) for k in key_labels], fontsize=7, rotation=90)
    ax.set_yticks(range(len(query_labels)), [show_token(q) for q in query_labels], fontsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    return fig


def plot_attention_grid(maps, query_labels, key_labels, title=None, first_layer=0):
    """A grid of heat maps, one row per layer and one column per head. maps: [(H, T, S)] per layer."""
    n_layers, n_heads = len(maps), maps[0].shape[0]
    cell = 0.22 * max(len(key_labels), len(query_labels)) + 1.2
    fig = new_figure(cell * n_heads, cell * n_layers + 0.6)
    axes = np.atleast_2d(fig.subplots(n_layers, n_heads, squeeze=False))        # (L, H) of Axes
    for layer, layer_maps in enumerate(maps):
        for head in range(n_heads):
            plot_attention(layer_maps[head], query_labels, key_labels, ax=axes[layer, head],
                           title=f"layer {first_layer + layer}, head {head}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
