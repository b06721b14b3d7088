"""Bootstrap intervals over repeats and evaluation seeds; the classifier / generator check."""
import numpy as np
import pytest
from test_efficiency import SIGNS, _walk

from sparse_jax.evaluation import bootstrap, efficiency, metrics, run
from sparse_jax.models import classifier as clf
from sparse_jax.models import stylegan2 as sg


def _method_values(w_assign, w_eval, dirs, t, t_r):
    """(summary, SeedValues) of one method on the synthetic predictor of test_efficiency."""
    preds = np.concatenate([_walk(w_assign, dirs, t), _walk(w_eval, dirs, t)])
    asg = metrics.assign_directions(preds[:len(w_assign)], t)
    pairs, index = run.reach_walk_plan(asg.direction, asg.sign)
    reach = _walk(w_eval, np.stack([dirs[k] * SIGNS[g] for k, g in pairs]), t_r)[:, :, 0]
    summary = metrics.summarize_method(preds[:len(w_assign)], preds[len(w_assign):], t,
                                       ["a0", "a1"], reach_preds=reach, reach_distances=t_r,
                                       reach_index=index)
    return summary, bootstrap.seed_values(preds, t, len(w_assign), reach, t_r, index)


def _repeats(n_rep, noise=0.1):
    t = np.linspace(0.0, 2.0, 6)
    t_r = efficiency.reach_grid(2.0)
    e = np.eye(3)
    out, summaries = [], []
    for r in range(n_rep):
        rng = np.random.default_rng(r)
        wa, we = rng.normal(0, noise, (30, 3)), rng.normal(0, noise, (60, 3))
        fast = _method_values(wa, we, e[[0, 2]], t, t_r)
        slow = _method_values(wa, we, e[[1, 2]], t, t_r)
        same = _method_values(wa, we, e[[1, 2]], t, t_r)
        out.append({"fast": fast[1], "slow": slow[1], "same": same[1]})
        summaries.append({"fast": fast[0], "slow": slow[0]})
    return out, summaries


def test_numbers_on_all_seeds_reproduce_table1():
    values, summaries = _repeats(1)
    for m in ("fast", "slow"):
        got = bootstrap.numbers(values[0][m])
        s = summaries[0][m]
        assert got["efficiency"] == pytest.approx(s["efficiency"])
        assert got["S_e"] == pytest.approx(s["S_e"])
        assert got["S_d"] == pytest.approx(s["S_d"])


def test_intervals_and_paired_ratios():
    values, _ = _repeats(3)
    res = bootstrap.bootstrap(values, num_draws=200, seed=0,
                              ratios=[("fast", "slow"), ("slow", "same")])
    assert res["num_repeats"] == 3
    for m in ("fast", "slow"):
        for k in bootstrap.NUMBERS:
            e = res["methods"][m][k]
            assert e["low"] <= e["value"] <= e["high"], (m, k, e)
    fast_slow = res["ratios"]["fast/slow"]["efficiency"]
    # a0 is 10x faster, a1 walks the same direction in both: the mean over attributes is ~3x.
    assert fast_slow["value"] == pytest.approx(res["methods"]["fast"]["efficiency"]["value"]
                                               / res["methods"]["slow"]["efficiency"]["value"])
    assert fast_slow["value"] > 2.0 and fast_slow["excludes_1"] and fast_slow["low"] > 1
    # Identical methods: every paired draw gives exactly 1, so the ratio is not "higher".
    same = res["ratios"]["slow/same"]["efficiency"]
    assert same["value"] == 1.0 and not same["excludes_1"]
    md = bootstrap.markdown(res)
    assert "| fast/slow |" in md and "(higher)" in md and "(not significant)" in md
    again = bootstrap.bootstrap(values, num_draws=200, seed=0, ratios=[("fast", "slow")])
    assert again["methods"]["fast"] == res["methods"]["fast"]     # reproducible


def test_classifier_must_fit_the_generator():
    gen = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=32, img_channels=1)
    heads = (clf.Head("softmax", ("digit_0", "digit_1")),)
    run.check_classifier_fits(gen, clf.ClassifierConfig(heads=heads, resolution=32,
                                                        in_channels=1), "G", "C")
    rgb = clf.ClassifierConfig(heads=heads, resolution=64, in_channels=3)
    with pytest.raises(run.ClassifierMismatchError,
                       match=r"classifier C takes 64x64 images with 3 channel\(s\) but generator "
                             r"G makes 32x32 with 1.*--allow_classifier_mismatch"):
        run.check_classifier_fits(gen, rgb, "G", "C")
    run.check_classifier_fits(gen, rgb, "G", "C", allow_mismatch=True)
