"""Tests for the attribute classifier, measured MNIST attributes and the CelebA-format reader."""
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED

from sparse_jax.data import attributes, celeba, loaders
from sparse_jax.io import model_dirs
from sparse_jax.models import classifier as clf
from sparse_jax.training import classifier as ct

TINY_WIDTHS = (4, 8)


# ---------------------------------------------------------------- measured attributes


def _canvas(n=1, size=32):
    return np.zeros((n, size, size), np.float32)


def _bar(width, slant=0.0, size=32, length=16):
    """A bright bar of `width` pixels, centred; its top shifted right by slant * (half length)."""
    ink = _canvas(1, size)
    c = size // 2
    for y in range(c - length // 2, c + length // 2):
        x0 = c + int(round(slant * (c - y))) - width // 2
        ink[0, y, x0:x0 + width] = 1.0
    return ink


def test_thickness_increases_with_stroke_width():
    raw = np.concatenate([attributes.measure(_bar(w)) for w in (1, 2, 3, 5)])
    assert np.all(np.diff(raw[:, 0]) > 0)


def test_slant_sign_follows_shear():
    right = float(attributes.measure(_bar(2, slant=0.5))[0, 1])
    left = float(attributes.measure(_bar(2, slant=-0.5))[0, 1])
    upright = float(attributes.measure(_bar(2))[0, 1])
    assert right > 0.3 and left < -0.3 and abs(upright) < 1e-6


def _shear(img, s):
    """Shears [H, W]: row y moves right by s * (centre - y), so the top leans right for s > 0."""
    out = np.zeros_like(img)
    c = img.shape[0] / 2
    for y in range(img.shape[0]):
        out[y] = np.roll(img[y], int(round(s * (c - y))))
    return out


def test_sheared_digit_changes_slant_direction():
    x, _ = loaders.load_images(os.path.join(SHARED, "data", "mnist.npz"), "test")
    ink = (loaders.to_model_images(x[:20], 32)[:, 0] + 1) / 2
    base = np.asarray(attributes.measure(ink))[:, 1]
    right = np.asarray(attributes.measure(np.stack([_shear(i, 0.4) for i in ink])))[:, 1]
    left = np.asarray(attributes.measure(np.stack([_shear(i, -0.4) for i in ink])))[:, 1]
    assert np.all(right > base + 0.2) and np.all(left < base - 0.2)
    assert np.mean(right > 0) >= 0.9 and np.mean(left < 0) >= 0.9


def test_width_increases_with_horizontal_stretch_not_slant():
    ink = _canvas(3)
    yy, xx = np.mgrid[:32, :32]
    for i, a in enumerate((3.0, 6.0, 10.0)):
        r = ((xx - 15.5) / a) ** 2 + ((yy - 15.5) / 8.0) ** 2
        ink[i] = (np.abs(r - 1.0) < 0.25).astype(np.float32)  # an ellipse ring, 2a wide
    width = np.asarray(attributes.measure(ink))[:, 2]
    assert np.all(np.diff(width) > 0)
    # A slanted bar is as wide as an upright one once the slant is taken out.
    w_up = float(attributes.measure(_bar(2))[0, 2])
    w_sl = float(attributes.measure(_bar(2, slant=0.5))[0, 2])
    assert abs(w_sl - w_up) < 0.02


def test_quantile_mapping():
    raw = np.random.default_rng(0).normal(size=(1000, 3)).astype(np.float32)
    tables = attributes.fit_quantiles(raw)
    chex.assert_shape(tables, (3, attributes.NUM_QUANTILES))
    unit = np.asarray(attributes.to_unit(raw, tables))
    np.testing.assert_allclose(np.median(unit, axis=0), 0.5, atol=0.02)
    assert unit.min() >= 0 and unit.max() <= 1
    extreme = np.asarray(attributes.to_unit(np.array([[-99.0, 0.0, 99.0]]), tables))
    np.testing.assert_allclose(extreme[0, [0, 2]], [0.0, 1.0])
    blank = np.asarray(attributes.measure(_canvas(1)))
    np.testing.assert_array_equal(blank, np.zeros((1, 3)))


# ---------------------------------------------------------------- network, loss, training


def _digits_cfg_and_data(limit=96):
    return ct.prepare_data(loaders.SKLEARN_DIGITS, resolution=16, limit=limit, widths=TINY_WIDTHS)


def test_prepare_digits_targets():
    cfg, train, test = _digits_cfg_and_data()
    assert cfg.attribute_names == tuple(f"digit_{i}" for i in range(10)) + attributes.MEASURED
    assert cfg.head_types == ("softmax",) * 10 + ("sigmoid",) * 3
    chex.assert_shape(train.images, (96, 1, 16, 16))
    chex.assert_shape(train.targets, (96, 13))
    np.testing.assert_allclose(train.targets[:, :10].sum(1), 1.0)
    assert np.all((train.targets[:, 10:] >= 0) & (train.targets[:, 10:] <= 1))
    chex.assert_shape(np.asarray(cfg.measured_quantiles), (3, attributes.NUM_QUANTILES))


def test_training_lowers_loss_and_is_deterministic():
    cfg, train, _ = _digits_cfg_and_data()
    tcfg = ct.TrainConfig(epochs=6, batch_size=32, learning_rate=1e-2, max_shift=1, seed=3)
    params0 = clf.init_classifier(jax.random.key(3), cfg)
    x = jnp.asarray(train.images, jnp.float32) / 127.5 - 1
    loss0, _ = ct.loss_fn(cfg, params0, x, jnp.asarray(train.targets))
    params, history = ct.train(cfg, tcfg, train, progress=False)
    loss1, parts = ct.loss_fn(cfg, params, x, jnp.asarray(train.targets))
    assert float(loss1) < 0.8 * float(loss0)
    assert history[-1] < history[0]
    assert set(parts) == {"head0", "head1"}
    params_again, _ = ct.train(cfg, tcfg, train, progress=False)
    chex.assert_trees_all_equal(params, params_again)


def test_loss_ignores_missing_labels():
    cfg = clf.ClassifierConfig(heads=(clf.Head("softmax", ("a", "b")), clf.Head("sigmoid", ("c",))),
                               resolution=8, widths=TINY_WIDTHS)
    params = clf.init_classifier(jax.random.key(0), cfg)
    x = jax.random.uniform(jax.random.key(1), (4, 1, 8, 8), minval=-1, maxval=1)
    t = jnp.array([[1, 0, 1], [0, 1, 0], [1, 0, 1], [0, 1, 0]], jnp.float32)
    t_nan = t.at[2:, :].set(jnp.nan)
    full, _ = ct.loss_fn(cfg, params, x[:2], t[:2])
    masked, _ = ct.loss_fn(cfg, params, x, t_nan)
    np.testing.assert_allclose(float(full), float(masked), rtol=1e-6)
    assert np.isfinite(float(masked))


def test_random_shift():
    x = jnp.arange(2 * 1 * 6 * 6, dtype=jnp.float32).reshape(2, 1, 6, 6)
    np.testing.assert_array_equal(ct.random_shift(jax.random.key(0), x, 0), x)
    y = ct.random_shift(jax.random.key(0), x, 2)
    chex.assert_shape(y, x.shape)
    for i in range(2):  # every output is a translate of its input, padded with -1
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if np.array_equal(np.asarray(y[i, 0]), _translate(np.asarray(x[i, 0]), dy, dx))]
        assert hits


