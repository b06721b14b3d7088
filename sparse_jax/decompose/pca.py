"""PCA as GANSpace uses it: unit components, the mean, per-component stdev, explained variance.

    from sparse_jax.decompose import pca
    res = pca(x, k=20)       # x [n, p], rows = samples
    res.components [k, p] (unit rows, descending variance), res.mean [p], res.stdev [k],
    res.explained_variance [k] (n - 1 denominator), res.explained_variance_ratio [k]

Signs follow scikit-learn >= 1.5 (`svd_flip(u_based_decision=False)`): the largest-|.| entry of
every component is positive. For n >= p it eigen-decomposes the p x p Gram matrix (one pass over
X, mean folded in, row-sharded X fine); for n < p the n x n one. One `jax.jit`.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.decompose import centred
from sparse_jax.decompose.centred import as_matrix, centred_ops

Array = jax.Array


class PCAResult(NamedTuple):
    """PCA output (pytree).

    components: [k, p] unit rows. mean: [p]. stdev: [k] sqrt(explained_variance).
    explained_variance: [k] eigenvalues / (n - 1). explained_variance_ratio: [k] of the total.
    """

    components: Array
    mean: Array
    stdev: Array
    explained_variance: Array
    explained_variance_ratio: Array


def sign_by_max_abs(rows: Array) -> Array:
    """Flips each row of rows [k, p] so that its largest-|.| entry is positive."""
    idx = jnp.argmax(jnp.abs(rows), axis=1)
    s = jnp.sign(jnp.take_along_axis(rows, idx[:, None], axis=1))
    return rows * jnp.where(s == 0, 1, s)


@functools.partial(jax.jit, static_argnames=("k", "materialise"))
def _pca(x: Array, k: int, materialise: bool):
    ops = centred_ops(x, materialise)
    n, p = x.shape
    if n >= p:
        g = ops.gram()
        lam, vec = jnp.linalg.eigh(g)
        lam, comps = lam[::-1][:k], vec[:, ::-1][:, :k].T
        total = jnp.trace(g)
    else:
        xxt = ops.xprod(ops.xtprod(jnp.eye(n, dtype=x.dtype)))
        lam, vec = jnp.linalg.eigh(xxt)
        lam, u = lam[::-1][:k], vec[:, ::-1][:, :k]
        comps = (ops.xtprod(u) / jnp.sqrt(jnp.maximum(lam, jnp.finfo(x.dtype).tiny))).T
        total = jnp.trace(xxt)
    lam = jnp.maximum(lam, 0)
    var = lam / (n - 1)
    res = PCAResult(components=sign_by_max_abs(comps), mean=ops.mean, stdev=jnp.sqrt(var),
                    explained_variance=var, explained_variance_ratio=lam / total)
    return res, jnp.all(jnp.isfinite(ops.mean))


def pca(x, k: int) -> PCAResult:
    """Top-k principal components of x.

    Args:
      x: [n, p] data (rows = samples), possibly row-sharded.
      k: number of components, 1 <= k <= min(n, p).
    Returns:
      PCAResult.
    Raises:
      ValueError: x not 2-D, k out of range, or NaN/Inf in x.
    """
    x = as_matrix(x)
    n, p = x.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= min(n, p):
        raise ValueError(f"k={k!r} must be an integer between 1 and min(n, p) = min({n}, {p})")
    if n < 2:
        raise ValueError(f"PCA needs at least 2 rows, got X of shape {x.shape}")
    res, finite = _pca(x, int(k), n * p <= centred.CENTRE_MAX_ELEMENTS)
    if not isinstance(finite, jax.core.Tracer) and not bool(finite):
        raise ValueError(f"X [{n}, {p}] contains NaN or Inf (or overflows)")
    return res
