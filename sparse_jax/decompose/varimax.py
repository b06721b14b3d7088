"""Orthogonal building blocks of SCA: polar factor, varimax rotation, skew flip.

These follow epca 1.1.0 (`R/utility.R`): `polar()` is the orthogonal factor of a thin SVD,
`varimax()` is epca's copy of `stats::varimax` with `normalize=FALSE` (start at the identity, stop
when the sum of singular values grows by less than a factor `1 + eps`), and `flip` makes every
column positively skewed (R's `sign(0) = 0` is kept).

    r, iters = varimax_rotation(q, eps=1e-5 / jnp.sqrt(q.shape[0]))   # q: [m, k] orthonormal
    y = flip_skew(q @ r)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
HIGHEST = lax.Precision.HIGHEST


def mm(a: Array, b: Array) -> Array:
    """Matrix product at full float32 precision (no TF32 on accelerators)."""
    return jnp.matmul(a, b, precision=HIGHEST)


def polar(a: Array) -> Array:
    """Orthogonal factor U V^T of the thin SVD a = U S V^T.

    Args:
      a: [m, k] with m >= k.
    Returns:
      [m, k] with orthonormal columns, argmax over Q^T Q = I of tr(Q^T a).
    """
    u, _, vt = jnp.linalg.svd(a, full_matrices=False)
    return mm(u, vt)


def _varimax_step(q: Array, t: Array) -> tuple[Array, Array]:
    z = mm(q, t)
    g = mm(q.T, z**3 - z * jnp.mean(z**2, axis=0))
    u, s, vt = jnp.linalg.svd(g, full_matrices=False)
    return mm(u, vt), jnp.sum(s)


def _two_sum_reduce(x: Array) -> Array:
    """Sum over axis 0 with error-free pairwise additions (TwoSum), errors added back at the end."""
    err = jnp.zeros(x.shape[1:], x.dtype)
    while x.shape[0] > 1:
        if x.shape[0] % 2:
            x = jnp.concatenate([x, jnp.zeros_like(x[:1])])
        a, b = x[0::2], x[1::2]
        s = a + b
        bb = s - a
        err = err + jnp.sum((a - (s - bb)) + (b - bb), axis=0)
        x = s
    return x[0] + err


def gram_minus_eye(t: Array) -> Array:
    """T^T T - I for a nearly orthogonal float32 T, accurate to ~eps^2 (not ~eps).

    Entries are split into 12-bit halves by masking mantissa bits (immune to FMA contraction),
    so every partial product is exact; the leading products are summed error-free.

    Args:
      t: [k, k] float32.
    Returns:
      [k, k].
    """
    k = t.shape[1]
    hi = lax.bitcast_convert_type(
        lax.bitcast_convert_type(t, jnp.uint32) & jnp.uint32(0xFFFFF000), jnp.float32)
    lo = t - hi
    lead = jnp.concatenate([-jnp.eye(k, dtype=t.dtype)[None], hi[:, :, None] * hi[:, None, :]])
    rest = mm(hi.T, lo) + mm(lo.T, hi) + mm(lo.T, lo)
    return _two_sum_reduce(lead) + rest


def _varimax_accurate(q: Array, eps, max_iter: int) -> tuple[Array, Array]:
    """epca's varimax with its stopping test evaluated accurately in float32.

    The test `d_i < d_{i-1} (1 + eps)` needs the increment d_i - d_{i-1} to ~1e-9 relative, far
    below float32 resolution, and d(T) moves at first order with T's rounding off orthogonality.
    So the increment is computed for the exactly orthogonal T~ = T (I - E/2), E = T^T T - I (from
    `gram_minus_eye`), from differences only: with B(T) = Q^T (W^3 - W diag(mean W^2)), W = Q T,
    ||B_a||_* - ||B_b||_* = tr(P_a^T (B_a - B_b)) + tr((P_a - P_b)^T B_b), P = polar factors;
    B_a - B_b is expanded in dW = Q (T~_a - T~_b) (a^3 - b^3 = (a - b)(a^2 + ab + b^2)), and the
    second term is -tr(S^T S H)/2 with S = skew(T_b^T T_a), H = sym(T_b^T B_b) (error O(|S|^3)).
    The iterates themselves are epca's, in float32.
    """
    k, dtype = q.shape[1], q.dtype
    eye = jnp.eye(k, dtype=dtype)
    zero = jnp.zeros((k, k), dtype)

    def cond(c):
        return (c[0] < max_iter) & ~c[-1]

    def body(c):
        i, ta, ea, tb, eb, b_prev, d, _ = c
        dt = (ta - tb) - 0.5 * (mm(ta, ea) - mm(tb, eb))
        w2 = mm(q, jnp.concatenate([ta, dt], axis=1))
        wa, dw = w2[:, :k], w2[:, k:]
        ma = jnp.mean(wa**2, axis=0)
        wb = wa - dw
        dm = jnp.mean(dw * (wa + wb), axis=0)
        m = jnp.concatenate(
            [wa**3 - wa * ma, dw * (wa**2 + wa * wb + wb**2) - (dw * ma + wb * dm)], axis=1)
        bb = mm(q.T, m)
        ba, db = bb[:, :k], bb[:, k:]
        u, s, vt = jnp.linalg.svd(ba, full_matrices=False)
        tn = mm(u, vt)
        r = mm(ta.T, tn)
        sk = 0.5 * (r - r.T)
        h = mm(ta.T, b_prev)
        h = 0.5 * (h + h.T)
        inc = jnp.sum(tn * db) - 0.5 * jnp.trace(mm(mm(sk.T, sk), h))
        stop = (i >= 1) & (inc < eps * d)
        return i + 1, tn, gram_minus_eye(tn), ta, ea, ba, jnp.sum(s), stop

    init = (jnp.asarray(0, jnp.int32), eye, zero, eye, zero, zero, jnp.zeros((), dtype),
            jnp.asarray(False))
    out = lax.while_loop(cond, body, init)
    return out[1], out[0]


def varimax_rotation(q: Array, eps: float | Array, max_iter: int = 1000) -> tuple[Array, Array]:
    """Varimax rotation as in epca/stats (no Kaiser normalisation).

    In float64 the criterion is epca's own arithmetic; in float32 its stopping test is evaluated
    accurately (`_varimax_accurate`), so the iteration count matches the float64 run.

    Args:
      q: [m, k] matrix to rotate.
      eps: relative tolerance on the criterion (epca passes `epsilon / sqrt(m)`).
      max_iter: iteration cap (epca: 1000).
    Returns:
      (r [k, k] orthogonal rotation, number of iterations []). For k < 2, r is the identity.
    """
    k = q.shape[1]
    if k < 2:
        return jnp.eye(k, dtype=q.dtype), jnp.asarray(1, jnp.int32)
    if q.dtype == jnp.float32:
        return _varimax_accurate(q, eps, max_iter)

    def cond(c):
        i, _, _, stop = c
        return (i < max_iter) & ~stop

    def body(c):
        i, t, d, _ = c
        t_new, d_new = _varimax_step(q, t)
        return i + 1, t_new, d_new, d_new < d * (1 + eps)

    init = (jnp.asarray(0, jnp.int32), jnp.eye(k, dtype=q.dtype), jnp.zeros((), q.dtype),
            jnp.asarray(False))
    i, t, _, _ = lax.while_loop(cond, body, init)
    return t, i


def varimax_rotation_fixed(q: Array, steps: int) -> Array:
    """Varimax with a fixed number of iterations (differentiable, bounded memory).

    Args:
      q: [m, k]. steps: number of iterations.
    Returns:
      r: [k, k] rotation after `steps` iterations from the identity.
    """
    k = q.shape[1]
    if k < 2 or steps < 1:
        return jnp.eye(k, dtype=q.dtype)

    def body(t, _):
        return _varimax_step(q, t)[0], None

    t, _ = lax.scan(body, jnp.eye(k, dtype=q.dtype), None, length=steps)
    return t


def flip_skew(y: Array) -> Array:
    """Multiplies each column by the sign of its third moment (sign(0) = 0, as in R).

    Args:
      y: [m, k].
    Returns:
      [m, k] with sum(y[:, j]**3) >= 0 for every column.
    """
    return y * jnp.sign(jnp.sum(y**3, axis=0))
