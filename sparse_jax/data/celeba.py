"""Reader for CelebA-format attribute data sets: an image folder plus `list_attr_celeba.txt`.

Attribute file format (whitespace separated):

    <number of images>
    <attribute name 1> <attribute name 2> ...
    <filename> <v1> <v2> ...          one line per image, each v in {-1, 1}

Images live in `<folder>/img_align_celeba/` (the official layout) or directly in `<folder>`. An
optional `list_eval_partition.txt` (`<filename> <0|1|2>` for train/val/test) selects the split;
without it a fixed 90/10 train/test split of the listed files is used. Images are decoded with
Pillow, which is installed as a dependency of matplotlib.
"""
from __future__ import annotations

import os

import numpy as np

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_SUBDIR = "img_align_celeba"
_TEST_FRACTION = 0.1
_SPLIT_SEED = 0


def is_celeba_folder(path: str) -> bool:
    """True if `path` is a folder holding a CelebA-format attribute file."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, ATTR_FILE))


def read_attributes(path: str) -> tuple[list[str], list[str], np.ndarray]:
    """Parses a CelebA-format attribute file.

    Args:
      path: path of the attribute file.

    Returns:
      names: the A attribute names.
      filenames: the N image file names, in file order.
      values: int8 [N, A] in {-1, 1}.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: attribute file not found")
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\r\n") for line in f]
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and an attribute-name line")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(
            f"{path}:1: expected the number of images, got {lines[0].strip()!r}") from None
    names = lines[1].split()
    if not names:
        raise ValueError(f"{path}:2: expected attribute names, got an empty line")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}:2: duplicate attribute names")
    filenames: list[str] = []
    rows: list[list[int]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise ValueError(
                f"{path}:{lineno}: expected a filename and {len(names)} values, "
                f"got {len(fields)} fields")
        name, raw = fields[0], fields[1:]
        try:
            vals = [int(v) for v in raw]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: values must be -1 or 1, got {raw}") from None
        bad = [v for v in vals if v not in (-1, 1)]
        if bad:
            raise ValueError(f"{path}:{lineno}: values must be -1 or 1, got {bad[0]}")
        if name in seen:
            raise ValueError(f"{path}:{lineno}: duplicate filename {name!r}")
        seen.add(name)
        filenames.append(name)
        rows.append(vals)
    if len(filenames) != count:
        raise ValueError(f"{path}:1: header says {count} images but {len(filenames)} are listed")
    values = np.asarray(rows, np.int8).reshape(len(rows), len(names))
    return names, filenames, values


def read_partition(path: str) -> dict[str, int]:
    """Parses `list_eval_partition.txt` -> {filename: 0 (train) | 1 (val) | 2 (test)}."""
    out: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}:{lineno}: expected '<filename> <0|1|2>', got {line!r}")
            out[fields[0]] = int(fields[1])
    return out


def split_indices(folder: str, filenames: list[str], split: str) -> np.ndarray:
    """Indices of `filenames` in `split` ("train" or "test"; validation counts as test)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    part_path = os.path.join(folder, PARTITION_FILE)
    if os.path.isfile(part_path):
        part = read_partition(part_path)
        missing = [f for f in filenames if f not in part]
        if missing:
            raise ValueError(f"{part_path}: no partition for {missing[0]!r}")
        is_train = np.array([part[f] == 0 for f in filenames], bool)
    else:
        order = np.random.default_rng(_SPLIT_SEED).permutation(len(filenames))
        n_test = int(round(_TEST_FRACTION * len(filenames))) if len(filenames) > 1 else 0
        is_train = np.ones(len(filenames), bool)
        is_train[order[:n_test]] = False
    return np.flatnonzero(is_train if split == "train" else ~is_train)


def read_image(path: str) -> np.ndarray:
    """Decodes one image file to uint8 [H, W, 3]."""
    from PIL import Image  # installed with matplotlib

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: image listed in the attribute file not found")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except OSError as e:
        raise ValueError(f"{path}: cannot decode image: {e}") from e


def load_celeba(folder: str, split: str = "train", limit: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Loads a CelebA-format folder.

    Args:
      folder: folder holding `list_attr_celeba.txt` and the images (or `img_align_celeba/`).
      split: "train" or "test".
      limit: keep at most this many images of the split (the first in file order).

    Returns:
      images: uint8 [N, H, W, 3]; every image must have the size of the first one.
      targets: float32 [N, A] in {0, 1}.
      names: the A attribute names.
    """
    names, filenames, values = read_attributes(os.path.join(folder, ATTR_FILE))
    image_dir = os.path.join(folder, IMAGE_SUBDIR)
    if not os.path.isdir(image_dir):
        image_dir = folder
    idx = split_indices(folder, filenames, split)
    if limit is not None:
        idx = idx[:limit]
    if len(idx) == 0:
        raise ValueError(f"{folder}: split {split!r} holds no images")
    images = None
    first = ""
    for i, j in enumerate(idx):
        path = os.path.join(image_dir, filenames[j])
        img = read_image(path)
        if images is None:
            images = np.empty((len(idx),) + img.shape, np.uint8)
            first = path
        elif img.shape != images.shape[1:]:
            raise ValueError(
                f"{path}: image is {img.shape[1]}x{img.shape[0]} but {first} is "
                f"{images.shape[2]}x{images.shape[1]}; all images must have the same size")
        images[i] = img
    targets = (values[idx] > 0).astype(np.float32)
    return images, targets, names
