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
    standalone = ax is None
    if standalone:
        fig = new_figure(0.3 * len(key_labels) + 2.6, 0.3 * len(query_labels) + 1.8)
        ax = fig.subplots()
    fig = ax.figure
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    if standalone:                                     # a grid's panels stay uncluttered
        ax.set_xlabel("key (attended to)", fontsize=8)
        ax.set_ylabel("query", fontsize=8)
        fig.colorbar(image, ax=ax, label="weight")
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


def plot_cross_attention(weights, target_labels, source_labels, ax=None, title=None):
    """Cross-attention of an encoder-decoder: rows are target positions (queries), columns source
    positions (keys). weights: (T, S). For the reverse task a trained model shows an anti-diagonal."""
    fig = plot_attention(weights, target_labels, source_labels, ax=ax, title=title)
    ax = fig.axes[0] if ax is None else ax
    ax.set_xlabel("source position (key)", fontsize=8)
    ax.set_ylabel("target position (query)", fontsize=8)
    return fig


def plot_positional_encoding(table, ax=None, title="sinusoidal positional encoding"):
    """The (max_len, C) table as an image: position across, dimension down."""
    table = np.asarray(table)
    if ax is None:
        fig = new_figure(7, 3)
        ax = fig.subplots()
    image = ax.imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    ax.set_xlabel("position")
    ax.set_ylabel("dimension")
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(image, ax=ax)
    return ax.figure


def attention_entropy(weights):
    """Entropy in nats of each query's attention distribution, averaged over queries and batch.

    weights: (B, H, T, S) -> (H,). 0 means every query looks at exactly one key; ln(S) means a
    uniform spread. Masked (zero) weights contribute nothing (0 log 0 = 0).
    """
    weights = np.asarray(weights, dtype=np.float64)
    logs = np.log(np.where(weights > 0, weights, 1.0))                 # (B, H, T, S), 0 where weight 0
    per_query = -(weights * logs).sum(axis=-1)                          # (B, H, T)
    return per_query.mean(axis=(0, 2))                                  # (H,)


def plot_head_entropy(entropies, ax=None, title="attention entropy per head"):
    """Bar chart of per-head entropies: entropies is [(H,)] per layer (from attention_entropy)."""
    entropies = [np.asarray(e) for e in entropies]
    if ax is None:
        fig = new_figure(1.2 + 0.5 * sum(len(e) for e in entropies), 2.8)
        ax = fig.subplots()
    labels, values = [], []
    for layer, layer_entropy in enumerate(entropies):
        for head, value in enumerate(layer_entropy):
            labels.append(f"L{layer}H{head}")
            values.append(value)
    ax.bar(range(len(values)), values, color="tab:blue")
    ax.set_xticks(range(len(values)), labels, fontsize=7, rotation=90)
    ax.set_ylabel("nats")
    ax.set_title(title, fontsize=9)
    return ax.figure


def plot_attention_over_training(snapshots, query_labels, key_labels, title=None):
    """Small multiples: one attention matrix per training step. snapshots: [(step, (T, S) weights)]."""
    n = len(snapshots)
    fig = new_figure(2.1 * n, 2.6)
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)[0])
    for ax, (step, weights) in zip(axes, snapshots):
        plot_attention(weights, query_labels, key_labels, ax=ax, title=f"step {step}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_loss_curves(history, ax=None, smooth=20, title="loss"):
    """Training loss (smoothed) and validation loss against step, from a TrainResult.history."""
    train_steps = [r["step"] for r in history if "loss" in r]
    train_loss = np.array([r["loss"] for r in history if "loss" in r])
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    if ax is None:
        fig = new_figure(5, 3)
        ax = fig.subplots()
    if len(train_loss):
        window = max(1, min(smooth, len(train_loss)))
        smoothed = np.convolve(train_loss, np.ones(window) / window, mode="valid")
        ax.plot(train_steps[window - 1:], smoothed, label=f"train (mean of {window})")
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return ax.figure


def attention_explorer(maps, query_labels, key_labels):
    """An interactive viewer for a notebook: pick the layer and the head with sliders.

    maps: [(H, T, S)] per layer (one batch entry). Uses ipywidgets, which ships its JavaScript with
    the Jupyter install: it works offline, no CDN. Returns the widget (display it as a cell's value).
    """
    import ipywidgets as widgets
    from IPython.display import display

    output = widgets.Output()
    layer_slider = widgets.IntSlider(value=0, min=0, max=len(maps) - 1, description="layer")
    head_slider = widgets.IntSlider(value=0, min=0, max=maps[0].shape[0] - 1, description="head")

    def redraw(change=None):
        output.clear_output(wait=True)
        with output:
            layer, head = layer_slider.value, head_slider.value
            display(plot_attention(maps[layer][head], query_labels, key_labels,
                                   title=f"layer {layer}, head {head}"))

    layer_slider.observe(redraw, names="value")
    head_slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([layer_slider, head_slider]), output])


def save_figure(fig, path):
    """Save as PNG or SVG (by the file's suffix), atomically: a failed save leaves no half file."""
    from pathlib import Path

    from .atomic import atomic_open
    path = Path(path)
    file_format = path.suffix.lower().lstrip(".")
    if file_format not in ("png", "svg"):
        raise ValueError(f"figures are saved as .png or .svg, got {path.name!r}")
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format=file_format, dpi=150, bbox_inches="tight")
    return path
