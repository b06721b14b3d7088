"""PCA (GANSpace) against numpy / scikit-learn, SeFa against numpy eigh on a params dict."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from sklearn.decomposition import PCA

from sparse_jax.decompose import pca, sefa_from_weights
from sparse_jax.discovery.sefa_layers import select_layers, stacked_weights


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


def _tiny_generator(w_dim=8, seed=0):
    """A 16x16 StyleGAN2 with random weights (only the style affines matter to SeFa)."""
    from sparse_jax.models import stylegan2 as sg

    cfg = sg.GeneratorConfig(z_dim=w_dim, w_dim=w_dim, c_dim=0, img_resolution=16, img_channels=1,
                             mapping_layers=2, channel_base=96, channel_max=6)
    shapes = jax.eval_shape(lambda key: sg.init_generator(key, cfg), jax.random.key(0))
    rng = np.random.default_rng(seed)
    variables = jax.tree.map(lambda a: rng.standard_normal(a.shape).astype(a.dtype), shapes)
    return cfg, variables


def _affine(variables, block, layer):
    return variables["params"]["synthesis"][block][layer]["affine"]["weight"]


def _numpy_sefa(weights, k):
    a = np.concatenate(weights).astype(np.float64)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    lam, vec = np.linalg.eigh(a.T @ a)
    return _sign_fix(vec[:, ::-1][:, :k].T), lam[::-1][:k]


def _sefa(cfg, variables, k, layers="all"):
    chosen = select_layers(cfg, variables, layers)
    comps, lam = sefa_from_weights(stacked_weights(chosen), k)
    return comps, lam, tuple(n for n, _ in chosen)


def test_sefa_all_layers_matches_numpy_eigh():
    cfg, variables = _tiny_generator()
    comps, lam, layers = _sefa(cfg, variables, 5)
    assert layers == ("synthesis.b4.conv1", "synthesis.b8.conv0", "synthesis.b8.conv1",
                      "synthesis.b16.conv0", "synthesis.b16.conv1", "synthesis.b16.torgb")
    assert len(layers) == cfg.num_ws
    want_c, want_l = _numpy_sefa(
        [_affine(variables, "b4", "conv1"), _affine(variables, "b8", "conv0"),
         _affine(variables, "b8", "conv1"), _affine(variables, "b16", "conv0"),
         _affine(variables, "b16", "conv1"), _affine(variables, "b16", "torgb")], 5)
    np.testing.assert_allclose(np.asarray(comps), want_c, atol=1e-5)
    np.testing.assert_allclose(np.asarray(lam), want_l, rtol=1e-5)
    assert np.all(np.diff(np.asarray(lam)) <= 0)
    chex.assert_shape(comps, (5, 8))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(comps), axis=1), 1.0, atol=1e-5)
    # A scalar gain per layer (equalised lr) does not change anything: rows are normalised.
    scaled = jax.tree.map(lambda a: a * 0.125, variables)
    np.testing.assert_allclose(np.asarray(_sefa(cfg, scaled, 5)[0]), want_c, atol=1e-5)


def test_sefa_layer_specs():
    cfg, variables = _tiny_generator()
    first3 = ("synthesis.b4.conv1", "synthesis.b8.conv0", "synthesis.b8.conv1")
    assert tuple(n for n, _ in select_layers(cfg, variables, "0-2")) == first3
    assert tuple(n for n, _ in select_layers(cfg, variables, [2, 0, 1])) == first3
    picked = select_layers(cfg, variables, ["synthesis.b8.conv0.affine", "b4.conv1"])
    assert [n for n, _ in picked] == ["synthesis.b4.conv1", "synthesis.b8.conv0"]
    assert [n for n, _ in select_layers(cfg, variables, "0-1,5")][-1] == "synthesis.b16.torgb"
    comps, _, _ = _sefa(cfg, variables, 3, layers="1-2")
    want_c, _ = _numpy_sefa([_affine(variables, "b8", "conv0"),
                             _affine(variables, "b8", "conv1")], 3)
    np.testing.assert_allclose(np.asarray(comps), want_c, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        select_layers(cfg, variables, "0-6")
    with pytest.raises(ValueError, match="unknown SeFa layer"):
        select_layers(cfg, variables, ["synthesis.b32.conv0"])
    with pytest.raises(ValueError, match="unknown SeFa layer"):
        select_layers(cfg, variables, ["synthesis.b8.torgb"])  # shares slot 3 with b8.conv1
    with pytest.raises(ValueError, match="k=9"):
        sefa_from_weights(np.ones((4, 8), np.float32), 9)
