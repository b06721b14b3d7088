"""The distance-to-effect efficiency (sparse_jax.evaluation.efficiency) and the device metrics
(sparse_jax.evaluation.device_metrics) against the NumPy oracle."""
import jax
import numpy as np
import pytest

from sparse_jax.evaluation import device_metrics, efficiency, metrics, run

SIGNS = np.array([1.0, -1.0])


def test_reach_distances_interpolates_and_flags_not_reached():
    t = np.array([0.0, 1.0, 2.0, 4.0])
    curves = np.array([
        [0.1, 0.3, 0.7, 0.9],   # rise 0.5 between t=1 (0.2) and t=2 (0.6): 1 + 0.3/0.4
        [0.2, 0.7, 0.8, 0.9],   # exactly 0.5 at t=1
        [0.0, 0.1, 0.2, 0.3],   # never
        [0.4, 0.3, 0.2, 1.0],   # falls first, then jumps: between t=2 and t=4
    ])
    d = efficiency.reach_distances(curves, t, 0.5)
    np.testing.assert_allclose(d[:2], [1.75, 1.0])
    assert np.isinf(d[2])
    np.testing.assert_allclose(d[3], 2.0 + 2.0 * (0.5 + 0.2) / 0.8)


def test_reach_grid():
    g = efficiency.reach_grid(2.0, 1 / 16, 4.0, 7)
    assert g[0] == 0.0 and g.size == 8
    np.testing.assert_allclose(g[1:], 2.0 * 2.0 ** np.arange(-4, 3))
    with pytest.raises(ValueError, match="reach grid"):
        efficiency.reach_grid(1.0, 2.0, 1.0, 5)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _predict(w):
    """A synthetic classifier on latents: attribute 0 grows 10x faster along e0 than along e1;
    attribute 1 depends on e2 only. w [..., 3] -> [..., 2]."""
    return np.stack([_sigmoid(20.0 * w[..., 0] + 2.0 * w[..., 1] - 3.0),
                     _sigmoid(4.0 * w[..., 2] - 2.0)], -1)


def _walk(w, dirs, t):
    """preds [S, D, G, T, A] of the predictor at w + sign * t * dir."""
    x = (w[:, None, None, None, :] + SIGNS[None, None, :, None, None]
         * t[None, None, None, :, None] * dirs[None, :, None, None, :])
    return _predict(x)


def _method(w_assign, w_eval, dirs, d_max, t_eval, t_reach):
    pa = _walk(w_assign, dirs, t_eval)
    pe = _walk(w_eval, dirs, t_eval)
    asg = metrics.assign_directions(pa, t_eval)
    pairs, index = run.reach_walk_plan(asg.direction, asg.sign)
    signed = np.stack([dirs[k] * SIGNS[g] for k, g in pairs])
    reach = _walk(w_eval, signed, t_reach)[:, :, 0]
    summary = metrics.summarize_method(pa, pe, t_eval, ["a0", "a1"], reach_preds=reach,
                                       reach_distances=t_reach, reach_index=index)
    return summary, (pa, pe, reach, index)


def test_ten_times_faster_direction_scores_ten_times_higher():
    rng = np.random.default_rng(0)
    w_assign, w_eval = rng.normal(0, 0.1, (40, 3)), rng.normal(0, 0.1, (200, 3))
    d_max = 2.0
    t_eval = np.linspace(0.0, d_max, 6)
    t_reach = efficiency.reach_grid(d_max)
    e = np.eye(3)
    fast, _ = _method(w_assign, w_eval, e[[0, 2]], d_max, t_eval, t_reach)
    slow, _ = _method(w_assign, w_eval, e[[1, 2]], d_max, t_eval, t_reach)
    f, s = fast["attributes"]["a0"], slow["attributes"]["a0"]
    assert (f["direction"], f["sign"]) == (0, 1) and (s["direction"], s["sign"]) == (0, 1)
    # Both reach the shift within the walk, on every negative seed.
    assert f["reached_fraction"] == 1.0 and s["reached_fraction"] == 1.0
    assert s["reach_distance"] < d_max < t_reach[-1]
    ratio = f["efficiency"] / s["efficiency"]
    assert 9.5 < ratio < 10.5, ratio
    assert 9.5 < s["reach_distance"] / f["reach_distance"] < 10.5
    # The end-point S_e saturates: the fast direction scores less than twice the slow one.
    assert 1.0 < f["S_e"] / s["S_e"] < 2.0, (f["S_e"], s["S_e"])
    # Attribute 1 walks the same direction in both methods: the same numbers.
    assert fast["attributes"]["a1"]["efficiency"] == pytest.approx(
        slow["attributes"]["a1"]["efficiency"])
    md = metrics.table1_markdown({"d_max": d_max, "distances": t_eval.tolist(),
                                  "methods": {"fast": fast, "slow": slow}})
    assert "Efficiency: 0.5 / distance to a Δp of 0.5" in md
    assert "End-point S_e, paper-literal" in md


