"""End-to-end discovery on a tiny random generator: every method, files, determinism, errors."""
import json
import os
import subprocess
import sys

import chex
import conftest  # noqa: F401  (4 CPU devices before JAX starts)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax.core import sharding
from sparse_jax.discovery import features
from sparse_jax.discovery import run as discover
from sparse_jax.io import model_dirs
from sparse_jax.models import stylegan2 as sg

CFG = sg.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=2,
                         channel_base=128, channel_max=16)
N, K = 256, 4
NPZ_KEYS = {"lat_comp", "lat_mean", "lat_stdev", "act_comp", "act_mean", "act_stdev",
            "var_ratio", "act_space", "method", "layers", "pooling", "k", "gamma", "seed",
            "sparsity", "random_stdevs"}


@pytest.fixture(scope="module")
def variables():
    return sg.init_generator(jax.random.key(0), CFG)


def _label_fn(img):
    return (jnp.mean(img, axis=(1, 2, 3)) > 0).astype(jnp.int32)


@pytest.fixture(scope="module")
def run(variables, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("discover"))
    result = discover.run_discovery(CFG, variables, num_samples=N, k=K, batch=64, seed=3,
                                    out=out, label_fn=_label_fn, progress=False)
    return out, result


def test_every_method_writes_loadable_unit_directions(run):
    out, result = run
    p = features.feature_dim(CFG, features.default_layers(CFG), 1)
    assert list(result.methods) == list(discover.METHODS)
    for m in discover.METHODS:
        data = np.load(os.path.join(out, f"directions_{m}.npz"))
        assert set(data.files) == NPZ_KEYS
        dim = p if m in discover.ACTIVATION_METHODS else CFG.w_dim
        # GANSpace's shapes: [k, 1, dim] components, [1, dim] means.
        chex.assert_shape([data["lat_comp"], data["lat_mean"], data["lat_stdev"]],
                          [(K, 1, CFG.w_dim), (1, CFG.w_dim), (K,)])
        chex.assert_shape([data["act_comp"], data["act_mean"], data["act_stdev"],
                           data["var_ratio"]], [(K, 1, dim), (1, dim), (K,), (K,)])
        chex.assert_tree_all_finite({k: data[k] for k in NPZ_KEYS if data[k].dtype.kind == "f"
                                     and k != "gamma"})
        np.testing.assert_allclose(np.linalg.norm(data["lat_comp"], axis=-1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(data["act_comp"], axis=-1), 1.0, atol=1e-5)
        assert np.all(data["lat_stdev"] > 0)
        assert str(data["method"]) == m and int(data["k"]) == K and int(data["seed"]) == 3
        assert str(data["act_space"]) == ("features" if m in discover.ACTIVATION_METHODS
                                          else "w")
        npy = np.load(os.path.join(out, f"directions_{m}.npy"))
        np.testing.assert_array_equal(npy, data["lat_comp"][:, 0])
        if m in discover.ACTIVATION_METHODS:
            assert list(data["layers"]) == list(features.default_layers(CFG))
            assert str(data["pooling"]) == "global"
    # SCA's gamma is searched for 80% exactly-zero loadings
    for m in ("sca", "sca-w"):
        data = np.load(os.path.join(out, f"directions_{m}.npz"))
        assert abs(float(data["sparsity"]) - 0.8) < 0.06, (m, float(data["sparsity"]))
        assert np.mean(data["act_comp"] == 0) > 0.7 and np.isfinite(data["gamma"])
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["methods"] == list(discover.METHODS) and summary["num_samples"] == N
    assert sum(summary["label_counts"].values()) == N
    assert summary["results"]["sca"]["n_iter"] >= 1 and len(summary["results"]["sca"]["cpve"]) == K
    assert os.path.getsize(os.path.join(out, "scatter.png")) > 1000


def test_pca_w_matches_numpy_pca_of_w(run):
    _, result = run
    w = result.fit.w
    _, _, vt = np.linalg.svd(w - w.mean(0), full_matrices=False)
    got = result.methods["pca-w"].dirs.lat_comp
    np.testing.assert_allclose(np.abs(np.sum(got * vt[:K], axis=1)), 1.0, atol=1e-4)


def test_same_seed_same_directions_on_one_device(run, variables):
    _, result = run
    again = discover.run_discovery(CFG, variables, methods="pca,sca", num_samples=N, k=K,
                                   batch=32, seed=3, progress=False,
                                   mesh=sharding.make_data_mesh(jax.devices()[:1]))
    for m in ("pca", "sca"):
        a, b = result.methods[m].dirs, again.methods[m].dirs
        np.testing.assert_allclose(b.lat_comp, a.lat_comp, atol=1e-4)
        np.testing.assert_allclose(b.act_comp, a.act_comp, atol=1e-4)


def test_gamma_overrides_target_sparsity(variables):
    r = discover.run_discovery(CFG, variables, methods=["sca-w"], num_samples=N, k=K,
                               gamma=4.5, batch=64, progress=False)
    assert r.methods["sca-w"].gamma == pytest.approx(4.5)
    assert r.summary["results"]["sca-w"]["gamma"] == pytest.approx(4.5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=40, methods="pca"), r"k=40 \(--k\) is larger than the dimension p=32"),
    (dict(k=17, methods="pca-w"), r"dimension p=16 of W"),
    (dict(k=8, num_samples=5), r"larger than the number of samples n=5"),
    (dict(methods="pca,ica"), r"unknown method\(s\) \['ica'\]"),
    (dict(target_sparsity=1.0), r"--target_sparsity"),
    (dict(layers="b32.conv1"), r"unknown layer 'b32.conv1'.*synthesis.b16.conv1"),
    (dict(pool="grid3"), r"does not divide"),
])
def test_bad_arguments_fail_clearly(variables, kwargs, match):
    with pytest.raises(ValueError, match=match):
        discover.run_discovery(CFG, variables, **{"num_samples": 64, "progress": False,
                                                  **kwargs})


def test_binary_reports_bad_layer(variables, tmp_path):
    gen = str(tmp_path / "gen")
    model_dirs.save_generator(gen, CFG, variables)
    proc = subprocess.run(
        [sys.executable, os.path.join(conftest.ROOT, "bin", "discover.py"), "--generator", gen,
         "--layers", "b8.conv9", "--out", str(tmp_path / "out"), "--num_samples", "16"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode != 0
    assert "unknown layer 'b8.conv9'" in proc.stderr and "synthesis.b8.conv1" in proc.stderr
    assert not os.path.exists(tmp_path / "out" / "summary.json")
