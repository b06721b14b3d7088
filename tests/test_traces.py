"""One compilation per run: `chex.assert_max_traces` pins the jitted steps of features, walks,
generate, sample quality and the classifier's dataset prediction, with ragged last batches, under
`jax.transfer_guard("disallow")` (every host <-> device copy explicit)."""
import functools

import chex
import conftest  # noqa: F401  (4 CPU devices before JAX starts)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax.core import seeds
from sparse_jax.discovery import features
from sparse_jax.evaluation import sample_quality, walks
from sparse_jax.generation import generate
from sparse_jax.models import classifier as clf
from sparse_jax.models import stylegan2 as sg
from sparse_jax.training import classifier as clf_training

CFG = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, mapping_layers=2,
                         channel_base=64, channel_max=8)
CFG_C = clf_training.mnist_config(resolution=8, widths=(4, 8))


@functools.lru_cache(maxsize=1)
def _variables():
    return sg.init_generator(jax.random.key(0), CFG)


@functools.lru_cache(maxsize=1)
def _classifier():
    return clf.init_classifier(jax.random.key(1), CFG_C)


@pytest.fixture
def pin(monkeypatch):
    """pin(module, maker, cache, n): every function `module.maker` builds may be traced n times
    in total (chex keys the count by where it was wrapped, so a second compilation of the same
    step, e.g. for a ragged batch or a fresh jit per call, also counts)."""
    caches = []

    def _pin(module, maker, cache, n=1):
        original = getattr(module, maker)
        monkeypatch.setattr(module, maker,
                            lambda *a, **k: chex.assert_max_traces(original(*a, **k), n=n))
        cache.cache_clear()
        caches.append(cache)

    chex.clear_trace_counter()
    _variables(), _classifier()  # built before any transfer guard
    yield _pin
    for cache in caches:  # compiled steps holding counted functions must not outlive the test
        cache.cache_clear()
    chex.clear_trace_counter()


def _labels(params, images):
    return jnp.argmax(clf.predict_probs(CFG_C, params, images)[:, :10], axis=1)


def test_features_compile_once_for_ragged_batches_and_several_calls(pin):
    pin(features, "_make_step", features._compiled_step)
    label_fn = jax.tree_util.Partial(_labels, _classifier())
    with jax.transfer_guard("disallow"):
        a = features.sample_features(CFG, _variables(), seeds.stream_key(0, seeds.FIT_STREAM),
                                     10, batch_size=4, label_fn=label_fn, progress=False)
        # Another stream and another ragged count reuse the compilation.
        b = features.sample_features(CFG, _variables(), seeds.stream_key(0, seeds.FIT_STREAM),
                                     7, batch_size=4, label_fn=label_fn, progress=False)
    np.testing.assert_array_equal(a.x[:7], b.x)
    np.testing.assert_array_equal(a.labels[:7], b.labels)
    assert a.labels.shape == (10,) and set(np.unique(a.labels)) <= set(range(10))
    with pytest.raises(AssertionError, match="traced > 1"):  # the pin does bite
        features.sample_features(CFG, _variables(), jax.random.key(0), 10, batch_size=6,
                                 label_fn=label_fn, progress=False)


def test_discovery_compiles_the_feature_step_once_for_fit_and_regression(pin):
    from sparse_jax.discovery import run as discover

    pin(features, "_make_step", features._compiled_step)
    r = discover.run_discovery(CFG, _variables(), methods="pca,pca-w", layers="b4.conv1",
                               num_samples=30, num_regression_samples=21, k=3, batch=8,
                               progress=False)
    assert r.summary["num_regression_samples"] == 21


def test_walks_compile_once_across_methods_and_walk_sizes(pin):
    pin(walks, "_make_step", walks._compiled_step)
    rng = np.random.default_rng(0)
    predict = jax.tree_util.Partial(
        lambda p, img: clf.predict_probs(CFG_C, p, img), _classifier())
    key = seeds.stream_key(0, seeds.IMAGE_STREAM)
    outs = []
    with jax.transfer_guard("disallow"):
        # 3 and 5 directions, 2 and 3 distances, item counts that are no multiple of the chunk.
        for d, t, s in ((3, 2, 5), (5, 3, 7), (1, 4, 9)):
            outs.append(walks.run_walks(CFG, _variables(), key, np.arange(s),
                                        rng.normal(size=(d, CFG.w_dim)), np.linspace(0, 1, t),
                                        predict_fn=predict, chunk=12))
    assert outs[1].preds.shape == (7, 5, 2, 3, 10)
    # Seed i's unedited image is the same in every walk.
    np.testing.assert_allclose(outs[0].preds[:, 0, 0, 0], outs[1].preds[:5, 0, 0, 0], atol=1e-6)


