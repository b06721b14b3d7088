"""Every figure is readable at 100% (text >= 10 px) and at most 2,400 px wide, at paper sizes."""
import chex
import numpy as np
import pytest

from sparse_jax.plots import figures as plots

METHODS = ["pca-w", "pca (GANSpace)", "sefa", "sca", "sca-w"]
NAMES = [f"digit_{i}" for i in range(10)] + ["thickness", "slant", "width"]


def _check(fig, max_width_px=2400, min_text_px=10.0):
    width_px = fig.get_figwidth() * fig.dpi
    assert width_px <= max_width_px, width_px
    sizes = plots.text_sizes_px(fig)
    assert sizes, "no text found"
    small = [(t, round(h, 1)) for t, h in sizes if h < min_text_px]
    assert not small, f"texts under {min_text_px} px: {small[:5]}"


@pytest.mark.parametrize("num_a", [3, 13, 40])
def test_heatmaps_fit_and_read(num_a):
    names = [f"attribute_{i}" for i in range(num_a)]
    rng = np.random.default_rng(0)
    mats = {m: rng.uniform(0, 1, (num_a, num_a)) for m in METHODS}
    fig = plots.heatmaps_figure(mats, names, {m: 0.5 for m in METHODS})
    _check(fig)
    numbers = [t for t, _ in plots.text_sizes_px(fig) if t.startswith(".")]
    if num_a <= 13:  # cell numbers are shown where they fit, at the minimum size
        assert len(numbers) == len(METHODS) * num_a * num_a


def test_curves_one_distinct_line_per_method():
    t = np.linspace(0, 5, 21)
    curves = {m: (np.tile(np.linspace(0, 1, 21), (13, 1)) * (i + 1) / 5, np.full((13, 21), 0.1))
              for i, m in enumerate(METHODS)}
    fig = plots.curves_figure(t, curves, NAMES, title="p along the direction")
    _check(fig)
    ax = fig.axes[0]
    lines = {c.get_label(): c.lines[0] for c in ax.containers}
    assert sorted(lines) == sorted(METHODS)
    styles = {(ln.get_color(), ln.get_marker(), ln.get_linestyle()) for ln in lines.values()}
    assert len(styles) == len(METHODS)
    assert not ax.collections or all(c.get_alpha() in (None, 1.0) for c in ax.collections
                                     if type(c).__name__ == "PolyCollection")


def test_seed_walk_grid_covers_every_direction_and_seed():
    images = np.zeros((10, 3, 9, 1, 32, 32))
    fig = plots.seed_walk_grid(images, [f"d{i}" for i in range(10)], ["seed 0", "seed 1", "seed 2"],
                               [f"{c:+.2g}" for c in np.linspace(-3, 3, 9)], title="sca")
    _check(fig)
    chex.assert_equal(len([a for a in fig.axes if a.get_visible()]), 3)
    wide = plots.seed_walk_grid(np.zeros((2, 4, 40, 1, 8, 8)), ["a", "b"], list("wxyz"),
                                [str(i) for i in range(40)])
    _check(wide)


def test_walk_grid_and_scatter_read():
    fig = plots.walk_grid(np.zeros((13, 11, 1, 32, 32)), NAMES, [f"{t:.2g}" for t in range(11)],
                          title="assigned direction per attribute")
    _check(fig)
    s = np.random.default_rng(0).standard_normal((100, 2))
    _check(plots.scatter_figure([("pca", s), ("sca", s)], np.arange(100) % 10))


def test_checker_sees_small_text():
    fig = plots.walk_grid(np.zeros((1, 2, 1, 8, 8)), ["a"], ["0", "1"])
    fig.axes[0].set_title("tiny", fontsize=5)
    with pytest.raises(AssertionError, match="tiny"):
        _check(fig)
