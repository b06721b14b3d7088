"""Products with the column-centred data X_c = X - 1 mu^T without forming X_c for a large X.

    ops = centred_ops(x, materialise=x.size <= CENTRE_MAX_ELEMENTS)
    ops.xprod(y)   # X_c y     [n, m]  (= X y - 1 (mu^T y))
    ops.xtprod(z)  # X_c^T z   [p, m]  (= X^T z - mu (1^T z))
    ops.gram()     # X_c^T X_c [p, p]  (= X^T X - n mu mu^T)

Row-sharded X works as is: every product is a contraction or a row-local map.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, Mesh, NamedSharding

from sparse_jax.decompose.varimax import mm

Array = jax.Array

# Below this many elements X - mean is formed once (slightly more accurate in float32); above,
# the mean is folded into every product so X is never duplicated.
CENTRE_MAX_ELEMENTS = 1 << 24


class CentredOps(NamedTuple):
    n: int
    p: int
    mean: Array                        # [p]
    xprod: Callable[[Array], Array]    # y [p, m] -> X_c y [n, m]
    xtprod: Callable[[Array], Array]   # z [n, m] -> X_c^T z [p, m]
    gram: Callable[[], Array]          # -> X_c^T X_c [p, p], symmetric
    sqnorm: Callable[[], Array]        # -> ||X_c||_F^2


def _sym(a: Array) -> Array:
    return 0.5 * (a + a.T)


def centred_ops(x: Array, materialise: bool) -> CentredOps:
    """Operators of X_c for x [n, p] (inside jit). `materialise` forms X - mean once."""
    n, p = x.shape
    mean = jnp.mean(x, axis=0)
    if materialise:
        xc = x - mean
        return CentredOps(n, p, mean, lambda y: mm(xc, y), lambda z: mm(xc.T, z),
                          lambda: _sym(mm(xc.T, xc)), lambda: jnp.sum(xc**2))
    return CentredOps(
        n, p, mean,
        lambda y: mm(x, y) - mm(mean[None, :], y),
        lambda z: mm(x.T, z) - mean[:, None] * jnp.sum(z, axis=0)[None, :],
        lambda: _sym(mm(x.T, x) - n * jnp.outer(mean, mean)),
        lambda: jnp.sum((x - mean) ** 2),
    )


def auto_axes(x: Array) -> Array:
    """Moves an array on an Explicit-axes mesh (jax.make_mesh's default) to the same devices and
    spec with Auto axes (no gather), so contractions over sharded rows need no output shardings."""
    if isinstance(x, jax.core.Tracer):
        return x
    sh = getattr(x, "sharding", None)
    if isinstance(sh, NamedSharding) and any(t != AxisType.Auto for t in sh.mesh.axis_types):
        mesh = Mesh(sh.mesh.devices, sh.mesh.axis_names,
                    axis_types=(AxisType.Auto,) * len(sh.mesh.axis_names))
        x = jax.device_put(x, NamedSharding(mesh, sh.spec))
    return x


def as_matrix(x) -> Array:
    """[n, p] floating array (at least float32), on an Auto mesh if it was sharded."""
    x = auto_axes(jnp.asarray(x))
    if x.ndim != 2:
        raise ValueError(f"X must be a 2-D [n, p] matrix, got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating) or jnp.finfo(x.dtype).bits < 32:
        x = x.astype(jnp.float32)
    return x
