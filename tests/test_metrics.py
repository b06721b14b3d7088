"""Tests for sparse_jax.metrics on hand-made prediction arrays with known answers."""
import json
import math

import numpy as np
import pytest

from sparse_jax.evaluation import metrics

DIST = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
# slopes[d, g, a]: p_a changes linearly by slope * t along direction d with sign g.
SLOPES = np.array([
    [[0.3, 0.05, 0.15], [-0.3, -0.05, -0.15]],
    [[0.1, 0.05, 0.1], [-0.1, -0.05, -0.1]],
    [[-0.05, -0.1, -0.05], [0.05, 0.1, 0.05]],
])
# base[s, a] = p_a(0) for each seed.
BASE_EVAL = np.array([
    [0.05, 0.1, 0.55],
    [0.15, 0.6, 0.6],
    [0.85, 0.2, 0.65],
    [0.25, 0.3, 0.7],
])
BASE_ASSIGN = BASE_EVAL.copy()
BASE_ASSIGN[0, 2] = 0.3  # attribute 2 has one negative seed in the assignment set only
NAMES = ["zero", "one", "two"]


def _preds(base):
    p = base[:, None, None, None, :] + SLOPES[None, :, :, None, :] * DIST[None, None, None, :, None]
    return np.clip(p, 0.0, 1.0)


def test_assignment_picks_best_direction_and_sign():
    asg = metrics.assign_directions(_preds(BASE_ASSIGN), DIST)
    np.testing.assert_array_equal(asg.direction, [0, 2, 0])
    np.testing.assert_array_equal(asg.sign, [0, 1, 0])
    np.testing.assert_allclose(asg.gain, [0.6, 0.2, 0.3])
    np.testing.assert_array_equal(asg.num_negative, [3, 3, 1])


def test_assignment_without_negative_seeds_is_unassigned():
    asg = metrics.assign_directions(_preds(BASE_EVAL), DIST)
    assert asg.direction[2] == -1 and asg.sign[2] == -1
    assert math.isnan(asg.gain[2])


def test_assignment_ties_go_to_lowest_direction_then_first_sign():
    p = np.full((2, 3, 2, 2, 1), 0.2)
    p[:, 1:, :, 1, 0] = 0.7  # directions 1 and 2, both signs, gain 0.5
    asg = metrics.assign_directions(p, [0.0, 1.0])
    assert (asg.direction[0], asg.sign[0]) == (1, 0)


def test_efficiency_d50_and_disentanglement():
    asg = metrics.assign_directions(_preds(BASE_ASSIGN), DIST)
    pe = _preds(BASE_EVAL)
    s_e, n_neg = metrics.efficiency(pe, DIST, asg)
    np.testing.assert_allclose(s_e[:2], [0.3, 0.1])
    assert math.isnan(s_e[2])
    np.testing.assert_array_equal(n_neg, [3, 3, 0])
    d = metrics.d50(pe, DIST, asg)
    # attribute 0: mean p0 over its negatives = 0.15 + 0.3 t, reaches 0.5 first at t=1.5;
    # attribute 1: 0.2 + 0.1 t stays below 0.5.
    assert d[0] == 1.5 and np.isinf(d[1]) and math.isnan(d[2])
    mat = metrics.disentanglement_matrix(pe, DIST, asg)
    np.testing.assert_allclose(mat[:2], [[0.6, 0.1, 0.3], [0.1, 0.2, 0.1]], atol=1e-12)
    assert np.isnan(mat[2]).all()
    assert metrics.disentanglement_score(mat) == pytest.approx(0.8 / 1.4)


def test_curves_mean_and_std():
    asg = metrics.assign_directions(_preds(BASE_ASSIGN), DIST)
    mean, std = metrics.curves(_preds(BASE_EVAL), DIST, asg)
    np.testing.assert_allclose(mean[0], 0.15 + 0.3 * DIST)
    np.testing.assert_allclose(std[0], np.std([0.05, 0.15, 0.25]) * np.ones(5))
    assert np.isnan(mean[2]).all()


@pytest.mark.parametrize("values,expected", [
    ([1.0, 2.0, np.inf], 2.0),
    ([1.0, 3.0], 2.0),
    ([1.0, np.inf], np.inf),
    ([np.nan, 4.0], 4.0),
    ([np.nan], np.nan),
])
def test_median_d50(values, expected):
    got = metrics.median_d50(values)
    if np.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected


def test_disentanglement_score_edge_cases():
    assert math.isnan(metrics.disentanglement_score(np.full((2, 2), np.nan)))
    assert math.isnan(metrics.disentanglement_score(np.zeros((2, 2))))
    assert metrics.disentanglement_score(np.eye(3)) == 1.0


