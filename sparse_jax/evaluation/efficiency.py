"""Distance-to-effect efficiency: how far a direction must be walked to shift p_a by a target.

The paper-literal S_e (`metrics.efficiency`) is the end-point change over d_max, so it cannot
exceed (1 - p_a(0)) / d_max: once two methods both reach the attribute within d_max, a direction
that gets there ten times sooner scores at most a little higher. This module measures instead,
per (direction, attribute, seed), the distance d* at which p_a first rises by `shift` above
p_a(0) on a fine walk that goes well past d_max (linear interpolation between grid points), and
reports shift / d*. `docs/metrics.md` defines every number.

Pure NumPy: this is the test oracle of `device_metrics`, which computes the same on the device.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def reach_grid(d_max: float, reach_min: float = 1.0 / 32.0, reach_max: float = 4.0,
               num: int = 22) -> np.ndarray:
    """The walk of the distance-to-effect metric: 0, then `num` log-spaced points.

    A log grid resolves a distance to the same relative precision (here a factor
    (reach_max / reach_min) ** (1 / (num - 1)) between points) whether a direction needs
    d_max / 20 or 3 x d_max, which is what a 10x ratio between methods requires.

    Args:
      d_max: the evaluation's walk length (W units).
      reach_min, reach_max: first and last non-zero point, in units of d_max.
      num: non-zero points (>= 2).

    Returns:
      float64 [num + 1], increasing, starting at 0, containing reach_max * d_max.
    """
    if not (d_max > 0 and 0 < reach_min < reach_max and num >= 2):
        raise ValueError(f"reach grid: need d_max > 0, 0 < reach_min < reach_max and num >= 2, "
                         f"got d_max={d_max}, reach_min={reach_min}, reach_max={reach_max}, "
                         f"num={num}")
    return np.concatenate([[0.0], d_max * np.geomspace(reach_min, reach_max, num)])


def reach_distances(curves: Any, distances: Any, shift: float) -> np.ndarray:
    """Distance at which each curve first rises by `shift` above its start.

    Args:
      curves: [..., T] p along a walk; curves[..., 0] is the unedited image.
      distances: [T] increasing from 0.
      shift: the rise to reach, > 0.

    Returns:
      float64 [...]: linear interpolation between the last grid point below and the first at
      or above p(0) + shift; +inf where the curve never gets there.
    """
    c = np.asarray(curves, np.float64)
    t = np.asarray(distances, np.float64)
    gain = c - c[..., :1]
    hit = gain >= shift
    reached = hit.any(-1)
    first = np.argmax(hit, axis=-1)                 # >= 1 where reached: gain[..., 0] == 0
    i = np.maximum(first, 1)
    g_hi = np.take_along_axis(gain, i[..., None], -1)[..., 0]
    g_lo = np.take_along_axis(gain, (i - 1)[..., None], -1)[..., 0]
    frac = (shift - g_lo) / np.where(reached, g_hi - g_lo, 1.0)
    d = t[i - 1] + frac * (t[i] - t[i - 1])
    return np.where(reached, d, np.inf)


def reach_numbers(reach_preds: Any, distances: Any, reach_index: Any, negative: Any,
                  shift: float) -> dict[str, np.ndarray]:
    """Per-attribute distance-to-effect numbers along each attribute's assigned direction.

    Args:
      reach_preds: [S, U, T, A] predictions of S seeds walked along U signed directions.
      distances: [T] the reach grid (0 first).
      reach_index: int [A], which of the U walks belongs to attribute a; -1: unassigned.
      negative: bool [S, A], seeds that start negative for a (from the evaluation walk).
      shift: the rise of p_a to reach.

    Returns:
      efficiency [A]: median over negative seeds of shift / d* (0 for a seed that never
        reaches it); distance [A]: median d* (+inf when half or more never reach);
      reached [A]: fraction of negative seeds that reach it. All NaN where the attribute is
      unassigned or no seed starts negative.
    """
    r = np.asarray(reach_preds, np.float64)
    idx = np.asarray(reach_index)
    neg = np.asarray(negative, bool)
    num_a = r.shape[-1]
    out = {k: np.full(num_a, np.nan) for k in ("efficiency", "distance", "reached")}
    for a in range(num_a):
        if idx[a] < 0 or not neg[:, a].any():
            continue
        d = reach_distances(r[neg[:, a], idx[a], :, a], distances, shift)
        eff = np.where(np.isfinite(d), shift / d, 0.0)
        out["efficiency"][a] = np.median(eff)
        out["distance"][a] = np.median(d)
        out["reached"][a] = np.mean(np.isfinite(d))
    return out