def _random_preds(rng, shape, t):
    """Monotone-ish random walks in [0, 1] with varied starts (some seeds start positive)."""
    s, d, g, _, a = shape
    base = rng.uniform(0, 0.8, (s, 1, 1, 1, a))
    rate = rng.uniform(-0.2, 1.2, (1, d, g, 1, a)) * rng.uniform(0.5, 1.5, (s, d, g, 1, a))
    noise = rng.normal(0, 0.02, shape)
    noise[:, :, :, 0] = 0.0
    return np.clip(base + rate * t[None, None, None, :, None] + noise, 0.0, 1.0).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_metrics_equal_numpy_oracle(seed):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, 5).astype(np.float32)
    pa = _random_preds(rng, (30, 6, 2, 5, 4), t)
    pe = _random_preds(rng, (50, 6, 2, 5, 4), t)
    if seed == 2:
        pa[:, :, :, :, 3] = 0.9       # attribute 3: no assignment seed starts negative
        pe[:, :, :, :, 2] = 0.95      # attribute 2: no evaluation seed starts negative
    t_r = efficiency.reach_grid(1.0, 1 / 8, 3.0, 10).astype(np.float32)
    reach = _random_preds(rng, (50, 3, 1, t_r.size, 4), t_r)[:, :, 0]
    reach[:, :, 0] = pe[:, 0, 0, 0][:, None]    # the unedited image is the same in both walks
    index = np.array([0, 2, 1, 0], np.int32)
    ref = metrics.table_numbers(pa, pe, t, reach, t_r, index, 0.5, 0.5, 0.3)
    got = jax.device_get(device_metrics.table_numbers(
        *jax.device_put((pa, pe, t, reach, t_r, index)), 0.5, 0.5, 0.3))._asdict()
    assert set(got) == set(metrics.NUMBER_FIELDS)
    for k in metrics.NUMBER_FIELDS:
        np.testing.assert_allclose(np.asarray(got[k], np.float64), ref[k], rtol=0, atol=1e-6,
                                   err_msg=k)
    if seed == 2:
        assert np.isnan(ref["s_e"][[2, 3]]).all() and np.isnan(ref["efficiency"][[2, 3]]).all()
        assert ref["direction"][3] == -1


def test_device_metrics_on_the_synthetic_predictor():
    rng = np.random.default_rng(1)
    w_assign, w_eval = rng.normal(0, 0.1, (40, 3)), rng.normal(0, 0.1, (200, 3))
    t = np.linspace(0.0, 2.0, 6)
    t_r = efficiency.reach_grid(2.0)
    _, (pa, pe, reach, index) = _method(w_assign, w_eval, np.eye(3)[[0, 2]], 2.0, t, t_r)
    f32 = [np.asarray(x, np.float32) for x in (pa, pe, t, reach, t_r)]
    ref = metrics.table_numbers(*f32, index)
    got = jax.device_get(device_metrics.table_numbers(*jax.device_put((*f32, index))))._asdict()
    for k in metrics.NUMBER_FIELDS:
        np.testing.assert_allclose(np.asarray(got[k], np.float64), ref[k], rtol=0, atol=1e-6,
                                   err_msg=k)


def test_device_metrics_need_no_host_transfer():
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, 1.0, 4).astype(np.float32)
    args = jax.device_put((_random_preds(rng, (8, 3, 2, 4, 2), t),
                           _random_preds(rng, (8, 3, 2, 4, 2), t), t,
                           _random_preds(rng, (8, 2, 1, 5, 2), np.arange(5.0))[:, :, 0],
                           np.arange(5.0, dtype=np.float32), np.array([0, 1], np.int32)))
    device_metrics.table_numbers(*args).s_d.block_until_ready()        # compile
    with jax.transfer_guard("disallow"):
        out = device_metrics.table_numbers(*args)
    assert isinstance(out.s_d, jax.Array)
