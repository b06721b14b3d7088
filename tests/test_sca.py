"""SCA against the authors' epca outputs (`reference/sca/sca_epca_small.npz`) and its features."""
import os
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sparse_jax.decompose import centred, sca, sca_fixed, sca_sweep
from sparse_jax.decompose.shrink import hard_threshold_l0, soft_threshold_l1

FIXTURE = os.path.join(SHARED, "reference", "sca", "sca_epca_small.npz")
CASES = ("default", "g25")
FIELDS = ("loadings", "scores", "z", "b")


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as d:
        return {key: d[key] for key in d.files}


def _run(ref, case, dtype, **kw):
    return sca(ref["X"].astype(dtype), int(ref[f"{case}/k"]), float(ref[f"{case}/gamma"]),
               init_u=ref[f"{case}/init_u"].astype(dtype),
               init_v=ref[f"{case}/init_v"].astype(dtype), **kw)


def _zero_pattern_ok(y, y_ref, tol):
    differ = (y == 0) != (y_ref == 0)
    return np.all(np.abs(y_ref[differ]) < tol) and np.all(np.abs(y[differ]) < tol)


@pytest.mark.parametrize("case", CASES)
def test_float64_faithful_matches_epca(ref, case):
    with jax.enable_x64(True):
        res = _run(ref, case, np.float64)
        assert res.loadings.dtype == jnp.float64
        for f in FIELDS:
            np.testing.assert_allclose(np.asarray(getattr(res, f)), ref[f"{case}/{f}"], rtol=0,
                                       atol=1e-8, err_msg=f)
        np.testing.assert_allclose(np.asarray(res.cpve), ref[f"{case}/cpve"], rtol=0, atol=1e-10)
        assert int(res.n_iter) == int(ref[f"{case}/n_iter"])
        assert bool(res.converged)
        np.testing.assert_array_equal(np.asarray(res.loadings) == 0, ref[f"{case}/loadings"] == 0)
        assert float(res.gamma) == pytest.approx(float(ref[f"{case}/gamma"]))


@pytest.mark.parametrize("case", CASES)
def test_float32_faithful_matches_epca(ref, case):
    res = _run(ref, case, np.float32)
    assert res.loadings.dtype == jnp.float32
    for f in ("loadings", "scores", "z"):
        np.testing.assert_allclose(np.asarray(getattr(res, f)), ref[f"{case}/{f}"], rtol=0,
                                   atol=1e-4, err_msg=f)
    # b = Z^T X_c Y has entries up to ~180: float32 rounding alone is ~1e-4 absolute there.
    b_ref = ref[f"{case}/b"]
    np.testing.assert_allclose(np.asarray(res.b), b_ref, rtol=0, atol=1e-4 * np.abs(b_ref).max())
    assert abs(int(res.n_iter) - int(ref[f"{case}/n_iter"])) <= 1
    assert _zero_pattern_ok(np.asarray(res.loadings), ref[f"{case}/loadings"], 1e-4)


def _close(a, b, scale=1.0):
    """Field-wise float32 comparison; b = Z^T X_c Y (entries ~180) is compared relative to scale."""
    for f in ("loadings", "z", "cpve", "mean"):
        np.testing.assert_allclose(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)),
                                   rtol=0, atol=1e-5 * scale, err_msg=f)
    np.testing.assert_allclose(np.asarray(a.scores), np.asarray(b.scores), atol=1e-4 * scale)
    bmax = float(np.abs(np.asarray(b.b)).max())
    np.testing.assert_allclose(np.asarray(a.b), np.asarray(b.b), atol=1e-5 * scale * bmax)


@pytest.fixture(scope="module")
def fast(ref):
    """Fast mode (Gram path, own SVD start) on the fixture, both cases: one compiled solve."""
    x = ref["X"].astype(np.float32)
    return {case: sca(x, 10, float(ref[f"{case}/gamma"]), rotate_z=False) for case in CASES}