def _translate(img, dy, dx):
    p = np.pad(img, 2, constant_values=-1.0)
    h, w = img.shape
    return p[2 - dy:2 - dy + h, 2 - dx:2 - dx + w]


def test_predict_probs_shapes_and_resizing():
    cfg, _, _ = _digits_cfg_and_data(limit=16)
    params = clf.init_classifier(jax.random.key(0), cfg)
    fn = jax.jit(chex.assert_max_traces(n=1)(
        lambda p, im: clf.predict_probs(cfg, p, im)))
    grey = jax.random.uniform(jax.random.key(1), (5, 1, 16, 16), minval=-1, maxval=1)
    probs = fn(params, grey)
    chex.assert_shape(probs, (5, 13))
    chex.assert_tree_all_finite(probs)
    np.testing.assert_allclose(np.asarray(probs[:, :10]).sum(1), 1.0, rtol=1e-5)
    assert float(probs.min()) >= 0 and float(probs.max()) <= 1
    fn(params, grey + 0.1)  # same shape: no retrace
    rgb = jax.random.uniform(jax.random.key(2), (3, 3, 32, 32), minval=-1, maxval=1)
    chex.assert_shape(clf.predict_probs(cfg, params, rgb), (3, 13))
    with pytest.raises(ValueError, match="images must be"):
        clf.predict_probs(cfg, params, jnp.zeros((2, 16, 16)))
    # A generator RGB image whose three channels are equal scores like the grey image.
    rep = jnp.repeat(grey, 3, axis=1)
    chex.assert_trees_all_close(clf.predict_probs(cfg, params, rep), probs, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match="kind"):
        clf.Head("relu", ("a",))
    with pytest.raises(ValueError, match="unique"):
        clf.ClassifierConfig(heads=(clf.Head("sigmoid", ("a", "a")),))
    with pytest.raises(ValueError, match="divisible"):
        clf.ClassifierConfig(heads=(clf.Head("sigmoid", ("a",)),), resolution=10, widths=(4, 8, 16))


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip(tmp_path):
    cfg, _, test = _digits_cfg_and_data(limit=16)
    params = clf.init_classifier(jax.random.key(5), cfg)
    out = str(tmp_path / "clf")
    model_dirs.save_classifier(out, cfg, params, {"note": 1})
    model_dirs.save_classifier(out, cfg, params, {"note": 2})  # overwriting is allowed
    cfg2, params2 = model_dirs.load_classifier(out)
    assert cfg2 == cfg
    chex.assert_trees_all_equal(params, params2)
    with open(os.path.join(out, "config.json")) as f:
        meta = json.load(f)
    assert meta["format"] == "sparse-jax-classifier" and meta["architecture"] == "cnn"
    d = meta["config"]
    assert d["attribute_names"][-3:] == ["thickness", "slant", "width"]
    assert d["head_types"][0] == "softmax" and d["head_types"][-1] == "sigmoid"
    assert len(d["measured_quantiles"]) == 3
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f) == {"note": 2}
    x = jnp.asarray(test.images, jnp.float32) / 127.5 - 1
    chex.assert_trees_all_equal(clf.predict_probs(cfg, params, x),
                                clf.predict_probs(cfg2, params2, x))
    assert sorted(os.listdir(out)) == ["config.json", "metrics.json", "variables"]
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's 0700


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such classifier directory"):
        model_dirs.load_classifier(str(tmp_path / "none"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="format"):
        model_dirs.load_classifier(str(bad))
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="JSON"):
        model_dirs.load_classifier(str(bad))


