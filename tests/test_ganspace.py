"""GANSpace compatibility: the regression to W and lat_stdev as GANSpace computes them, and
direction files that GANSpace's readers load (and that we read back in every shape).

The references below are our own NumPy transcription of what harskish/ganspace does
(`decomposition.py`: `linreg_lstsq`, the lat_stdev and random_stdevs lines, the savez keys;
`visualize.py` / `interactive.py`: what they read and how they broadcast it), written from reading
that code, not copied from it.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax.core import seeds
from sparse_jax.discovery import directions, features
from sparse_jax.discovery import run as discover
from sparse_jax.io import direction_files
from sparse_jax.models import generators
from sparse_jax.models import stylegan2 as sg

CFG = sg.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=2,
                         channel_base=128, channel_max=16)
N, K, N_REG = 256, 4, 1000


@pytest.fixture(scope="module")
def variables():
    return sg.init_generator(jax.random.key(0), CFG)


@pytest.fixture(scope="module")
def run(variables, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ganspace"))
    result = discover.run_discovery(CFG, variables, num_samples=N, num_regression_samples=N_REG,
                                    k=K, batch=64, seed=5, out=out, progress=False)
    return out, result


def ganspace_regression_reference(comp, mean, stdev, x_reg, w_reg):
    """Our reading of GANSpace's linreg_lstsq: coordinates of the fresh samples projected on the
    basis after subtracting the *fit* mean, divided by the fit stdev; latents as they are; least
    squares A M = Z without an intercept; the rows of M normalised (done after the call)."""
    a = ((np.asarray(x_reg, np.float64) - mean) @ np.asarray(comp, np.float64).T) / stdev
    m = np.linalg.lstsq(a, np.asarray(w_reg, np.float64), rcond=None)[0]
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _regression_features(variables, seed, n):
    return features.sample_features(CFG, variables, seeds.stream_key(seed, seeds.REGRESSION_STREAM),
                                    n, layers=features.default_layers(CFG),
                                    pool=features.parse_pool("global"),
                                    batch_size=250, progress=False)


@pytest.mark.parametrize("method", ["pca", "sca"])
def test_regression_is_ganspace_recipe(run, variables, method):
    _, result = run
    r = result.methods[method]
    fresh = _regression_features(variables, 5, N_REG)
    ref = ganspace_regression_reference(r.dirs.act_comp, r.dirs.act_mean, r.dirs.act_stdev,
                                        fresh.x, fresh.w)
    cos = np.abs(np.sum(ref * r.dirs.lat_comp, axis=1))
    assert np.all(cos >= 0.999), cos
    np.testing.assert_allclose(r.dirs.lat_mean, fresh.w.mean(0), atol=1e-5)
    # The fit mean, not the regression samples' mean, centres the coordinates.
    np.testing.assert_allclose(r.dirs.act_mean, result.fit.x.mean(0), atol=1e-5)


def test_regression_differs_from_the_centred_recipe_where_it_should():
    """Regressing centred latents on re-centred coordinates is a different estimator: on latents
    with a large mean and coordinates whose fresh-sample mean is off zero it moves the rows."""
    rng = np.random.default_rng(0)
    n, p, w_dim, k = 400, 12, 6, 3
    w = rng.normal(size=(n, w_dim)) + 5.0
    x = np.tanh(w @ rng.normal(size=(w_dim, p))) + 0.3 * rng.normal(size=(n, p))
    comp = np.linalg.svd(x - x.mean(0), full_matrices=False)[2][:k]
    mean = x.mean(0) + 0.3       # a fit mean that differs from this sample's
    stdev = np.ones(k)
    ref = ganspace_regression_reference(comp, mean, stdev, x, w)
    got = np.asarray(directions.regress_to_w(directions.project_scores(
        jnp.asarray(x, jnp.float32), jnp.asarray(mean, jnp.float32),
        jnp.asarray(comp, jnp.float32), jnp.asarray(stdev, jnp.float32)),
        jnp.asarray(w, jnp.float32)))
    assert np.all(np.abs(np.sum(ref * got, axis=1)) >= 0.999)
    a = (x - mean) @ comp.T
    centred = np.linalg.lstsq(a - a.mean(0), w - w.mean(0), rcond=None)[0]
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    assert np.min(np.abs(np.sum(ref * centred, axis=1))) < 0.99


def test_default_regression_sample_count_is_ganspace_s(variables, monkeypatch):
    """max(10,000, n) fresh samples when --num_regression_samples is not given (the sampler is
    replaced by one that only records the counts, to keep the test fast)."""
    counts = {}

    def fake_sample(cfg, variables, key, n, desc="", **kwargs):
        counts[desc] = n
        rng = np.random.default_rng(len(counts))
        p = features.feature_dim(cfg, kwargs["layers"], kwargs["pool"])
        return features.Features(rng.normal(size=(n, p)).astype(np.float32),
                                 rng.normal(size=(n, cfg.w_dim)).astype(np.float32), None)

    monkeypatch.setattr(discover.features, "sample_features", fake_sample)
    assert discover.GANSPACE_MIN_REGRESSION == 10_000
    for n, expected in ((64, 10_000), (12_000, 12_000)):
        r = discover.run_discovery(CFG, variables, methods="pca", num_samples=n, k=2,
                                   progress=False)
        assert counts["regression samples"] == expected
        assert r.summary["num_regression_samples"] == expected


def test_lat_stdev_on_5000_fresh_samples(run, variables):
    _, result = run
    key = seeds.stream_key(5, seeds.LAT_STDEV_STREAM)
    z = seeds.latents(key, jnp.arange(directions.LAT_STDEV_SAMPLES), CFG.z_dim)
    w = np.asarray(generators.map_latents(CFG, variables, z)[:, 0], np.float64)
    for m, r in result.methods.items():
        expected = (w @ r.dirs.lat_comp.T.astype(np.float64)).std(axis=0)
        np.testing.assert_allclose(r.dirs.lat_stdev, expected, rtol=1e-4, err_msg=m)
        # not the fit samples' stdev
        fit_stdev = (result.fit.w @ r.dirs.lat_comp.T).std(axis=0)
        assert np.max(np.abs(fit_stdev - r.dirs.lat_stdev)) > 1e-5, m


def ganspace_style_read(path, w_dim):
    """What GANSpace's visualize.py and interactive.py need from a component file, read as they
    read it: np.load without pickles, eight keys, mean(random_stdevs) as the UI scale, and per
    component a latent row that broadcasts against a W latent of shape [1, w_dim] (its
    `sample_latent` in W mode), edited as w + sigma * lat_comp[i] * lat_stdev[i], centred with
    lat_mean of the same shape."""
    data = np.load(path, allow_pickle=False)
    keys = ("act_comp", "act_mean", "act_stdev", "var_ratio", "random_stdevs", "lat_mean",
            "lat_comp", "lat_stdev")
    x_comp, x_mean, x_stdev, var_ratio, random_stdevs, z_mean, z_comp, z_stdev = (
        data[k] for k in keys)
    n_comp = x_comp.shape[0]
    random_scale = float(np.mean(random_stdevs))
    w = np.zeros((1, w_dim), np.float32)
    edits = []
    for i in range(n_comp):
        assert z_comp[i].shape == w.shape and z_mean.shape == w.shape
        assert x_comp[i].shape == x_mean.shape        # an activation edit adds x_comp[i]
        unit = z_comp[i] / np.sqrt(np.sum(z_comp[i] ** 2, axis=-1, keepdims=True) + 1e-8)
        offset = np.sum((w - z_mean) * unit, axis=-1, keepdims=True) * unit
        edits.append(w - offset + 2.0 * z_comp[i] * float(z_stdev[i]))
        float(x_stdev[i]), float(z_stdev[i])          # interactive.py calls .item() on these
    assert var_ratio.shape == (n_comp,) and np.isfinite(random_scale)
    return np.stack(edits)


def test_every_exported_file_loads_in_a_ganspace_reader(run):
    out, result = run
    for m in discover.METHODS:
        path = os.path.join(out, f"directions_{m}.npz")
        edits = ganspace_style_read(path, CFG.w_dim)
        assert edits.shape == (K, 1, CFG.w_dim) and np.all(np.isfinite(edits))
        data = np.load(path)
        assert data["lat_comp"].shape == (K, 1, CFG.w_dim)
        np.testing.assert_allclose(data["random_stdevs"], result.methods[m].dirs.random_stdevs)
        assert np.all(data["random_stdevs"] > 0)


def test_readers_accept_both_shapes_ganspace_files_and_sefa_arrays(run, tmp_path):
    out, result = run
    ours = direction_files.read_directions(os.path.join(out, "directions_sca.npz"), CFG.w_dim)
    assert ours.lat_comp.shape == (K, CFG.w_dim) and ours.method == "sca"
    rows = result.methods["sca"].dirs.lat_comp
    np.testing.assert_allclose(ours.lat_comp, rows / np.linalg.norm(rows, axis=1)[:, None],
                               atol=1e-6)
    # GANSpace's own cache file: its name, its keys, no `method`.
    data = dict(np.load(os.path.join(out, "directions_pca.npz")))
    gs = {k: data[k] for k in ("act_comp", "act_mean", "act_stdev", "lat_comp", "lat_mean",
                               "lat_stdev", "var_ratio", "random_stdevs")}
    name = tmp_path / "stylegan-ffhq_g_mapping_ipca_c4_n300000_w.npz"
    np.savez_compressed(name, **gs)
    ds = direction_files.read_directions(str(name), CFG.w_dim)
    np.testing.assert_allclose(ds.lat_comp, ours_pca := direction_files.read_directions(
        os.path.join(out, "directions_pca.npz"), CFG.w_dim).lat_comp)
    assert ds.method == "stylegan-ffhq_g_mapping_ipca_c4_n300000_w" and ours_pca.shape[0] == K
    z_name = tmp_path / "stylegan-ffhq_g_mapping_ipca_c4_n300000.npz"
    np.savez_compressed(z_name, **gs)
    with pytest.raises(ValueError, match="Z space"):
        direction_files.read_directions(str(z_name), CFG.w_dim)
    # Plain [k, w_dim] rows (SeFa-style .npy), and [k, w_dim] lat_comp in an npz.
    np.save(tmp_path / "sefa_boundaries.npy", rows * 3.0)
    sefa = direction_files.read_directions(str(tmp_path / "sefa_boundaries.npy"), CFG.w_dim, 2)
    assert sefa.lat_comp.shape == (2, CFG.w_dim) and np.isnan(sefa.lat_stdev).all()
    np.savez(tmp_path / "flat.npz", lat_comp=rows, lat_stdev=np.ones(K))
    assert direction_files.read_directions(str(tmp_path / "flat.npz"), CFG.w_dim).lat_comp.shape \
        == (K, CFG.w_dim)
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, CFG.w_dim)))
    with pytest.raises(ValueError, match=r"bad.npy: expected \[num_directions, w_dim\]"):
        direction_files.read_directions(str(tmp_path / "bad.npy"), CFG.w_dim)