def test_summary_and_table():
    summary = metrics.summarize_method(_preds(BASE_ASSIGN), _preds(BASE_EVAL), DIST, NAMES,
                                       lat_stdev=[0.5, 1.0, 2.0])
    assert summary["S_e"] == pytest.approx(0.2)
    assert summary["S_d"] == pytest.approx(0.8 / 1.4)
    assert summary["median_d50"] is None and summary["median_d50_status"] == "not reached"
    assert summary["num_attributes_scored"] == 2
    zero, one, two = (summary["attributes"][n] for n in NAMES)
    assert zero["shared_with"] == ["two"] and two["shared_with"] == ["zero"]
    assert one["sign"] == -1 and one["direction"] == 2
    assert zero["d50_sigma"] == pytest.approx(3.0) and zero["d_max_sigma"] == pytest.approx(4.0)
    assert two["S_e"] is None and two["S_e_status"] == metrics.NA_NO_EVAL_SEED
    assert summary["distances_sigma"][2] == pytest.approx((DIST / 2.0).tolist())
    results = {"d_max": 2.0, "d_max_source": "test", "distances": DIST.tolist(),
               "methods": {"M1": summary, "M2": summary}}
    json.dumps(results, allow_nan=False)  # strict JSON: no NaN or inf anywhere
    md = metrics.table1_markdown(results)
    assert "| End-point S_e, paper-literal (Δp at d_max / d_max) | 0.200 | 0.200 |" in md
    assert summary["efficiency"] is None
    assert summary["efficiency_status"] == metrics.NA_NO_REACH_WALK
    assert "| Median d50 (W distance) | not reached | not reached |" in md
    assert "(shared with two)" in md and metrics.NA_NO_EVAL_SEED in md


def test_summary_unassigned_attribute():
    summary = metrics.summarize_method(_preds(BASE_EVAL), _preds(BASE_EVAL), DIST, NAMES)
    two = summary["attributes"]["two"]
    assert two["direction"] is None and two["S_e_status"] == metrics.NA_NO_ASSIGN_SEED
    assert two["d50_sigma"] is None


def test_no_negative_seed_anywhere():
    p = np.full((3, 2, 2, 3, 2), 0.9)
    summary = metrics.summarize_method(p, p, [0.0, 1.0, 2.0], ["a", "b"])
    assert summary["S_e"] is None and summary["S_d"] is None
    assert summary["S_d_status"] == metrics.NA_NO_EVAL_SEED
    assert "n/a" in metrics.table1_markdown(
        {"d_max": 2.0, "distances": [0, 1, 2], "methods": {"m": summary}})


@pytest.mark.parametrize("preds,dist,match", [
    (np.zeros((2, 1, 2, 3)), [0, 1, 2], "expected shape"),
    (np.zeros((2, 1, 2, 3, 1)), [0, 1], "distances: expected shape"),
    (np.zeros((2, 1, 2, 3, 1)), [0.5, 1, 2], "starting at 0"),
    (np.zeros((2, 1, 2, 3, 1)), [0, 2, 1], "increasing"),
    (np.full((2, 1, 2, 3, 1), 1.5), [0, 1, 2], r"\[0, 1\]"),
    (np.zeros((0, 1, 2, 3, 1)), [0, 1, 2], "no seeds"),
])
def test_bad_inputs(preds, dist, match):
    with pytest.raises(ValueError, match=match):
        metrics.assign_directions(preds, dist)


def test_summary_rejects_mismatched_names_and_stdev():
    p = _preds(BASE_EVAL)
    with pytest.raises(ValueError, match="attribute_names"):
        metrics.summarize_method(p, p, DIST, ["a"])
    with pytest.raises(ValueError, match="lat_stdev"):
        metrics.summarize_method(p, p, DIST, NAMES, lat_stdev=[1.0])


def test_plots_render_with_nan_rows(tmp_path):
    from sparse_jax.core import atomic
    from sparse_jax.plots import figures as plots

    asg = metrics.assign_directions(_preds(BASE_ASSIGN), DIST)
    mean, std = metrics.curves(_preds(BASE_EVAL), DIST, asg)
    mat = metrics.disentanglement_matrix(_preds(BASE_EVAL), DIST, asg)
    figs = {
        "curves.png": plots.curves_figure(DIST, {"M1": (mean, std), "M2": (mean, std)}, NAMES),
        "heat.png": plots.heatmaps_figure({"M1": mat, "M2": mat}, NAMES, {"M1": 0.5, "M2": None}),
        "grid.png": plots.walk_grid(np.zeros((2, 3, 1, 8, 8)), ["a", "b"], ["0", "1", "2"]),
    }
    for name, fig in figs.items():
        atomic.save_figure(str(tmp_path / name), fig)
        with open(tmp_path / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_mosaic_layout_and_bad_labels():
    from sparse_jax.plots import figures as plots

    images = np.full((2, 3, 1, 4, 4), -1.0)
    images[1, 2] = 1.0
    m = plots.mosaic(images)
    assert m.shape == (2 * 4 + 2, 3 * 4 + 2 * 2, 3)
    np.testing.assert_array_equal(m[-4:, -4:], 1.0)   # last tile white
    np.testing.assert_array_equal(m[:4, :4], 0.0)     # first tile black
    with pytest.raises(ValueError, match="labels"):
        plots.walk_grid(images, ["a"], ["0", "1", "2"])
    with pytest.raises(ValueError, match="1 or 3"):
        plots.to_display(np.zeros((2, 2, 4, 4)))
