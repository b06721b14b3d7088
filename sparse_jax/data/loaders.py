"""Image data sets for training the small default models: MNIST (npz or IDX) and sklearn digits.

`load_images` returns raw uint8 images; `to_model_images` turns them into the float NCHW tensors in
[-1, 1] that the generator, discriminator and classifier consume.
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

SKLEARN_DIGITS = "sklearn_digits"
SPLITS = ("train", "test")

# IDX file names as distributed by LeCun et al.; some mirrors use a dot before "idx".
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_DIGITS_TRAIN_FRACTION = 0.8
_DIGITS_SPLIT_SEED = 0


def load_images(spec: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Loads an image data set.

    Args:
      spec: a path to an `.npz` file with keys `x_train`, `y_train`, `x_test`, `y_test` (labels
        optional); a folder holding the four MNIST IDX files (`train-images-idx3-ubyte`,
        `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each
        optionally `.gz`; labels optional); or the literal `"sklearn_digits"` (needs
        scikit-learn).
      split: "train" or "test".

    Returns:
      images: uint8 [N, H, W] (grayscale) or [N, H, W, 3].
      labels: int32 [N]; -1 where the data set has no labels.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if spec == SKLEARN_DIGITS:
        images, labels = _load_sklearn_digits(split)
    elif os.path.isdir(spec):
        images, labels = _load_idx_folder(spec, split)
    elif os.path.isfile(spec):
        if not spec.endswith(".npz"):
            raise ValueError(f"{spec}: expected an .npz file, an IDX folder or {SKLEARN_DIGITS!r}")
        images, labels = _load_npz(spec, split)
    else:
        raise FileNotFoundError(
            f"{spec}: no such file or folder (expected an .npz file, a folder of MNIST IDX files "
            f"or {SKLEARN_DIGITS!r})")
    return _check_images(images, spec), _check_labels(labels, len(images), spec)


def to_model_images(images_uint8: np.ndarray, resolution: int = 32,
                    channels: int | None = None) -> np.ndarray:
    """Converts uint8 images to the models' input layout.

    Non-square images are centre-cropped to a square. A side a little short of a power of two (at
    most 1/8 short, e.g. MNIST's 28 -> 32) is padded centrally with black, which keeps the digit
    strokes unresampled; the square is then resized bilinearly (antialiased when shrinking) to
    `resolution`, e.g. sklearn's 8x8 digits -> 32x32.

    Args:
      images_uint8: uint8 [N, H, W] or [N, H, W, C] with C in (1, 3).
      resolution: output side length.
      channels: output channels (1 or 3); None keeps the input's. Grey -> RGB repeats the channel,
        RGB -> grey takes the ITU-R 601 luma.

    Returns:
      float32 [N, C, resolution, resolution] in [-1, 1].
    """
    x = np.asarray(images_uint8)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"images must be [N,H,W] or [N,H,W,1|3], got shape {x.shape}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, got {channels}")
    x = x.astype(np.float32) / 127.5 - 1.0
    x = _center_crop_square(x)
    x = _pad_to_power_of_two(x, fill=-1.0)
    if x.shape[1] != resolution:
        x = _resize_bilinear(x, resolution)
    if channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif channels == 1 and x.shape[-1] == 3:
        x = x @ np.array([0.299, 0.587, 0.114], np.float32)[:, None]
    return np.ascontiguousarray(np.clip(x, -1.0, 1.0).transpose(0, 3, 1, 2), dtype=np.float32)


def _center_crop_square(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[1:3]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[:, top:top + s, left:left + s]


def _pad_to_power_of_two(x: np.ndarray, fill: float) -> np.ndarray:
    s = x.shape[1]
    target = 1 << max(0, (s - 1).bit_length())
    if target == s or target - s > target // 8:
        return x
    before = (target - s) // 2
    after = target - s - before
    return np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), constant_values=fill)


def _resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    # jax.image.resize does half-pixel-centred bilinear with antialiasing on downsampling; imported
    # lazily so that plain data loading does not start a JAX backend.
    import jax

    n, _, _, c = x.shape
    out = jax.image.resize(x, (n, size, size, c), method="linear", antialias=True)
    return np.asarray(out, dtype=np.float32)


def _load_npz(path: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    x_key, y_key = f"x_{split}", f"y_{split}"
    with np.load(path, allow_pickle=False) as data:
        if x_key not in data.files:
            raise ValueError(f"{path}: missing key {x_key!r} (has {sorted(data.files)})")
        images = data[x_key]
        labels = data[y_key] if y_key in data.files else None
    return images, labels


def _find_idx(folder: str, split: str, kind: str) -> str | None:
    prefix = _IDX_PREFIX[split]
    ndim = 3 if kind == "images" else 1
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            path = os.path.join(folder, f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}")
            if os.path.isfile(path):
                return path
    return None


def _read_idx(path: str, magic: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    (got,) = struct.unpack(">I", data[:4])
    if got != magic:
        raise ValueError(f"{path}: wrong IDX magic number 0x{got:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise ValueError(
            f"{path}: IDX header promises shape {shape} ({count} bytes) but the file holds "
            f"{len(data) - header} bytes of data")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _load_idx_folder(folder: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    images_path = _find_idx(folder, split, "images")
    if images_path is None:
        want = f"{_IDX_PREFIX[split]}-images-idx3-ubyte[.gz]"
        raise FileNotFoundError(f"{folder}: no MNIST IDX image file {want!r} for split {split!r}")
    images = _read_idx(images_path, _IDX_IMAGES_MAGIC)
    labels_path = _find_idx(folder, split, "labels")
    labels = None if labels_path is None else _read_idx(labels_path, _IDX_LABELS_MAGIC)
    if labels is not None and len(labels) != len(images):
        raise ValueError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}")
    return images, labels


def _load_sklearn_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            f"data spec {SKLEARN_DIGITS!r} needs scikit-learn (pip install scikit-learn)") from e
    digits = load_digits()
    images = np.round(np.asarray(digits.images, np.float64) * (255.0 / 16.0)).astype(np.uint8)
    labels = np.asarray(digits.target)
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(len(images))
    n_train = int(round(_DIGITS_TRAIN_FRACTION * len(images)))
    idx = order[:n_train] if split == "train" else order[n_train:]
    idx = np.sort(idx)
    return images[idx], labels[idx]


def _check_images(images: np.ndarray, spec: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{spec}: images must be uint8, got {images.dtype}")
    ok = images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)
    if not ok:
        raise ValueError(f"{spec}: images must be [N,H,W] or [N,H,W,3], got shape {images.shape}")
    return images


def _check_labels(labels: np.ndarray | None, n: int, spec: str) -> np.ndarray:
    if labels is None:
        return np.full((n,), -1, np.int32)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{spec}: labels must have shape ({n},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{spec}: labels must be integers, got {labels.dtype}")
    return labels.astype(np.int32)
