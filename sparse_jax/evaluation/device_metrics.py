"""Table 1's numbers in jax.numpy, jitted: assignment, end-point S_e, curves, d50, A, S_d and the
distance-to-effect efficiency, computed where the walks' predictions live.

Every function mirrors a NumPy function of `metrics` / `efficiency` (the test oracle; equal to
1e-6 on the same predictions, see tests/test_device_metrics.py). Predictions are float32 on the
device; sums over seeds are float32 too, which is why the tolerance is 1e-6 and not exact.
Unassigned attributes and attributes without a negative seed come out as NaN, as in NumPy.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Numbers(NamedTuple):
    """Every per-attribute number of one method (A attributes, T grid points).

    Attributes:
      direction, sign: int [A] the assignment (-1 where unassigned); gain: [A] its mean gain.
      num_negative_assign, num_negative_eval: int [A].
      s_e: [A] end-point S_e; mean, std: [A, T] curves; d50: [A] (+inf not reached).
      a_matrix: [A, A]; s_d: [] S_d.
      efficiency, reach_distance, reached: [A] distance-to-effect numbers (NaN without reach).
    """

    direction: jax.Array
    sign: jax.Array
    gain: jax.Array
    num_negative_assign: jax.Array
    num_negative_eval: jax.Array
    s_e: jax.Array
    mean: jax.Array
    std: jax.Array
    d50: jax.Array
    a_matrix: jax.Array
    s_d: jax.Array
    efficiency: jax.Array
    reach_distance: jax.Array
    reached: jax.Array


def negative_mask(preds: jax.Array, threshold: float) -> jax.Array:
    """bool [S, A]: p_a(0) < threshold, from preds [S, D, G, T, A]."""
    return preds[:, 0, 0, 0, :] < threshold


@jax.jit
def assign_directions(preds: jax.Array, threshold: float = 0.5):
    """(direction [A], sign [A], gain [A], num_negative [A]) as `metrics.assign_directions`.

    Args:
      preds: [S, D, G, T, A] on the assignment seeds; the last grid point is d_max.
      threshold: negative means p_a(0) < threshold.
    """
    _, _, g, _, num_a = preds.shape
    neg = negative_mask(preds, threshold)
    count = neg.sum(0)
    delta = preds[:, :, :, -1, :] - preds[:, :, :, 0, :]
    summed = jnp.einsum("sdga,sa->dga", delta, neg.astype(preds.dtype))
    flat = (summed / jnp.maximum(count, 1)).reshape(-1, num_a)
    best = jnp.argmax(flat, axis=0)                       # first maximum, as np.argmax
    has = count > 0
    gain = jnp.where(has, flat[best, jnp.arange(num_a)], jnp.nan)
    return (jnp.where(has, best // g, -1), jnp.where(has, best % g, -1), gain, count)


def _masked_mean(x: jax.Array, mask: jax.Array, count: jax.Array) -> jax.Array:
    """Mean over axis 0 of x [S, A, ...] where mask [S, A]; count [A] = mask.sum(0)."""
    m = mask.reshape(mask.shape + (1,) * (x.ndim - 2)).astype(x.dtype)
    c = jnp.maximum(count, 1).reshape((-1,) + (1,) * (x.ndim - 2))
    return jnp.sum(x * m, axis=0) / c


def _masked_median(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Median over axis 0 of x [S, A] where mask [S, A] (+inf allowed; NaN where none)."""
    return jnp.nanmedian(jnp.where(mask, x, jnp.nan), axis=0)


def reach_distances(curves: jax.Array, distances: jax.Array, shift: float) -> jax.Array:
    """As `efficiency.reach_distances`: curves [..., T] -> [...] (+inf where not reached)."""
    gain = curves - curves[..., :1]
    hit = gain >= shift
    reached = hit.any(-1)
    i = jnp.maximum(jnp.argmax(hit, axis=-1), 1)
    g_hi = jnp.take_along_axis(gain, i[..., None], -1)[..., 0]
    g_lo = jnp.take_along_axis(gain, (i - 1)[..., None], -1)[..., 0]
    frac = (shift - g_lo) / jnp.where(reached, g_hi - g_lo, 1.0)
    d = distances[i - 1] + frac * (distances[i] - distances[i - 1])
    return jnp.where(reached, d, jnp.inf)