# ---------------------------------------------------------------- CelebA-format folders


ATTRS = ["Smiling", "Male", "Eyeglasses"]


def _write_celeba(folder, n=10, size=(20, 16), bad_size_at=None, subdir=True):
    from PIL import Image  # installed with matplotlib

    img_dir = folder / celeba.IMAGE_SUBDIR if subdir else folder
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lines = [str(n), "  ".join(ATTRS)]
    values = np.where(rng.random((n, len(ATTRS))) > 0.5, 1, -1)
    for i in range(n):
        name = f"{i + 1:06d}.png"
        h, w = size if i != bad_size_at else (size[0] + 2, size[1])
        # Attribute 0 ("Smiling") decides the brightness, so it is learnable.
        level = 220 if values[i, 0] > 0 else 30
        pix = np.clip(level + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pix).save(img_dir / name)
        lines.append(name + "  " + " ".join(f"{v:2d}" for v in values[i]))
    (folder / celeba.ATTR_FILE).write_text("\n".join(lines) + "\n")
    return values


def test_celeba_reader(tmp_path):
    values = _write_celeba(tmp_path)
    names, files, vals = celeba.read_attributes(str(tmp_path / celeba.ATTR_FILE))
    assert names == ATTRS and files[0] == "000001.png"
    np.testing.assert_array_equal(vals, values)
    assert celeba.is_celeba_folder(str(tmp_path))
    x, t, names = celeba.load_celeba(str(tmp_path), "train")
    xt, tt, _ = celeba.load_celeba(str(tmp_path), "test")
    assert len(x) == 9 and len(xt) == 1
    chex.assert_shape(x, (9, 20, 16, 3))
    assert x.dtype == np.uint8 and set(np.unique(t)) <= {0.0, 1.0}
    (tmp_path / celeba.PARTITION_FILE).write_text(
        "".join(f"{i + 1:06d}.png {0 if i < 6 else 2}\n" for i in range(10)))
    x, t, _ = celeba.load_celeba(str(tmp_path), "train")
    np.testing.assert_array_equal(t, (values[:6] > 0).astype(np.float32))
    assert len(celeba.load_celeba(str(tmp_path), "test", limit=2)[0]) == 2