def test_w_pca_stdev_one_jit_for_every_call(pin):
    pin(walks, "_make_mapper", walks._compiled_mapper)
    key = seeds.stream_key(0, seeds.D_MAX_STREAM)
    with jax.transfer_guard("disallow"):
        a = walks.w_pca_stdev(CFG, _variables(), key, 250, chunk=64)   # ragged last chunk
        b = walks.w_pca_stdev(CFG, _variables(), key, 250, chunk=64)   # was a new jit per call
    assert a == b and a > 0


def test_generate_compiles_mapping_and_synthesis_once(pin):
    pin(generate, "_make_mapper", generate._compiled)
    pin(generate, "_make_synth", generate._compiled)
    kind, z = generate.resolve_latents(CFG, "0-6", None, None)
    with jax.transfer_guard("disallow"):
        imgs, ws = generate.render(CFG, _variables(), kind, z, batch=3)   # 3 + 3 + 1
        again, _ = generate.render(CFG, _variables(), kind, z[:4], batch=3)
    chex.assert_shape(imgs, (7, 1, 8, 8))
    chex.assert_shape(ws, (7, CFG.num_ws, CFG.w_dim))
    np.testing.assert_allclose(again, imgs[:4], atol=1e-6)
    ref = sg.generate(CFG, _variables(), jnp.asarray(z))
    np.testing.assert_allclose(imgs, np.asarray(ref), atol=1e-5)


def test_sample_quality_compiles_once(pin):
    pin(sample_quality, "_make_step", sample_quality._compiled_step)
    key = seeds.stream_key(0, seeds.QUALITY_STREAM)
    with jax.transfer_guard("disallow"):
        p = sample_quality.digit_predictions(CFG, _variables(), CFG_C, _classifier(), key, 11,
                                             batch=4)
        q = sample_quality.digit_predictions(CFG, _variables(), CFG_C, _classifier(), key, 5,
                                             batch=4)
    chex.assert_shape(p, (11, 10))
    np.testing.assert_allclose(p[:5], q, atol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    # Row i does not depend on the batch size.
    z = seeds.latents(key, jnp.arange(11), CFG.z_dim)
    ref = clf.predict_probs(CFG_C, _classifier(), sg.generate(CFG, _variables(), z))[:, :10]
    np.testing.assert_allclose(p, np.asarray(ref), atol=1e-5)


def test_predict_dataset_compiles_once(pin):
    pin(clf_training, "_make_predict", clf_training._predict_fn)
    images = np.random.default_rng(0).integers(0, 256, (7, 1, 8, 8), dtype=np.uint8)
    with jax.transfer_guard("disallow"):
        p = clf_training.predict_dataset(CFG_C, _classifier(), images, batch=3)
    ref = clf.predict_probs(CFG_C, _classifier(), clf_training.dequantize(jnp.asarray(images)))
    np.testing.assert_allclose(p, np.asarray(ref), atol=1e-6)


def test_generate_and_render_entry_points_run_under_the_transfer_guard(tmp_path):
    """What bin/generate and bin/render call, from the model directory on: no implicit copy."""
    from sparse_jax.evaluation import run as evaluate
    from sparse_jax.io import direction_files, model_dirs

    gen_dir = str(tmp_path / "gen")
    model_dirs.save_generator(gen_dir, CFG, _variables())
    dirs = np.eye(CFG.w_dim, dtype=np.float32)[:2]
    path = str(tmp_path / "directions_x.npz")
    np.savez(path, lat_comp=dirs, lat_mean=np.zeros(CFG.w_dim), lat_stdev=np.ones(2),
             method=np.array("x"))
    direction_files.read_directions(path, CFG.w_dim)
    with jax.transfer_guard("disallow"):
        generate.run(gen_dir, str(tmp_path / "g.npz"), seeds="0-4", batch=2)
        evaluate.run_render(path, str(tmp_path / "r.png"), generator=gen_dir, seeds=[0, 3],
                            num_directions=2, sigmas=[-1.0, 0.0, 1.0])
    with np.load(tmp_path / "g.npz") as f:
        chex.assert_shape(f["images"], (5, 1, 8, 8))
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
