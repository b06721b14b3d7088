"""Label-free attributes of handwritten digits measured from image moments.

Three raw measures are computed from the ink image (ink = brightness in [0, 1], white strokes on
black as in MNIST):

* thickness: ink mass, the mean ink per pixel. Thicker pens put more ink down for the same digit.
* slant: the shear x-shift per unit of downward y, -mu11 / mu02 from the central second moments
  (image y grows downwards, so a digit whose top leans right has mu11 < 0 and slant > 0).
* width: the horizontal spread left after removing the slant, sqrt(mu20 - mu11^2 / mu02), as a
  fraction of the image width; an upright stroke of a slanted "1" therefore stays narrow.

Each raw measure is mapped to [0, 1] by its empirical quantile on the training set
(`fit_quantiles` / `to_unit`), so 0.5 is the training median. Measures depend on the canvas (mean
ink changes with padding), so tables are fitted and applied on the models' input resolution.

All functions are pure jnp and jit-able.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

MEASURED = ("thickness", "slant", "width")
NUM_QUANTILES = 101
_EPS = 1e-6


def ink_from_model_images(images: jnp.ndarray) -> jnp.ndarray:
    """Ink intensity of model images.

    Args:
      images: float [N, C, H, W] in [-1, 1] (channels averaged).

    Returns:
      float32 [N, H, W] in [0, 1].
    """
    x = jnp.mean(jnp.asarray(images, jnp.float32), axis=1)
    return jnp.clip((x + 1.0) * 0.5, 0.0, 1.0)


def measure(ink: jnp.ndarray) -> jnp.ndarray:
    """Raw (unnormalised) thickness, slant and width of each image.

    Args:
      ink: float [N, H, W] in [0, 1].

    Returns:
      float32 [N, 3]: columns in the order of `MEASURED`. Blank images give (0, 0, 0).
    """
    ink = jnp.asarray(ink, jnp.float32)
    _, h, w = ink.shape
    mass = jnp.sum(ink, axis=(1, 2))
    safe_mass = jnp.maximum(mass, _EPS)
    ys = jnp.arange(h, dtype=jnp.float32)[None, :, None]
    xs = jnp.arange(w, dtype=jnp.float32)[None, None, :]
    cy = jnp.sum(ink * ys, axis=(1, 2)) / safe_mass
    cx = jnp.sum(ink * xs, axis=(1, 2)) / safe_mass
    dy = ys - cy[:, None, None]
    dx = xs - cx[:, None, None]
    mu20 = jnp.sum(ink * dx * dx, axis=(1, 2)) / safe_mass
    mu02 = jnp.sum(ink * dy * dy, axis=(1, 2)) / safe_mass
    mu11 = jnp.sum(ink * dx * dy, axis=(1, 2)) / safe_mass
    safe_mu02 = jnp.maximum(mu02, _EPS)
    thickness = mass / (h * w)
    slant = -mu11 / safe_mu02
    width = jnp.sqrt(jnp.maximum(mu20 - mu11 * mu11 / safe_mu02, 0.0)) / w
    out = jnp.stack([thickness, slant, width], axis=1)
    return jnp.where((mass > _EPS)[:, None], out, 0.0)


def fit_quantiles(raw: np.ndarray, num: int = NUM_QUANTILES) -> np.ndarray:
    """Sorted quantile table of each raw measure.

    Args:
      raw: [N, K] raw measures of the training set.
      num: number of evenly spaced quantile levels, 0 and 1 included.

    Returns:
      float32 [K, num], non-decreasing along the last axis.
    """
    raw = np.asarray(raw, np.float64)
    if raw.ndim != 2 or len(raw) < 2:
        raise ValueError(f"raw measures must be [N>=2, K], got shape {raw.shape}")
    levels = np.linspace(0.0, 1.0, num)
    return np.quantile(raw, levels, axis=0).T.astype(np.float32)


def to_unit(raw: jnp.ndarray, tables: jnp.ndarray | Sequence[Sequence[float]]) -> jnp.ndarray:
    """Maps raw measures to [0, 1] by their quantile on the training set.

    Piecewise linear between the tabulated quantiles; values outside the table clip to 0 or 1.

    Args:
      raw: [N, K] raw measures.
      tables: [K, Q] quantile tables from `fit_quantiles`.

    Returns:
      float32 [N, K] in [0, 1].
    """
    raw = jnp.asarray(raw, jnp.float32)
    tables = jnp.asarray(tables, jnp.float32)
    levels = jnp.linspace(0.0, 1.0, tables.shape[1])
    cols = [jnp.interp(raw[:, k], tables[k], levels) for k in range(tables.shape[0])]
    return jnp.stack(cols, axis=1)


def measured_attributes(images: jnp.ndarray, tables: jnp.ndarray) -> jnp.ndarray:
    """Quantile-normalised thickness, slant, width of model images.

    Args:
      images: float [N, C, H, W] in [-1, 1], at the resolution the tables were fitted on.
      tables: [3, Q] quantile tables.

    Returns:
      float32 [N, 3] in [0, 1].
    """
    return to_unit(measure(ink_from_model_images(images)), tables)