def test_celeba_train_and_round_trip(tmp_path):
    _write_celeba(tmp_path / "data", n=40, subdir=False)
    out = str(tmp_path / "clf")
    tcfg = ct.TrainConfig(epochs=15, batch_size=12, learning_rate=1e-2, max_shift=0, seed=0)
    metrics = ct.train_and_save(str(tmp_path / "data"), out, tcfg, resolution=8,
                                widths=TINY_WIDTHS, progress=False)
    assert set(metrics["attributes"]) == set(ATTRS)
    assert metrics["attributes"]["Smiling"]["accuracy"] == 1.0
    cfg, params = model_dirs.load_classifier(out)
    assert cfg.attribute_names == tuple(ATTRS) and cfg.in_channels == 3
    assert cfg.head_types == ("sigmoid",) * 3
    probs = clf.predict_probs(cfg, params, -jnp.ones((2, 3, 64, 64)))
    chex.assert_shape(probs, (2, 3))
    assert float(probs[0, 0]) < 0.5  # a dark image is "not smiling" here


@pytest.mark.parametrize("content,match", [
    ("x\nA B\n", r"list_attr_celeba.txt:1: expected the number"),
    ("1\n\n", r":2: expected attribute names"),
    ("1\nA B\nf.png 1\n", r":3: expected a filename and 2 values"),
    ("1\nA B\nf.png 1 0\n", r":3: values must be -1 or 1"),
    ("1\nA B\nf.png 1 yes\n", r":3: values must be -1 or 1"),
    ("2\nA B\nf.png 1 1\nf.png 1 -1\n", r":4: duplicate filename"),
    ("3\nA B\nf.png 1 1\n", r":1: header says 3 images but 1"),
])
def test_celeba_malformed_attribute_file(tmp_path, content, match):
    path = tmp_path / celeba.ATTR_FILE
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        celeba.read_attributes(str(path))


def test_celeba_bad_images(tmp_path):
    _write_celeba(tmp_path / "a", n=4, bad_size_at=2)
    (tmp_path / "a" / celeba.PARTITION_FILE).write_text(
        "".join(f"{i + 1:06d}.png 0\n" for i in range(4)))
    with pytest.raises(ValueError, match=r"000003.png: image is 16x22 but .*000001.png is 16x20"):
        celeba.load_celeba(str(tmp_path / "a"), "train")
    _write_celeba(tmp_path / "b", n=4)
    os.remove(tmp_path / "b" / celeba.IMAGE_SUBDIR / "000002.png")
    (tmp_path / "b" / celeba.PARTITION_FILE).write_text(
        "".join(f"{i + 1:06d}.png 0\n" for i in range(4)))
    with pytest.raises(FileNotFoundError, match="000002.png"):
        celeba.load_celeba(str(tmp_path / "b"), "train")
    (tmp_path / "b" / celeba.IMAGE_SUBDIR / "000002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="000002.png: cannot decode"):
        celeba.load_celeba(str(tmp_path / "b"), "train")


# ---------------------------------------------------------------- the shipped MNIST classifier


def test_shipped_classifier_on_mnist():
    path = model_dirs.default_classifier_path()
    assert os.path.isdir(path), f"shipped classifier missing at {path}"
    assert sorted(os.listdir(path)) == ["README.md", "config.json", "metrics.json", "variables"]
    cfg, params = model_dirs.load_classifier()
    assert cfg.num_attributes == 13 and cfg.resolution == 32
    assert clf.num_params(params) * 4 < 2_000_000
    x, y = loaders.load_images(os.path.join(SHARED, "data", "mnist.npz"), "test")
    imgs = loaders.to_model_images(x[:300], 32)
    probs = np.asarray(jax.jit(lambda p, im: clf.predict_probs(cfg, p, im))(params, imgs))
    assert np.mean(probs[:, :10].argmax(1) == y[:300]) >= 0.97
    measured = np.asarray(attributes.measured_attributes(
        imgs, jnp.asarray(cfg.measured_quantiles)))
    for k in range(3):
        assert np.corrcoef(probs[:, 10 + k], measured[:, k])[0, 1] > 0.8
    # Generator-style input: RGB at another resolution still classifies.
    rgb = np.repeat(loaders.to_model_images(x[:100], 64), 3, axis=1)
    probs_rgb = np.asarray(clf.predict_probs(cfg, params, rgb))
    assert np.mean(probs_rgb[:, :10].argmax(1) == y[:100]) >= 0.95
