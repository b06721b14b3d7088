"""Figures: walk grids (paper Figs. 3/4), prediction curves (Fig. 5), A heat maps (Fig. 6).

Each function takes NumPy arrays and returns a matplotlib `Figure` drawn on the Agg canvas; no
pyplot state is touched and nothing is written (save with `sparse_jax.io.save_figure`).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sparse_jax.core import images as images_lib

_PAD = 2  # pixels between tiles of a walk grid


def _figure(width: float, height: float, layout: str | None = None) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
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
    width = max(1.6 + cols * tile_inches, 0.075 * len(title) + 0.6)
    fig = _figure(width, 0.9 + rows * tile_inches, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(mosaic(images), interpolation="nearest")
    ax.set_xticks([c * (w + _PAD) + w / 2 - 0.5 for c in range(cols)])
    ax.set_xticklabels(list(col_labels), fontsize=7)
    ax.set_yticks([r * (h + _PAD) + h / 2 - 0.5 for r in range(rows)])
    ax.set_yticklabels(list(row_labels), fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def curves_figure(distances: np.ndarray, curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                  attribute_names: Sequence[str], xlabel: str = "W distance",
                  title: str = "") -> Figure:
    """Mean +- std of p_a along each attribute's direction, one panel per attribute.

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
        for method, (mean, std) in curves.items():
            m, s = np.asarray(mean)[a], np.asarray(std)[a]
            if np.isnan(m).all():
                ax.plot([], [], label=f"{method} (n/a)")
                continue
            (line,) = ax.plot(t, m, label=method)
            ax.fill_between(t, m - s, m + s, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axhline(0.5, color="gray", linewidth=0.6, linestyle=":")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(-0.02, 1.02)
        if a // ncols == nrows - 1:
            ax.set_xlabel(xlabel, fontsize=8)
        if a % ncols == 0:
            ax.set_ylabel("p", fontsize=8)
        ax.tick_params(labelsize=7)
    for a in range(num_a, nrows * ncols):
        axes[a // ncols, a % ncols].set_visible(False)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
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
    size = 0.45 * num_a + 1.5
    fig = _figure(size * len(names) + 1.0, size + 0.6, layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    image = None
    for ax, method in zip(axes, names, strict=True):
        m = np.asarray(mats[method], np.float64)
        image = ax.imshow(np.ma.masked_invalid(m), vmin=0.0, vmax=vmax, cmap="viridis")
        for i in range(num_a):
            for j in range(num_a):
                if np.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if m[i, j] < 0.6 * vmax else "black")
        ax.set_xticks(range(num_a))
        ax.set_xticklabels(list(attribute_names), rotation=90, fontsize=7)
        ax.set_yticks(range(num_a))
        ax.set_yticklabels(list(attribute_names) if ax is axes[0] else [], fontsize=7)
        ax.set_xlabel("attribute measured", fontsize=8)
        if ax is axes[0]:
            ax.set_ylabel("direction of attribute", fontsize=8)
        label = ""
        if scores is not None:
            s = scores.get(method)
            label = f"  S_d = {s:.3f}" if s is not None else "  S_d = n/a"
        ax.set_title(method + label, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="|Δp| at d_max")
    return fig


def scatter_figure(panels: Sequence[tuple[str, np.ndarray]], labels: np.ndarray | None = None
                   ) -> Figure:
    """The paper's Fig. 2: one scatter panel per basis.

    Args:
      panels: [(title, scores [n, 2])]; an empty score array draws an empty panel.
      labels: [n] class of each point (coloured, with a legend) or None.
    """
    fig = Figure(figsize=(4.2 * len(panels) + 1.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, s) in zip(axes, panels, strict=True):
        ax.set_title(title)
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
        ax.set_xlabel("component 1 score")
        ax.set_ylabel("component 2 score")
    if labels is not None:
        axes[-1].legend(title="label", loc="center left", bbox_to_anchor=(1.0, 0.5),
                        markerscale=3, frameon=False)
    return fig