@functools.partial(jax.jit, static_argnames=("with_reach",))
def table_numbers(preds_assign: jax.Array, preds_eval: jax.Array, distances: jax.Array,
                  reach_preds: jax.Array, reach_distances_: jax.Array, reach_index: jax.Array,
                  threshold: float = 0.5, target: float = 0.5, shift: float = 0.5,
                  with_reach: bool = True) -> Numbers:
    """Every number of one method, in one jitted call.

    Args:
      preds_assign: [S_assign, D, G, T, A]; preds_eval: [S_eval, D, G, T, A].
      distances: [T] 0 .. d_max.
      reach_preds: [S_eval, U, T_r, A] the evaluation seeds walked along U signed directions.
      reach_distances_: [T_r] the reach grid.
      reach_index: int [A], the reach walk of attribute a (-1: none).
      threshold, target: as in `metrics`; shift: the rise of the distance-to-effect metric.
      with_reach: False skips the reach numbers (NaN), for runs without a reach walk.

    Returns:
      `Numbers`.
    """
    direction, sign, gain, n_assign = assign_directions(preds_assign, threshold)
    num_a = preds_eval.shape[-1]
    neg = negative_mask(preds_eval, threshold)                  # [S, A]
    n_eval = neg.sum(0)
    valid = (direction >= 0) & (n_eval > 0)                      # [A]
    # walk[s, i, t, j]: attribute i's assigned direction and sign, measured on attribute j.
    walk = preds_eval[:, jnp.maximum(direction, 0), jnp.maximum(sign, 0)]
    own = walk[:, jnp.arange(num_a), :, jnp.arange(num_a)]      # [A, S, T]
    own = jnp.moveaxis(own, 0, 1)                                # [S, A, T]
    nan = jnp.asarray(jnp.nan, preds_eval.dtype)

    s_e = _masked_mean(own[:, :, -1] - own[:, :, 0], neg, n_eval) / distances[-1]
    s_e = jnp.where(valid, s_e, nan)
    mean = _masked_mean(own, neg, n_eval)                        # [A, T]
    var = _masked_mean((own - mean[None]) ** 2, neg, n_eval)
    mean = jnp.where(valid[:, None], mean, nan)
    std = jnp.where(valid[:, None], jnp.sqrt(var), nan)
    hit = mean >= target
    d50 = jnp.where(hit.any(-1), distances[jnp.argmax(hit, axis=-1)], jnp.inf)
    d50 = jnp.where(valid, d50, nan)

    a_mat = _masked_mean(jnp.abs(walk[:, :, -1, :] - walk[:, :, 0, :]), neg, n_eval)
    a_mat = jnp.where(valid[:, None], a_mat, nan)
    rows = jnp.where(valid[:, None], a_mat, 0.0)
    total = rows.sum()
    s_d = jnp.where(valid.any() & (total > 0), jnp.trace(rows) / jnp.where(total > 0, total, 1.0),
                    nan)

    if with_reach:
        r_valid = valid & (reach_index >= 0)
        curves = reach_preds[:, jnp.maximum(reach_index, 0), :, jnp.arange(num_a)]  # [A, S, T_r]
        d = reach_distances(jnp.moveaxis(curves, 0, 1), reach_distances_, shift)   # [S, A]
        eff = jnp.where(jnp.isfinite(d), shift / d, 0.0)
        efficiency = jnp.where(r_valid, _masked_median(eff, neg), nan)
        reach_distance = jnp.where(r_valid, _masked_median(d, neg), nan)
        reached = jnp.where(r_valid, _masked_mean(jnp.isfinite(d).astype(eff.dtype), neg, n_eval),
                            nan)
    else:
        efficiency = reach_distance = reached = jnp.full((num_a,), nan)
    return Numbers(direction=direction, sign=sign, gain=gain, num_negative_assign=n_assign,
                   num_negative_eval=n_eval, s_e=s_e, mean=mean, std=std, d50=d50,
                   a_matrix=a_mat, s_d=s_d, efficiency=efficiency,
                   reach_distance=reach_distance, reached=reached)
