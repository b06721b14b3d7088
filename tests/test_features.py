"""Feature sampling, max pooling, sharding helpers and the regression to W."""
import chex
import conftest  # noqa: F401  (4 CPU devices before JAX starts)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax.core import seeds, sharding
from sparse_jax.discovery import directions, features
from sparse_jax.models import stylegan2 as sg

CFG = sg.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, mapping_layers=2,
                         channel_base=128, channel_max=16)


@pytest.fixture(scope="module")
def variables():
    return sg.init_generator(jax.random.key(0), CFG)


def _reference_acts(variables, key, n, layers):
    z = seeds.latents(key, jnp.arange(n), CFG.z_dim)
    ws = sg.map_latents(CFG, variables, z)
    _, acts = sg.synthesize(CFG, variables, ws, layers=layers)
    return {k: np.asarray(v) for k, v in acts.items()}, np.asarray(ws[:, 0])


def test_default_and_short_layer_names():
    assert features.default_layers(CFG) == ("synthesis.b4.conv1", "synthesis.b8.conv1")
    assert features.resolve_layers(CFG, "b8.conv1, synthesis.b16.conv0") == (
        "synthesis.b8.conv1", "synthesis.b16.conv0")
    assert features.resolve_layers(CFG, None) == features.default_layers(CFG)


def test_bad_layer_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown layer 'b8\.conv7'.*synthesis\.b16\.conv1"):
        features.resolve_layers(CFG, ["b8.conv7"])
    with pytest.raises(ValueError, match="unknown layer 'mapping.fc0'"):
        features.resolve_layers(CFG, ["mapping.fc0"])


def test_parse_pool():
    assert features.parse_pool("global") == 1
    assert features.parse_pool("grid4") == 4
    assert features.parse_pool(2) == 2
    assert features.pool_name(4) == "grid4" and features.pool_name(1) == "global"
    with pytest.raises(ValueError, match="bad pooling spec"):
        features.parse_pool("avg")