@pytest.mark.parametrize("case", CASES)
def test_float32_fast_mode_matches_epca_loadings(ref, fast, case):
    res = fast[case]
    for f in ("loadings", "scores"):
        np.testing.assert_allclose(np.asarray(getattr(res, f)), ref[f"{case}/{f}"], rtol=0,
                                   atol=1e-4, err_msg=f)
    assert _zero_pattern_ok(np.asarray(res.loadings), ref[f"{case}/loadings"], 1e-4)
    np.testing.assert_allclose(np.asarray(res.cpve), ref[f"{case}/cpve"], atol=1e-5)
    z = np.asarray(res.z)
    np.testing.assert_allclose(z.T @ z, np.eye(10), atol=1e-5)
    assert bool(res.converged)


def test_products_path_and_folded_mean_agree_with_gram(ref, fast, monkeypatch):
    """Products path (two passes over X a sweep) and folded mean (X_c never formed) = Gram path."""
    x = ref["X"].astype(np.float32)
    prods = sca(x, 10, 25.0, rotate_z=False, method="products")
    _close(prods, fast["g25"])
    assert int(prods.n_iter) == int(fast["g25"].n_iter) == int(ref["g25/n_iter"])
    monkeypatch.setattr(centred, "CENTRE_MAX_ELEMENTS", 0)
    folded = sca(x, 10, 25.0, rotate_z=False)
    _close(folded, fast["g25"])


def test_row_sharded_equals_single_device(ref, fast):
    assert jax.device_count() == 4
    mesh = jax.make_mesh((4,), ("data",))
    xs = jax.device_put(jnp.asarray(ref["X"], jnp.float32), NamedSharding(mesh, P("data")))
    for method in ("gram", "products"):
        four = sca(xs, 10, 25.0, rotate_z=False, method=method)
        _close(four, fast["g25"])
        assert int(four.n_iter) == int(fast["g25"].n_iter)


def test_vmap_sweep_over_gamma_equals_single_calls(ref, fast):
    x = ref["X"].astype(np.float32)
    swept = sca_sweep(x, 10, [25.0, 30.0, float(ref["default/gamma"])], rotate_z=False)
    chex.assert_shape(swept.loadings, (3, 200, 10))
    for i, case in ((0, "g25"), (2, "default")):
        one = jax.tree.map(lambda a, i=i: a[i], swept)
        _close(one, fast[case])
        assert int(one.n_iter) == int(fast[case].n_iter)
    assert float(swept.sparsity[0]) > float(swept.sparsity[1]) > float(swept.sparsity[2])


def test_target_sparsity(ref):
    x = ref["X"].astype(np.float32)
    res = sca(x, 10, target_sparsity=0.8, rotate_z=False)
    assert abs(float(res.sparsity) - 0.8) < 0.03
    assert 10 < float(res.gamma) < 44.8
    np.testing.assert_allclose(float(np.abs(np.asarray(res.loadings)).sum()), float(res.gamma),
                               rtol=1e-4)
    hard = sca(x, 10, target_sparsity=0.9, shrink="hard", rotate_z=False)
    assert float(hard.sparsity) >= 0.9


def test_hard_shrink_keeps_gamma_entries(ref):
    res = sca(ref["X"].astype(np.float32), 10, 150, shrink="hard", rotate_z=False)
    assert int(np.count_nonzero(np.asarray(res.loadings))) == 150
    assert np.all(np.any(np.asarray(res.loadings) != 0, axis=0))


def test_gamma_above_l1_means_no_shrinkage(ref):
    # The default gamma (44.72) is already above the rotated loadings' L1 norm (42.87).
    x = ref["X"].astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        big = sca(x, 10, 1000.0, rotate_z=False)
    assert any("Improper sparsity parameter gamma=1000.0" in str(w.message) for w in caught)
    np.testing.assert_allclose(np.asarray(big.loadings), ref["default/loadings"], atol=1e-4)
    assert float(big.sparsity) == 0.0
    assert float(np.abs(np.asarray(big.loadings)).sum()) < 43.0


