"""Tests for sparse_jax.data: npz / IDX / sklearn digits loaders and the model-input conversion."""
import gzip
import os
import struct

import chex
import numpy as np
import pytest
from conftest import SHARED

from sparse_jax.data import loaders


def _write_idx(path, array, magic):
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
    if path.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(payload)


def _fake_mnist(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, (n,), dtype=np.uint8))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder(tmp_path, gz):
    ext = ".gz" if gz else ""
    xtr, ytr = _fake_mnist(7, 0)
    xte, yte = _fake_mnist(3, 1)
    _write_idx(str(tmp_path / f"train-images-idx3-ubyte{ext}"), xtr, 0x803)
    _write_idx(str(tmp_path / f"train-labels-idx1-ubyte{ext}"), ytr, 0x801)
    _write_idx(str(tmp_path / f"t10k-images-idx3-ubyte{ext}"), xte, 0x803)
    _write_idx(str(tmp_path / f"t10k-labels-idx1-ubyte{ext}"), yte, 0x801)
    x, y = loaders.load_images(str(tmp_path), "train")
    np.testing.assert_array_equal(x, xtr)
    np.testing.assert_array_equal(y, ytr.astype(np.int32))
    assert x.dtype == np.uint8 and y.dtype == np.int32
    x, y = loaders.load_images(str(tmp_path), "test")
    np.testing.assert_array_equal(x, xte)
    np.testing.assert_array_equal(y, yte)


def test_idx_without_labels_gives_minus_one(tmp_path):
    xtr, _ = _fake_mnist(4, 0)
    _write_idx(str(tmp_path / "train-images-idx3-ubyte"), xtr, 0x803)
    _, y = loaders.load_images(str(tmp_path), "train")
    np.testing.assert_array_equal(y, -np.ones(4, np.int32))


def test_idx_wrong_magic(tmp_path):
    xtr, _ = _fake_mnist(2, 0)
    path = str(tmp_path / "train-images-idx3-ubyte")
    _write_idx(path, xtr, 0x801)  # label magic on an image file
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*magic"):
        loaders.load_images(str(tmp_path), "train")


def test_idx_truncated(tmp_path):
    xtr, _ = _fake_mnist(2, 0)
    path = str(tmp_path / "train-images-idx3-ubyte")
    _write_idx(path, xtr, 0x803)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 5)
    with pytest.raises(ValueError, match="header promises"):
        loaders.load_images(str(tmp_path), "train")


def test_idx_missing_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        loaders.load_images(str(tmp_path), "test")


def test_npz(tmp_path):
    xtr, ytr = _fake_mnist(5, 0)
    xte, yte = _fake_mnist(2, 1)
    path = str(tmp_path / "d.npz")
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    x, y = loaders.load_images(path)
    np.testing.assert_array_equal(x, xtr)
    np.testing.assert_array_equal(y, ytr)
    x, y = loaders.load_images(path, "test")
    np.testing.assert_array_equal(x, xte)


def test_npz_missing_key_and_file(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x_train=_fake_mnist(2, 0)[0])
    _, y = loaders.load_images(path, "train")
    np.testing.assert_array_equal(y, [-1, -1])
    with pytest.raises(ValueError, match="d.npz.*x_test"):
        loaders.load_images(path, "test")
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        loaders.load_images(str(tmp_path / "nope.npz"))
    with pytest.raises(ValueError, match="split"):
        loaders.load_images(path, "val")


def test_npz_wrong_dtype(tmp_path):
    path = str(tmp_path / "f.npz")
    np.savez(path, x_train=np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        loaders.load_images(path)


def test_sklearn_digits_split():
    xtr, ytr = loaders.load_images(loaders.SKLEARN_DIGITS, "train")
    xte, yte = loaders.load_images(loaders.SKLEARN_DIGITS, "test")
    assert xtr.shape[1:] == (8, 8) and xtr.dtype == np.uint8
    assert len(xtr) + len(xte) == 1797
    assert abs(len(xtr) - 0.8 * 1797) <= 1
    assert xtr.max() == 255 and xtr.min() == 0
    assert set(np.unique(ytr)) == set(range(10)) and set(np.unique(yte)) == set(range(10))
    # The split is deterministic across calls.
    xtr2, _ = loaders.load_images(loaders.SKLEARN_DIGITS, "train")
    np.testing.assert_array_equal(xtr, xtr2)


def test_to_model_images_pads_mnist():
    x = np.zeros((2, 28, 28), np.uint8)
    x[:, 0, 0] = 255
    out = loaders.to_model_images(x, 32)
    chex.assert_shape(out, (2, 1, 32, 32))
    assert out.dtype == np.float32
    assert out[0, 0, 2, 2] == 1.0  # the top-left pixel moved by the 2-pixel pad
    assert out[0, 0, 0, 0] == -1.0 and out.min() == -1.0


def test_to_model_images_upsamples_digits_and_channels():
    x, _ = loaders.load_images(loaders.SKLEARN_DIGITS, "test")
    out = loaders.to_model_images(x[:3], 32)
    chex.assert_shape(out, (3, 1, 32, 32))
    assert -1.0 <= out.min() and out.max() <= 1.0
    # Block-average back to 8x8 stays close to the source digit.
    back = out[:, 0].reshape(3, 8, 4, 8, 4).mean(axis=(2, 4))
    assert np.abs(back - (x[:3] / 127.5 - 1.0)).mean() < 0.2
    rgb = loaders.to_model_images(x[:3], 16, channels=3)
    chex.assert_shape(rgb, (3, 3, 16, 16))
    np.testing.assert_array_equal(rgb[:, 0], rgb[:, 2])


def test_to_model_images_rgb_noncentred_crop():
    x = np.zeros((1, 20, 16, 3), np.uint8)
    x[0, 2:18] = 255  # the central 16x16 square
    out = loaders.to_model_images(x, 16)
    chex.assert_shape(out, (1, 3, 16, 16))
    np.testing.assert_array_equal(out, np.ones_like(out))
    grey = loaders.to_model_images(x, 8, channels=1)
    chex.assert_shape(grey, (1, 1, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        loaders.to_model_images(np.zeros((2, 3, 4, 5), np.uint8))


def test_shared_mnist_counts():
    path = os.path.join(SHARED, "data", "mnist.npz")
    x, y = loaders.load_images(path, "test")
    chex.assert_shape(x, (10000, 28, 28))
    assert np.bincount(y).tolist()[0] == 980
