"""Entrywise shrinkage of a whole loading matrix to an L1 (soft) or L0 (hard) budget.

epca finds the threshold by bisection `while hi - lo > 1e-11`, which never ends in float32 (one
float32 step near the threshold is ~4e-9). Here the threshold is exact, from a sort:

    soft_threshold_l1(y, gamma)   # sum|result| == gamma, one threshold t for all entries
    hard_threshold_l0(y, gamma)   # keeps the floor(gamma) largest |y|

If the input is already inside the budget it is returned unchanged (epca: `norm <= gamma`).
Both are jit/vmap-able in `gamma`; the soft one is differentiable in `y` and `gamma`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def l1_threshold(a: Array, gamma: float | Array) -> Array:
    """Threshold t >= 0 with sum(max(a - t, 0)) == gamma (for sum(a) > gamma).

    Args:
      a: [N] non-negative values. gamma: budget > 0.
    Returns:
      t: [] (L1-ball projection rule: t = (c_m - gamma) / m for the largest m with s_m > t_m).
    """
    s = jnp.sort(a)[::-1]
    c = jnp.cumsum(s)
    m = jnp.arange(1, s.shape[0] + 1, dtype=a.dtype)
    t = (c - gamma) / m
    rho = jnp.max(jnp.where(s > t, jnp.arange(s.shape[0]), 0))
    return jnp.maximum(t[rho], 0)


def soft_threshold_l1(y: Array, gamma: float | Array) -> Array:
    """Soft-thresholds y with one common threshold so that its entrywise L1 norm is gamma.

    Args:
      y: [p, k] (any shape). gamma: L1 budget of the whole matrix.
    Returns:
      Same shape as y; y itself when sum|y| <= gamma.
    """
    a = jnp.abs(y)
    t = l1_threshold(a.ravel(), gamma)
    shrunk = jnp.sign(y) * jnp.maximum(a - t, 0)
    return jnp.where(jnp.sum(a) <= gamma, y, shrunk)


def hard_threshold_l0(y: Array, gamma: float | Array) -> Array:
    """Keeps the floor(gamma) entries of largest |y| (ties at the cut are dropped).

    Args:
      y: [p, k] (any shape). gamma: maximal number of non-zero entries.
    Returns:
      Same shape as y; y itself when it has at most gamma non-zeros.
    """
    a = jnp.abs(y)
    s = jnp.sort(a.ravel())[::-1]
    keep = jnp.floor(jnp.asarray(gamma, y.dtype)).astype(jnp.int32)
    cut = s[jnp.clip(keep, 0, s.shape[0] - 1)]
    shrunk = jnp.where(a > cut, y, 0)
    return jnp.where(jnp.sum(a > 0) <= gamma, y, shrunk)
