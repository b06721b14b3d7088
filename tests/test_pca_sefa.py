"""PCA (GANSpace) against numpy / scikit-learn, SeFa against numpy eigh on a params dict."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from sklearn.decomposition import PCA

from sparse_jax.decompose import pca, sefa, sefa_from_weights, select_layers, style_layers


def _data(n, p, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.linspace(3.0, 0.2, p)
    return (rng.standard_normal((n, p)) * scale + 5.0).astype(np.float32)


def _sign_fix(rows):
    idx = np.argmax(np.abs(rows), axis=1)
    return rows * np.sign(rows[np.arange(len(rows)), idx])[:, None]


@pytest.mark.parametrize("n,p", [(400, 24), (12, 40)])
def test_pca_matches_sklearn_and_numpy_svd(n, p):
    x = _data(n, p)
    k = 6
    res = pca(x, k)
    chex.assert_shape((res.components, res.mean, res.stdev), ((k, p), (p,), (k,)))
    ref = PCA(k, svd_solver="full").fit(x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(res.components), ref.components_, atol=2e-4)
    np.testing.assert_allclose(np.asarray(res.explained_variance), ref.explained_variance_,
                               rtol=1e-4)
    np.testing.assert_allclose(np.asarray(res.explained_variance_ratio),
                               ref.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(res.stdev), np.sqrt(ref.explained_variance_), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(res.mean), ref.mean_, rtol=1e-6)
    xc = x.astype(np.float64) - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(np.asarray(res.components), _sign_fix(vt[:k]), atol=2e-4)
    np.testing.assert_allclose(np.asarray(res.explained_variance), s[:k] ** 2 / (n - 1),
                               rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(res.components), axis=1), 1.0,
                               atol=1e-5)


def test_pca_row_sharded_equals_single_device():
    x = jnp.asarray(_data(400, 24))
    mesh = jax.make_mesh((4,), ("data",))
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    chex.assert_trees_all_close(pca(xs, 5), pca(x, 5), atol=1e-5)


def test_pca_errors():
    x = _data(20, 8)
    with pytest.raises(ValueError, match="k=9"):
        pca(x, 9)
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        pca(x, 3)


def _fake_params(w_dim=8, seed=0):
    """Synthesis params of a 16x16 generator in the official layout (only what SeFa reads)."""
    rng = np.random.default_rng(seed)
    chans = {4: 6, 8: 5, 16: 4}

    def layer(c):
        return {"affine": {"weight": rng.standard_normal((c, w_dim)).astype(np.float32),
                           "bias": np.ones((c,), np.float32)}}

    syn = {"b4": {"const": np.zeros((6, 4, 4), np.float32), "conv1": layer(6),
                  "torgb": layer(6)}}
    for r in (8, 16):
        syn[f"b{r}"] = {"conv0": layer(chans[r // 2]), "conv1": layer(chans[r]),
                        "torgb": layer(chans[r])}
    return {"params": {"synthesis": syn, "mapping": {}}}


def _numpy_sefa(weights, k):
    a = np.concatenate(weights).astype(np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    lam, vec = np.linalg.eigh(a.T @ a)
    return _sign_fix(vec[:, ::-1][:, :k].T), lam[::-1][:k]


def test_sefa_all_layers_matches_numpy_eigh():
    variables = _fake_params()
    res = sefa(None, variables, 5)
    assert res.layers == ("synthesis.b4.conv1", "synthesis.b8.conv0", "synthesis.b8.conv1",
                          "synthesis.b16.conv0", "synthesis.b16.conv1", "synthesis.b16.torgb")
    syn = variables["params"]["synthesis"]
    want_c, want_l = _numpy_sefa(
        [syn["b4"]["conv1"]["affine"]["weight"], syn["b8"]["conv0"]["affine"]["weight"],
         syn["b8"]["conv1"]["affine"]["weight"], syn["b16"]["conv0"]["affine"]["weight"],
         syn["b16"]["conv1"]["affine"]["weight"], syn["b16"]["torgb"]["affine"]["weight"]], 5)
    np.testing.assert_allclose(np.asarray(res.components), want_c, atol=1e-5)
    np.testing.assert_allclose(np.asarray(res.eigenvalues), want_l, rtol=1e-5)
    assert np.all(np.diff(np.asarray(res.eigenvalues)) <= 0)
    # A scalar gain per layer (equalised lr) does not change anything: rows are normalised.
    scaled = jax.tree.map(lambda a: a * 0.125, variables)
    np.testing.assert_allclose(np.asarray(sefa(None, scaled, 5).components), want_c, atol=1e-5)
    # A pytree: jit-able consumers can carry it.
    assert jax.tree.leaves(res)[0].shape == (5, 8)


def test_sefa_layer_specs():
    variables = _fake_params()
    names = [n for n, _ in style_layers(variables)]
    assert len(names) == 8 and names[1] == "synthesis.b4.torgb"
    first3 = ("synthesis.b4.conv1", "synthesis.b8.conv0", "synthesis.b8.conv1")
    assert tuple(n for n, _ in select_layers(variables, "0-2")) == first3
    assert tuple(n for n, _ in select_layers(variables, [2, 0, 1])) == first3
    picked = select_layers(variables, ["synthesis.b8.torgb.affine", "synthesis.b4.conv1"])
    assert [n for n, _ in picked] == ["synthesis.b4.conv1", "synthesis.b8.torgb"]
    assert [n for n, _ in select_layers(variables, "0-1,5")][-1] == "synthesis.b16.torgb"
    res = sefa(None, variables, 3, layers="1-2")
    syn = variables["params"]["synthesis"]
    want_c, _ = _numpy_sefa([syn["b8"]["conv0"]["affine"]["weight"],
                             syn["b8"]["conv1"]["affine"]["weight"]], 3)
    np.testing.assert_allclose(np.asarray(res.components), want_c, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        select_layers(variables, "0-6")
    with pytest.raises(ValueError, match="unknown SeFa layer"):
        select_layers(variables, ["synthesis.b32.conv0"])
    with pytest.raises(ValueError, match="synthesis"):
        select_layers({"params": {}}, "all")
    with pytest.raises(ValueError, match="k=9"):
        sefa_from_weights(np.ones((4, 8), np.float32), 9)


def test_sefa_on_generator_init():
    from sparse_jax.models import stylegan2 as sg

    cfg = sg.GeneratorConfig(z_dim=16, w_dim=16, c_dim=0, img_resolution=16, img_channels=1,
                             mapping_layers=2, channel_base=128, channel_max=16)
    # The params layout of the real generator (shapes only: tracing is enough), random values.
    shapes = jax.eval_shape(lambda key: sg.init_generator(key, cfg), jax.random.key(0))
    rng = np.random.default_rng(1)
    variables = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(a.dtype), shapes)
    res = sefa(cfg, variables, 4)
    assert len(res.layers) == cfg.num_ws
    valid = set(sg.layer_names(cfg))
    assert all(name in valid for name in res.layers)
    chex.assert_shape(res.components, (4, 16))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(res.components), axis=1), 1.0,
                               atol=1e-5)
