"""Edits in W: ws + strength * direction on a range of ws slots, from direction files.

An `Edit` is one (unit direction, W distance, ws-slot range). Strength is given in sigma units
of the direction file's `lat_stdev` (GANSpace's recipe `w + s * lat_stdev[i] * lat_comp[i]`) or
directly as a W distance. Several edits add up.

    from sparse_jax.generation import edit
    e = edit.load_edit("runs/discover/directions_sca.npz", index=3, strength=2.0,
                       w_dim=cfg.w_dim, num_ws=cfg.num_ws, layer_range=(0, 4))
    ws_edited = edit.apply_edits(ws, [e])                   # [N, num_ws, w_dim]
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.core import seeds as seeds_lib
from sparse_jax.io import direction_files
from sparse_jax.models import generators

UNITS = ("sigma", "w")


@dataclasses.dataclass(frozen=True)
class Edit:
    """One edit.

    Attributes:
      direction: float32 [w_dim] unit vector.
      distance: signed W distance moved along it.
      layer_range: ws slots [start, end) that move, or None for every slot.
      label: a short name for figures, e.g. 'sca d3 +2σ [0,4)'.
      sigma: the strength in lat_stdev units (NaN when given as a W distance).
    """

    direction: np.ndarray
    distance: float
    layer_range: tuple[int, int] | None = None
    label: str = ""
    sigma: float = float("nan")


def slot_mask(num_ws: int, layer_range: Sequence[int] | None) -> np.ndarray:
    """float32 [num_ws]: 1 on the slots [start, end) that an edit moves (all when None)."""
    mask = np.zeros(num_ws, np.float32)
    if layer_range is None:
        mask[:] = 1.0
        return mask
    start, end = (int(v) for v in layer_range)
    if not 0 <= start < end <= num_ws:
        raise ValueError(f"layer range [{start}, {end}): expected 0 <= start < end <= "
                         f"num_ws={num_ws}")
    mask[start:end] = 1.0
    return mask


def make_edit(direction: Any, distance: float, num_ws: int,
              layer_range: Sequence[int] | None = None, label: str = "",
              sigma: float = float("nan")) -> Edit:
    """An Edit from any non-zero direction [w_dim] (scaled to unit length here)."""
    d = np.asarray(direction, np.float64).reshape(-1)
    norm = float(np.linalg.norm(d))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"edit {label or ''}: the direction is zero or not finite".replace(
            "  ", " "))
    if not np.isfinite(distance):
        raise ValueError(f"edit {label}: strength must be finite, got {distance}")
    rng = None if layer_range is None else tuple(int(v) for v in layer_range)
    slot_mask(num_ws, rng)  # validates the range
    return Edit(direction=(d / norm).astype(np.float32), distance=float(distance),
                layer_range=rng, label=label, sigma=float(sigma))


def load_edit(path: str, index: int, strength: float, *, w_dim: int, num_ws: int,
              layer_range: Sequence[int] | None = None, units: str = "sigma") -> Edit:
    """Direction `index` of a direction file as an Edit.

    Args:
      strength: in units of the file's lat_stdev[index] (`units='sigma'`) or a W distance
        (`units='w'`).
    """
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    ds = direction_files.read_directions(path, w_dim)
    k = ds.lat_comp.shape[0]
    if not 0 <= index < k:
        raise ValueError(f"{path}: direction index {index} is out of range (the file has {k} "
                         f"directions, 0..{k - 1})")
    rng = "" if layer_range is None else f" [{layer_range[0]},{layer_range[1]})"
    if units == "sigma":
        sd = float(ds.lat_stdev[index])
        if not np.isfinite(sd) or sd <= 0:
            raise ValueError(f"{path}: lat_stdev[{index}] = {sd} is not positive; give the "
                             "strength as a W distance")
        return make_edit(ds.lat_comp[index], strength * sd, num_ws, layer_range,
                         f"{ds.method} d{index} {strength:+g}σ{rng}", sigma=strength)
    return make_edit(ds.lat_comp[index], strength, num_ws, layer_range,
                     f"{ds.method} d{index} {strength:+g}W{rng}")


def edit_offsets(edits: Sequence[Edit], num_ws: int, w_dim: int) -> np.ndarray:
    """float32 [num_ws, w_dim]: the summed offset of every edit (added to each ws)."""
    total = np.zeros((num_ws, w_dim), np.float64)
    for e in edits:
        if e.direction.shape != (w_dim,):
            raise ValueError(f"edit {e.label}: direction has shape {e.direction.shape}, the "
                             f"generator has w_dim={w_dim}")
        total += (e.distance * slot_mask(num_ws, e.layer_range))[:, None] * e.direction[None]
    return total.astype(np.float32)


def apply_edits(ws: Any, edits: Sequence[Edit]) -> np.ndarray:
    """ws [N, num_ws, w_dim] -> ws + the edits' summed offsets (float32, same shape)."""
    ws = np.asarray(ws, np.float32)
    if ws.ndim != 3:
        raise ValueError(f"ws: expected [N, num_ws, w_dim], got shape {ws.shape}")
    return ws + edit_offsets(edits, ws.shape[1], ws.shape[2])[None]


