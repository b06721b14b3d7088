"""Direction files: `directions_<method>.npz`, written by discovery, read by every later stage.

Keys (GANSpace's names, so its edit recipe `w + s * lat_stdev[i] * lat_comp[i]` applies):
  lat_comp [k, w_dim] unit rows, lat_mean [w_dim], lat_stdev [k] (std of w along each row),
  act_comp [k, p], act_mean [p], act_stdev [k], var_ratio [k], and the provenance: method,
  act_space ("features" or "w"), layers, pooling, k, gamma, seed, sparsity.
"""
from __future__ import annotations

import os
import re
from typing import Any, NamedTuple, Sequence

import numpy as np

from sparse_jax.core import atomic

REQUIRED_KEYS = ("lat_comp", "lat_stdev")


class DirectionSet(NamedTuple):
    """Directions of one method, loaded from a `directions_<method>.npz` file.

    Attributes:
      path: the file.
      method: the `method` key, or the file name without `directions_` and `.npz`.
      lat_comp: float32 [k, w_dim] unit rows.
      lat_stdev: float64 [k] std of w along each row (sigma units).
    """

    path: str
    method: str
    lat_comp: np.ndarray
    lat_stdev: np.ndarray


def check_directions(directions: Any, w_dim: int, what: str = "directions") -> np.ndarray:
    """Validates directions and scales each row to unit length.

    Args:
      directions: [D, w_dim] finite, non-zero rows.
      w_dim: the generator's w_dim.
      what: a name for error messages (e.g. the file path).

    Returns:
      float32 [D, w_dim] with unit rows.
    """
    d = np.asarray(directions, np.float64)
    if d.ndim != 2 or d.shape[0] == 0:
        raise ValueError(f"{what}: expected a [num_directions, w_dim] array, got shape {d.shape}")
    if d.shape[1] != w_dim:
        raise ValueError(f"{what}: directions have w_dim={d.shape[1]} but the generator has "
                         f"w_dim={w_dim}")
    norms = np.linalg.norm(d, axis=1)
    bad = np.nonzero(~np.isfinite(norms) | (norms < 1e-12))[0]
    if bad.size:
        raise ValueError(f"{what}: rows {bad.tolist()} are zero or not finite")
    return (d / norms[:, None]).astype(np.float32)


def read_directions(path: str, w_dim: int, num_directions: int | None = None) -> DirectionSet:
    """Loads and checks a direction file.

    Args:
      path: `.npz` with `lat_comp` [k, w_dim] and `lat_stdev` [k] (others, e.g. `method`,
        optional).
      w_dim: the generator's w_dim.
      num_directions: keep the first n directions (None: all).

    Returns:
      A `DirectionSet`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: direction file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz file: {e}") from e
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}; a direction file needs "
                         f"{list(REQUIRED_KEYS)} (it has {sorted(data)})")
    comp = check_directions(data["lat_comp"], w_dim, what=f"{path}: lat_comp")
    stdev = np.asarray(data["lat_stdev"], np.float64)
    if stdev.shape != (comp.shape[0],):
        raise ValueError(f"{path}: lat_stdev has shape {stdev.shape}, expected [{comp.shape[0]}] "
                         f"(one per row of lat_comp)")
    if "method" in data and data["method"].ndim == 0 and str(data["method"]):
        method = str(data["method"])
    else:
        method = re.sub(r"^directions_", "", os.path.splitext(os.path.basename(path))[0])
    if num_directions is not None:
        comp, stdev = comp[:num_directions], stdev[:num_directions]
    return DirectionSet(path=path, method=method, lat_comp=comp, lat_stdev=stdev)


def write_directions(path: str, dirs: Any, *, method: str, act_space: str,
                     layers: Sequence[str], pooling: str, k: int, seed: int, gamma: float,
                     sparsity: float) -> None:
    """Writes a direction file atomically.

    Args:
      dirs: a `discovery.directions.Directions` in numpy (lat_comp [k, w_dim], ...).
      act_space: "features" (layers and pooling are recorded) or "w".
    """
    features = act_space == "features"
    atomic.save_npz(
        path,
        lat_comp=dirs.lat_comp, lat_mean=dirs.lat_mean, lat_stdev=dirs.lat_stdev,
        act_comp=dirs.act_comp, act_mean=dirs.act_mean, act_stdev=dirs.act_stdev,
        var_ratio=dirs.var_ratio, act_space=np.asarray(act_space), method=np.asarray(method),
        layers=np.asarray(list(layers) if features else [], dtype=str),
        pooling=np.asarray(pooling if features else "none"),
        k=np.asarray(k, np.int64), gamma=np.asarray(gamma, np.float64),
        seed=np.asarray(seed, np.int64), sparsity=np.asarray(sparsity, np.float64))