def test_max_pool_matches_numpy():
    x = np.random.default_rng(0).normal(size=(3, 5, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(features.max_pool(jnp.asarray(x)), x.max(axis=(2, 3)))
    grid = x.reshape(3, 5, 2, 4, 2, 4).max(axis=(3, 5)).reshape(3, 20)
    np.testing.assert_array_equal(features.max_pool(jnp.asarray(x), 2), grid)
    # cell (c=1, gy=1, gx=0) is the max of rows 4..7, cols 0..3 of channel 1
    assert features.max_pool(jnp.asarray(x), 2)[0, 1 * 4 + 2] == x[0, 1, 4:, :4].max()
    with pytest.raises(ValueError, match="does not divide"):
        features.max_pool(jnp.asarray(x), 3)


@pytest.mark.parametrize("pool", ["global", "grid2"])
def test_sampled_features_equal_reference(variables, pool):
    key = jax.random.key(3)
    layers = ("synthesis.b4.conv1", "synthesis.b8.conv1")
    got = features.sample_features(CFG, variables, key, 10, layers=layers, pool=pool,
                                   batch_size=4, progress=False)
    acts, w = _reference_acts(variables, key, 10, layers)
    grid = features.parse_pool(pool)
    ref = []
    for name in layers:
        a = acts[name]
        n, c, h, wd = a.shape
        if grid == 1:
            ref.append(a.max(axis=(2, 3)))
        else:
            ref.append(a.reshape(n, c, grid, h // grid, grid, wd // grid).max(axis=(3, 5))
                       .reshape(n, -1))
    ref = np.concatenate(ref, axis=1)
    p = features.feature_dim(CFG, layers, grid)
    chex.assert_shape(got.x, (10, p))
    chex.assert_shape(got.w, (10, CFG.w_dim))
    assert got.labels is None
    np.testing.assert_allclose(got.x, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.w, w, rtol=1e-6, atol=1e-6)


def test_one_and_four_devices_agree(variables):
    assert jax.device_count() == 4
    key = jax.random.key(7)
    one = features.sample_features(CFG, variables, key, 22, batch_size=5, progress=False,
                                   mesh=sharding.make_data_mesh(jax.devices()[:1]))
    four = features.sample_features(CFG, variables, key, 22, batch_size=8, progress=False,
                                    mesh=sharding.make_data_mesh())
    np.testing.assert_allclose(one.x, four.x, atol=1e-5, rtol=0)
    np.testing.assert_allclose(one.w, four.w, atol=1e-5, rtol=0)
    other = features.sample_features(CFG, variables, jax.random.key(8), 22, batch_size=8,
                                     progress=False)
    assert np.abs(other.x - four.x).max() > 1e-3  # another key gives other samples


def test_label_fn_and_truncation(variables):
    def label_fn(img):
        chex.assert_shape(img, (None, CFG.img_channels, 16, 16))
        return (jnp.mean(img, axis=(1, 2, 3)) > 0).astype(jnp.int32)

    key = jax.random.key(1)
    f = features.sample_features(CFG, variables, key, 6, batch_size=4, label_fn=label_fn,
                                 truncation=0.5, progress=False)
    z = seeds.latents(key, jnp.arange(6), CFG.z_dim)
    img = sg.generate(CFG, variables, z, truncation_psi=0.5)
    np.testing.assert_array_equal(f.labels, np.asarray(label_fn(img)))
    ws = sg.map_latents(CFG, variables, z, truncation_psi=0.5)
    np.testing.assert_allclose(f.w, np.asarray(ws[:, 0]), atol=1e-6)


def test_sample_features_rejects_bad_sizes(variables):
    with pytest.raises(ValueError, match="num_samples"):
        features.sample_features(CFG, variables, jax.random.key(0), 0, progress=False)
    with pytest.raises(ValueError, match="batch size"):
        features.sample_features(CFG, variables, jax.random.key(0), 4, batch_size=0,
                                 progress=False)


def test_pad_batch_and_round_up():
    x, n = sharding.pad_batch(np.arange(5)[:, None], 4)
    assert n == 5 and x.shape == (8, 1) and x[-1, 0] == 4
    assert sharding.round_up(9, 4) == 12 and sharding.round_up(8, 4) == 8
    assert sharding.make_data_mesh().size == 4


def test_regression_recovers_planted_directions():
    rng = np.random.default_rng(0)
    n, w_dim, p = 4000, 12, 30
    w = rng.normal(size=(n, w_dim)).astype(np.float32) + 3.0
    u = np.linalg.qr(rng.normal(size=(w_dim, 2)))[0].T  # planted W directions [2, w_dim]
    v = np.linalg.qr(rng.normal(size=(p, 2)))[0].T  # their activation-space images [2, p]
    x = (w - 3.0) @ u.T @ (np.diag([3.0, 1.5]) @ v) + 0.05 * rng.normal(size=(n, p)) + 1.0
    comp, mean = jnp.asarray(v, jnp.float32), jnp.mean(jnp.asarray(x, jnp.float32), axis=0)
    stdev = directions.score_stdev(jnp.asarray(x, jnp.float32), mean, comp)
    d = directions.from_activation_basis(comp, mean, stdev, jnp.ones(2), jnp.asarray(x),
                                         jnp.asarray(w)).to_numpy()
    chex.assert_shape(d.lat_comp, (2, w_dim))
    np.testing.assert_allclose(np.linalg.norm(d.lat_comp, axis=1), 1.0, atol=1e-5)
    # finite-sample error of the fit: ~ sqrt(w_dim / n) in angle
    np.testing.assert_allclose(np.abs(np.sum(d.lat_comp * u, axis=1)), 1.0, atol=5e-3)
    assert np.all(np.sum(d.lat_comp * u, axis=1) > 0)  # sign follows the score's sign
    np.testing.assert_allclose(d.lat_stdev, 1.0, atol=0.05)  # w is unit-variance along u
    np.testing.assert_allclose(d.lat_mean, w.mean(axis=0), atol=1e-4)


def test_sca_basis_normalises_and_rejects_empty_columns():
    loadings = np.array([[0.5, 0.0], [0.0, 0.2], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(directions.sca_basis(loadings), [[1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match=r"component\(s\) \[1\] are all zero"):
        directions.check_nonzero_rows(np.array([[1.0, 0.0], [0.0, 0.0]]), "SCA loadings")


def test_out_of_memory_names_the_batch_flag(variables, monkeypatch):
    def oom_step(*args, **kwargs):
        def step(*a):
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 123 bytes")
        return step

    monkeypatch.setattr(features, "_compiled_step", oom_step)
    with pytest.raises(features.BatchOutOfMemory, match=r"batch of 8 samples.*--batch"):
        features.sample_features(CFG, variables, jax.random.key(0), 16, batch_size=8,
                                 progress=False)
    # other runtime errors are not relabelled
    monkeypatch.setattr(features, "_compiled_step",
                        lambda *a, **k: (lambda *b: (_ for _ in ()).throw(RuntimeError("x"))))
    with pytest.raises(RuntimeError, match="^x$"):
        features.sample_features(CFG, variables, jax.random.key(0), 16, batch_size=8,
                                 progress=False)