def ws_from_seeds(cfg: Any, variables: Any, seeds: Sequence[int],
                  truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                  run_seed: int = 0) -> np.ndarray:
    """ws [N, num_ws, w_dim] of seeds: the z `generate --seeds ... --seed run_seed` draws."""
    z = seeds_lib.seed_latents(list(seeds), cfg.z_dim, run_seed)
    return ws_from_z(cfg, variables, z, truncation_psi, truncation_cutoff)


@functools.cache
def _map(cfg, truncation_psi, truncation_cutoff):
    def f(variables, z):
        return generators.map_latents(cfg, variables, z, None, truncation_psi, truncation_cutoff)
    return jax.jit(f)


def ws_from_z(cfg: Any, variables: Any, z: Any, truncation_psi: float = 1.0,
              truncation_cutoff: int | None = None) -> np.ndarray:
    """z [N, z_dim] -> ws [N, num_ws, w_dim] (weights enter as arguments, not constants)."""
    if cfg.c_dim:
        raise ValueError(f"conditional generator (c_dim={cfg.c_dim}): pass --ws, not seeds or z")
    return np.asarray(_map(cfg, float(truncation_psi), truncation_cutoff)(
        variables, jnp.asarray(z, jnp.float32)))


@functools.cache
def _synth(cfg):
    def f(variables, ws):
        return generators.synthesize(cfg, variables, ws, noise_mode="const")
    return jax.jit(f)


def synthesize(cfg: Any, variables: Any, ws: Any, batch: int = 16) -> np.ndarray:
    """ws [N, num_ws, w_dim] -> images [N, C, H, W] float32 in [-1, 1] (const noise).

    The last batch is padded to `batch` rows so every call has one compiled shape.
    """
    ws = np.asarray(ws, np.float32)
    step = _synth(cfg)
    out = []
    for i in range(0, len(ws), batch):
        chunk = ws[i:i + batch]
        n = len(chunk)
        if n < batch and len(ws) > batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - n, axis=0)])
        out.append(np.asarray(step(variables, jnp.asarray(chunk)))[:n])
    return np.concatenate(out)


def edit_strip(cfg: Any, variables: Any, ws: Any, edits: Sequence[Edit], batch: int = 16
               ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Images of each latent unedited, with each edit alone and (for several) with all of them.

    Returns:
      (images [N, K, C, H, W], the K column labels, ws with every edit applied [N, num_ws, w_dim]).
    """
    ws = np.asarray(ws, np.float32)
    columns = [ws]
    labels = ["original"]
    for e in edits:
        columns.append(apply_edits(ws, [e]))
        labels.append(e.label)
    edited = apply_edits(ws, edits)
    if len(edits) > 1:
        columns.append(edited)
        labels.append("all edits")
    stacked = np.stack(columns, axis=1)                       # [N, K, num_ws, w_dim]
    n, k = stacked.shape[:2]
    imgs = synthesize(cfg, variables, stacked.reshape((n * k,) + stacked.shape[2:]), batch)
    return imgs.reshape((n, k) + imgs.shape[1:]), labels, edited