def test_tiny_gamma_raises_naming_gamma(ref):
    with pytest.warns(UserWarning, match="Improper"), pytest.raises(ValueError, match="gamma=0.5"):
        sca(ref["X"].astype(np.float32), 10, 0.5, rotate_z=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_raises(ref, bad):
    x = ref["X"].astype(np.float32)
    x[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        sca(x, 10, rotate_z=False)


def test_bad_shapes_and_k_raise():
    x = np.random.default_rng(0).standard_normal((6, 40)).astype(np.float32)
    with pytest.raises(ValueError, match="k=7"):
        sca(x, 7)
    with pytest.raises(ValueError, match="k=0"):
        sca(x, 0)
    with pytest.raises(ValueError, match="2-D"):
        sca(x[0], 2)
    with pytest.raises(ValueError, match="init_v"):
        sca(x, 2, init_v=np.zeros((3, 2)))


def test_dead_constant_columns_and_n_below_p():
    rng = np.random.default_rng(1)
    f = rng.standard_normal((300, 3)) * [5.0, 4.0, 3.0]
    load = np.zeros((30, 3))
    load[0:8, 0], load[10:18, 1], load[20:28, 2] = 0.35, 0.35, 0.35
    x = (f @ load.T + 0.2 * rng.standard_normal((300, 30))).astype(np.float32)
    x[:, 9] = 4.0   # constant
    x[:, 19] = 0.0  # all zero
    res = sca(x, 3, 4.0, rotate_z=False)
    chex.assert_tree_all_finite(res)
    assert np.abs(np.asarray(res.loadings)[[9, 19]]).max() < 1e-6
    assert bool(res.converged) and float(res.sparsity) > 0.5
    wide = sca(x[:12], 3, 4.0, rotate_z=False)   # n < p
    chex.assert_shape(wide.scores, (12, 3))
    chex.assert_tree_all_finite(wide)
    with pytest.raises(ValueError, match="rank"):
        sca(np.repeat(x[:, :2], 15, axis=1), 3, 4.0, rotate_z=False)


def test_thresholds_are_exact_in_float32():
    y = jax.random.normal(jax.random.key(0), (64, 5))
    soft = jax.jit(soft_threshold_l1)
    for gamma in (1.0, 7.5, 20.0):
        out = soft(y, gamma)
        assert float(jnp.abs(out).sum()) == pytest.approx(gamma, rel=1e-5)
    assert jnp.array_equal(soft(y, 1e4), y)
    assert int(jnp.count_nonzero(hard_threshold_l0(y, 37.9))) == 37


def _grad_problem():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((60, 3)) * [4.0, 3.0, 2.0]
    load = np.zeros((12, 3))
    load[0:4, 0], load[4:8, 1], load[8:12, 2] = 0.5, 0.5, 0.5
    x = f @ load.T + 0.3 * rng.standard_normal((60, 12))
    return x, rng.standard_normal((12, 3)), rng.standard_normal((60, 12))


def test_grad_matches_finite_differences_x64():
    with jax.enable_x64(True):
        x, c, d = _grad_problem()

        def loss(x, gamma):
            r = sca_fixed(x, 3, gamma, n_sweeps=4, varimax_steps=20)
            return jnp.sum(r.loadings * c) + 0.01 * jnp.sum(r.scores[:5])

        gamma = 3.0
        gx, gg = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(x), gamma)
        h = 1e-6
        fd_x = (loss(x + h * d, gamma) - loss(x - h * d, gamma)) / (2 * h)
        fd_g = (loss(x, gamma + h) - loss(x, gamma - h)) / (2 * h)
        np.testing.assert_allclose(float(jnp.sum(gx * d)), float(fd_x), rtol=1e-5)
        np.testing.assert_allclose(float(gg), float(fd_g), rtol=1e-5)
        assert abs(float(gg)) > 1e-3  # shrinkage is active, so gamma matters


def test_fixed_mode_jit_vmap_over_gamma():
    x, _, _ = _grad_problem()
    x = jnp.asarray(x, jnp.float32)
    run = jax.jit(jax.vmap(lambda g: sca_fixed(x, 3, g, n_sweeps=6).loadings))
    out = run(jnp.asarray([2.5, 3.0, 20.0]))
    chex.assert_shape(out, (3, 12, 3))
    l1 = jnp.abs(out).sum(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(l1[:2]), [2.5, 3.0], rtol=1e-4)
    assert float(l1[2]) < 20.0  # above the L1 norm of the rotated loadings: untouched
