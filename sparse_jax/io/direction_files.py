"""Direction files: `directions_<method>.npz`, written by discovery, read by every later stage.

The layout is GANSpace's (harskish/ganspace writes the same keys from `decomposition.py`), so its
readers (`visualize.py`, `interactive.py`) and its edit recipe `w + s * lat_stdev[i] *
lat_comp[i]` work on our files:

  lat_comp [k, 1, w_dim] unit rows (GANSpace's shape for W: one row per component, latent shape
  [1, w_dim]), lat_mean [1, w_dim], lat_stdev [k] (std of w along each row on fresh samples),
  act_comp [k, 1, p], act_mean [1, p], act_stdev [k], var_ratio [k], random_stdevs [k] (std of
  the fit features along random unit directions, GANSpace's reference scale), and our
  provenance: method, act_space ("features" or "w"), layers, pooling, k, gamma, seed, sparsity.

`read_directions` accepts lat_comp as [k, 1, w_dim] or [k, w_dim], so it also reads GANSpace's
own W-space component files and SeFa-style plain `.npy` arrays [k, w_dim] (no lat_stdev there:
sigma units are then unavailable).
"""
from __future__ import annotations

import os
import re
from typing import Any, NamedTuple, Sequence

import numpy as np

from sparse_jax.core import atomic

REQUIRED_KEYS = ("lat_comp", "lat_stdev")
# What each discovery method is, in every table and figure legend.
METHOD_LABELS = {"pca": "GANSpace (the paper's PCA)", "pca-w": "PCA on W", "sefa": "SeFa",
                 "sca": "SCA (the paper's method)", "sca-w": "SCA on W"}


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


# GANSpace names its cache files <model>-<class>_<layer>_<estimator>_n<N>[_w][_seed<S>].npz;
# without "_w" the components are in Z, not W.
_GANSPACE_Z_NAME = re.compile(r"_n\d+(_seed\d+)?\.npz$")
_GANSPACE_W_NAME = re.compile(r"_n\d+_w(_seed\d+)?\.npz$")


def as_rows(comp: Any, what: str) -> np.ndarray:
    """lat_comp as [k, w_dim]: accepts GANSpace's [k, 1, w_dim] and plain [k, w_dim]."""
    c = np.asarray(comp)
    if c.ndim == 3 and c.shape[1] == 1:
        return c[:, 0, :]
    if c.ndim == 2:
        return c
    raise ValueError(f"{what}: expected [num_directions, w_dim] or GANSpace's "
                     f"[num_directions, 1, w_dim], got shape {c.shape}")


def read_directions(path: str, w_dim: int, num_directions: int | None = None) -> DirectionSet:
    """Loads and checks a direction file.

    Args:
      path: `.npz` with `lat_comp` [k, w_dim] or [k, 1, w_dim] and `lat_stdev` [k] (ours or
        GANSpace's W-space components; other keys optional), or a `.npy` array [k, w_dim]
        (SeFa-style; lat_stdev unknown, NaN).
      w_dim: the generator's w_dim.
      num_directions: keep the first n directions (None: all).

    Returns:
      A `DirectionSet`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: direction file not found")
    stem = os.path.splitext(os.path.basename(path))[0]
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable .npy array: {e}") from e
        comp = check_directions(as_rows(arr, path), w_dim, what=path)
        stdev = np.full(comp.shape[0], np.nan)
        method = re.sub(r"^directions_", "", stem)
    else:
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable .npz file: {e}") from e
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ValueError(f"{path}: missing keys {missing}; a direction file needs "
                             f"{list(REQUIRED_KEYS)} (it has {sorted(data)})")
        name = os.path.basename(path)
        if ("method" not in data and _GANSPACE_Z_NAME.search(name)
                and not _GANSPACE_W_NAME.search(name)):
            raise ValueError(f"{path}: a GANSpace component file of Z space (no '_w' before the "
                             f"sample count in its name); compute it with GANSpace's --use_w")
        comp = check_directions(as_rows(data["lat_comp"], f"{path}: lat_comp"), w_dim,
                                what=f"{path}: lat_comp")
        stdev = np.asarray(data["lat_stdev"], np.float64).reshape(-1)
        if stdev.shape != (comp.shape[0],):
            raise ValueError(f"{path}: lat_stdev has shape {np.shape(data['lat_stdev'])}, "
                             f"expected [{comp.shape[0]}] (one per row of lat_comp)")
        if "method" in data and data["method"].ndim == 0 and str(data["method"]):
            method = str(data["method"])
        else:
            method = re.sub(r"^directions_", "", stem)
    if num_directions is not None:
        comp, stdev = comp[:num_directions], stdev[:num_directions]
    return DirectionSet(path=path, method=method, lat_comp=comp, lat_stdev=stdev)


def write_directions(path: str, dirs: Any, *, method: str, act_space: str,
                     layers: Sequence[str], pooling: str, k: int, seed: int, gamma: float,
                     sparsity: float) -> None:
    """Writes a direction file atomically.

    Args:
      dirs: a `discovery.directions.Directions` in numpy (lat_comp [k, w_dim], ...,
        random_stdevs [k]); written in GANSpace's shapes (see the module docstring).
      act_space: "features" (layers and pooling are recorded) or "w".
    """
    features = act_space == "features"
    k_rows = np.asarray(dirs.lat_comp).shape[0]
    random_stdevs = dirs.random_stdevs
    if random_stdevs is None:
        raise ValueError(f"{path}: directions lack random_stdevs (GANSpace's readers need it)")
    atomic.save_npz(
        path,
        # GANSpace's shapes: a leading component axis, then the latent / feature shape [1, dim].
        lat_comp=np.asarray(dirs.lat_comp).reshape(k_rows, 1, -1),
        lat_mean=np.asarray(dirs.lat_mean).reshape(1, -1), lat_stdev=dirs.lat_stdev,
        act_comp=np.asarray(dirs.act_comp).reshape(k_rows, 1, -1),
        act_mean=np.asarray(dirs.act_mean).reshape(1, -1), act_stdev=dirs.act_stdev,
        var_ratio=dirs.var_ratio, random_stdevs=np.asarray(random_stdevs),
        act_space=np.asarray(act_space), method=np.asarray(method),
        layers=np.asarray(list(layers) if features else [], dtype=str),
        pooling=np.asarray(pooling if features else "none"),
        k=np.asarray(k, np.int64), gamma=np.asarray(gamma, np.float64),
        seed=np.asarray(seed, np.int64), sparsity=np.asarray(sparsity, np.float64))
