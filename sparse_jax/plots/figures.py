"""Every figure: the Fig. 2 scatter, walk grids (Figs. 3/4), prediction curves (Fig. 5), A heat
maps (Fig. 6).

Each function takes NumPy arrays and returns a matplotlib `Figure` drawn on the Agg canvas; no
pyplot state is touched and nothing is written (save with `sparse_jax.core.atomic.save_figure`).

Size rules, so that a PNG shown at 100% is readable and fits a page: every text is at least
`MIN_FONT_PT` (11 px at DPI 100) and no figure is wider than `MAX_WIDTH_IN` (2,400 px).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparse_jax.core import images as images_lib

_PAD = 2  # pixels between tiles of a walk grid
DPI = 100
MIN_FONT_PT = 8.0  # 8 pt at 100 DPI is 11 px: the smallest text any figure uses
TITLE_FONT_PT = 10.0
MAX_WIDTH_IN = 24.0  # 2,400 px at 100 DPI
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINESTYLES = ("-", "--", "-.", ":")


def _figure(width: float, height: float, layout: str | None = None) -> Figure:
    fig = Figure(figsize=(min(width, MAX_WIDTH_IN), height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_display(images: np.ndarray) -> np.ndarray:
    """[..., C, H, W] in [-1, 1] -> [..., H, W, 3] in [0, 1] (1-channel images become gray)."""
    x = np.asarray(images, np.float32)
    if x.ndim < 3 or x.shape[-3] not in (1, 3):
        raise ValueError(f"images: expected [..., 1 or 3, H, W], got {x.shape}")
    x = np.clip((x + 1.0) * 0.5, 0.0, 1.0)
    x = np.moveaxis(x, -3, -1)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def mosaic(images: np.ndarray) -> np.ndarray:
    """[R, K, C, H, W] in [-1, 1] -> one [R*(H+pad)-pad, K*(W+pad)-pad, 3] image in [0, 1]."""
    x = np.asarray(images, np.float32)
    if x.ndim != 5:
        raise ValueError(f"images: expected [rows, cols, C, H, W], got {np.shape(images)}")
    rows, cols = x.shape[:2]
    to_display(x[:1, :1])  # validates the channel count with its message
    grid = images_lib.make_grid(x.reshape(rows * cols, *x.shape[2:]), ncols=cols, pad=_PAD)
    grid = grid[_PAD:-_PAD, _PAD:-_PAD].astype(np.float32) / 255.0
    return np.repeat(grid, 3, axis=-1) if grid.shape[-1] == 1 else grid


def walk_grid(images: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str],
              title: str = "", tile_inches: float = 0.6) -> Figure:
    """A walk grid: rows are directions (or methods), columns are distances.

    Args:
      images: [R, K, C, H, W] in [-1, 1].
      row_labels: R labels; col_labels: K labels.
      title: figure title.
      tile_inches: displayed size of one image.

    Returns:
      Figure.
    """
    images = np.asarray(images)
    if images.ndim != 5:
        raise ValueError(f"images: expected [rows, cols, C, H, W], got {images.shape}")
    rows, cols, _, h, w = images.shape
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ValueError(f"labels: expected {rows} row and {cols} column labels, got "
                         f"{len(row_labels)} and {len(col_labels)}")
    label_in = 0.08 * max([len(str(r)) for r in row_labels] + [1]) + 0.4
    tile_inches = min(tile_inches, (MAX_WIDTH_IN - label_in - 0.2) / cols)
    width = max(label_in + 0.2 + cols * tile_inches, 0.085 * len(title) + 0.6)
    fig = _figure(width, 1.0 + rows * tile_inches, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(mosaic(images), interpolation="nearest")
    ax.set_xticks([c * (w + _PAD) + w / 2 - 0.5 for c in range(cols)])
    ax.set_xticklabels(list(col_labels), fontsize=MIN_FONT_PT)
    ax.set_yticks([r * (h + _PAD) + h / 2 - 0.5 for r in range(rows)])
    ax.set_yticklabels(list(row_labels), fontsize=MIN_FONT_PT)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=TITLE_FONT_PT)
    return fig


def seed_walk_grid(images: np.ndarray, row_labels: Sequence[str], seed_labels: Sequence[str],
                   col_labels: Sequence[str], title: str = "", tile_inches: float = 0.5
                   ) -> Figure:
    """Walk grids of several seeds side by side: one column block per seed.

    Args:
      images: [R, S, K, C, H, W] in [-1, 1]: rows (directions or methods), seeds, distances.
      row_labels: R labels; seed_labels: S block titles; col_labels: K distance labels.

    Returns:
      Figure (one panel per seed, sharing the row labels).
    """
    images = np.asarray(images)
    if images.ndim != 6:
        raise ValueError(f"images: expected [rows, seeds, cols, C, H, W], got {images.shape}")
    rows, seeds, cols = images.shape[:3]
    if len(row_labels) != rows or len(seed_labels) != seeds or len(col_labels) != cols:
        raise ValueError(f"labels: expected {rows} row, {seeds} seed and {cols} column labels")
    label_in = 0.08 * max([len(str(r)) for r in row_labels] + [1]) + 0.4
    tile_inches = min(tile_inches, (MAX_WIDTH_IN - label_in - 0.3 * seeds) / (seeds * cols))
    width = label_in + seeds * (cols * tile_inches + 0.3)
    fig = _figure(width, 1.2 + rows * tile_inches, layout="constrained")
    axes = fig.subplots(1, seeds, squeeze=False)[0]
    h, w = images.shape[-2:]
    step = max(1, math.ceil(cols * 0.45 / max(cols * tile_inches, 1e-6)))  # labels that fit
    for s_i, ax in enumerate(axes):
        ax.imshow(mosaic(images[:, s_i]), interpolation="nearest")
        ticks = list(range(0, cols, step))
        ax.set_xticks([c * (w + _PAD) + w / 2 - 0.5 for c in ticks])
        ax.set_xticklabels([col_labels[c] for c in ticks], fontsize=MIN_FONT_PT)
        ax.set_yticks([r * (h + _PAD) + h / 2 - 0.5 for r in range(rows)])
        ax.set_yticklabels(list(row_labels) if s_i == 0 else [], fontsize=MIN_FONT_PT)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(seed_labels[s_i], fontsize=MIN_FONT_PT + 1)
    if title:
        fig.suptitle(title, fontsize=TITLE_FONT_PT)
    return fig


def curves_figure(distances: np.ndarray, curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  attribute_names: Sequence[str], xlabel: str = "W distance",
                  title: str = "") -> Figure:
    """Mean +- std of p_a along each attribute's direction, one panel per attribute.

    Each method is one line with its own colour, marker and dash; the std is drawn as error bars
    nudged sideways per method (no translucent bands that would hide each other).

    Args:
      distances: [T].
      curves: method -> (mean [A, T], std [A, T]); NaN rows are drawn as "n/a".
      attribute_names: A names.
      xlabel, title: axis label and figure title.

    Returns:
      Figure.
    """
    t = np.asarray(distances, np.float64)
    num_a = len(attribute_names)
    ncols = min(num_a, 4)
    nrows = math.ceil(num_a / ncols)
    fig = _figure(3.0 * ncols, 2.4 * nrows + 0.4, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for a, name in enumerate(attribute_names):
        ax = axes[a // ncols, a % ncols]
        span = float(t.max() - t.min()) or 1.0
        for i, (method, (mean, std)) in enumerate(curves.items()):
            m, s = np.asarray(mean)[a], np.asarray(std)[a]
            style = dict(color=f"C{i % 10}", marker=_MARKERS[i % len(_MARKERS)],
                         linestyle=_LINESTYLES[i % len(_LINESTYLES)], markersize=3.5,
                         linewidth=1.2)
            if np.isnan(m).all():
                ax.plot([], [], label=f"{method} (n/a)", **style)
                continue
            # The spread as error bars, each method nudged sideways so that none hides another.
            shift = (i - (len(curves) - 1) / 2) * 0.012 * span
            ax.errorbar(t + shift, m, yerr=s, capsize=2, elinewidth=0.8, label=method, **style)
        ax.axhline(0.5, color="gray", linewidth=0.6, linestyle=":")
        ax.set_title(name, fontsize=MIN_FONT_PT + 1)
        ax.set_ylim(-0.05, 1.05)
        if a // ncols == nrows - 1:
            ax.set_xlabel(xlabel, fontsize=MIN_FONT_PT)
        if a % ncols == 0:
            ax.set_ylabel("p", fontsize=MIN_FONT_PT)
        ax.tick_params(labelsize=MIN_FONT_PT)
    for a in range(num_a, nrows * ncols):
        axes[a // ncols, a % ncols].set_visible(False)
    axes[0, 0].legend(fontsize=MIN_FONT_PT, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=TITLE_FONT_PT)
    return fig


def heatmaps_figure(mats: Mapping[str, np.ndarray], attribute_names: Sequence[str],
                    scores: Mapping[str, float | None] | None = None) -> Figure:
    """The A matrices as heat maps, one panel per method, on a shared colour scale.

    Args:
      mats: method -> A [A, A] (row i: walking attribute i's direction; column j: |delta p_j|);
        NaN rows are shown blank.
      attribute_names: A names.
      scores: method -> S_d for the panel titles (None shows "n/a").

    Returns:
      Figure.
    """
    names = list(mats)
    num_a = len(attribute_names)
    finite = [np.asarray(m, np.float64)[np.isfinite(m)] for m in mats.values()]
    vmax = max([float(f.max()) for f in finite if f.size] + [1e-6])
    label_in = 0.085 * max([len(str(n)) for n in attribute_names] + [1]) + 0.5
    cell = min(0.45, (MAX_WIDTH_IN - 2.0 - label_in) / max(num_a, 1))
    panel = cell * num_a + label_in
    ncols = max(1, min(len(names), int((MAX_WIDTH_IN - 1.2) // panel)))
    nrows = math.ceil(len(names) / ncols)
    fig = _figure(panel * ncols + 1.2, (panel + 0.5) * nrows, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    show_numbers = cell >= 0.4  # "0.12" at MIN_FONT_PT needs about 0.35 in
    image = None
    for idx, method in enumerate(names):
        ax = axes[idx // ncols, idx % ncols]
        m = np.asarray(mats[method], np.float64)
        image = ax.imshow(np.ma.masked_invalid(m), vmin=0.0, vmax=vmax, cmap="viridis")
        for i in range(num_a):
            for j in range(num_a):
                if show_numbers and np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}"[1:] if 0 <= m[i, j] < 1 else f"{m[i, j]:.1f}",
                            ha="center", va="center", fontsize=MIN_FONT_PT,
                            color="white" if m[i, j] < 0.6 * vmax else "black")
        ax.set_xticks(range(num_a))
        ax.set_xticklabels(list(attribute_names), rotation=90, fontsize=MIN_FONT_PT)
        ax.set_yticks(range(num_a))
        ax.set_yticklabels(list(attribute_names) if idx % ncols == 0 else [],
                           fontsize=MIN_FONT_PT)
        ax.set_xlabel("attribute measured", fontsize=MIN_FONT_PT)
        if idx % ncols == 0:
            ax.set_ylabel("direction of attribute", fontsize=MIN_FONT_PT)
        label = ""
        if scores is not None:
            sd = scores.get(method)
            label = f"  S_d = {sd:.3f}" if sd is not None else "  S_d = n/a"
        ax.set_title(method + label, fontsize=MIN_FONT_PT + 1)
    for idx in range(len(names), nrows * ncols):
        axes[idx // ncols, idx % ncols].set_visible(False)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes.ravel()), shrink=0.8)
        bar.set_label("|Δp| at d_max", fontsize=MIN_FONT_PT)
        bar.ax.tick_params(labelsize=MIN_FONT_PT)
    return fig


def scatter_figure(panels: Sequence[tuple[str, np.ndarray]], labels: np.ndarray | None = None
                   ) -> Figure:
    """The paper's Fig. 2: one scatter panel per basis.

    Args:
      panels: [(title, scores [n, 2])]; an empty score array draws an empty panel.
      labels: [n] class of each point (coloured, with a legend) or None.
    """
    fig = _figure(4.2 * len(panels) + 1.0, 4.0, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, s) in zip(axes, panels, strict=True):
        ax.set_title(title, fontsize=TITLE_FONT_PT)
        ax.tick_params(labelsize=MIN_FONT_PT)
        if not len(s):
            continue
        if labels is None:
            ax.scatter(s[:, 0], s[:, 1], s=3, alpha=0.5)
        else:
            for i, value in enumerate(np.unique(labels)):
                sel = labels == value
                ax.scatter(s[sel, 0], s[sel, 1], s=3, alpha=0.6, color=f"C{i % 10}",
                           label=str(value))
        ax.axhline(0, color="0.7", lw=0.5)
        ax.axvline(0, color="0.7", lw=0.5)
        ax.set_xlabel("component 1 score", fontsize=MIN_FONT_PT + 1)
        ax.set_ylabel("component 2 score", fontsize=MIN_FONT_PT + 1)
    if labels is not None:
        axes[-1].legend(title="label", loc="center left", bbox_to_anchor=(1.0, 0.5),
                        markerscale=3, frameon=False, fontsize=MIN_FONT_PT,
                        title_fontsize=MIN_FONT_PT)
    return fig


def text_sizes_px(fig: Figure) -> list[tuple[str, float]]:
    """(text, height in px at the figure's DPI) of every visible, non-empty text of `fig`."""
    from matplotlib.text import Text

    fig.canvas.draw()  # tick labels exist only once drawn
    out = []
    for t in fig.findobj(Text):
        shown = t.get_visible() and (t.axes is None or t.axes.get_visible())
        if shown and t.get_text().strip():
            out.append((t.get_text(), t.get_fontsize() * fig.dpi / 72.0))
    return out


def sparsity_figure(zero_fraction: np.ndarray, efficiencies: Mapping[str, np.ndarray],
                    s_d: np.ndarray, title: str = "") -> Figure:
    """Efficiency and disentanglement against the fraction of zero SCA loadings (the sweep).

    Args:
      zero_fraction: [G] fraction of exactly zero loadings at each sweep point.
      efficiencies: label -> [G, 3] (value, low, high) per point, drawn in the left panel
        (e.g. the distance-to-effect efficiency and its smooth surrogate); NaN is skipped.
      s_d: [G, 3] (value, low, high) of S_d, drawn in the right panel.
      title: figure title.

    Returns:
      Figure.
    """
    x = 100.0 * np.asarray(zero_fraction, np.float64)
    fig = _figure(10.0, 3.8, layout="constrained")
    ax_e, ax_d = fig.subplots(1, 2)
    panels = [(ax_e, efficiencies, "efficiency (Δp per W unit)"),
              (ax_d, {"S_d": s_d}, "disentanglement S_d")]
    for ax, series, ylabel in panels:
        for i, (label, v) in enumerate(series.items()):
            v = np.asarray(v, np.float64)
            ok = np.isfinite(v[:, 0])
            err = np.abs(np.stack([v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]]))
            err = np.where(np.isfinite(err), err, 0.0)
            idx = i if ax is ax_e else 2
            ax.errorbar(x[ok], v[ok, 0], yerr=err[:, ok], capsize=3, elinewidth=0.9,
                        color=f"C{idx}", marker=_MARKERS[idx % len(_MARKERS)], markersize=4,
                        linestyle=_LINESTYLES[i % len(_LINESTYLES)], linewidth=1.2, label=label)
        ax.set_xlabel("zero loadings (%)", fontsize=MIN_FONT_PT + 1)
        ax.set_ylabel(ylabel, fontsize=MIN_FONT_PT + 1)
        ax.tick_params(labelsize=MIN_FONT_PT)
        ax.set_xlim(-3, 100)
        ax.grid(True, linewidth=0.4, alpha=0.5)
        ax.legend(fontsize=MIN_FONT_PT, loc="best")
    if title:
        fig.suptitle(title, fontsize=TITLE_FONT_PT)
    return fig
