"""SeFa (Shen & Zhou, "Closed-form factorization of latent semantics in GANs", CVPR 2021).

    from sparse_jax.decompose import sefa_from_weights
    components, eigenvalues = sefa_from_weights(weights, k=10)   # weights [m, w_dim]

Arrays in, arrays out: `sparse_jax.discovery.sefa_layers` chooses which layers' weights to stack.

What SeFa computes: the style affine of every chosen synthesis layer maps w to styles, s = A w + b.
Stack the chosen layers' affine weights (official layout [C, w_dim] each) into A [sum C, w_dim],
normalise every row (one style channel) to unit L2 norm, and return the top-k eigenvectors of
A^T A [w_dim, w_dim]: the unit directions n in W that maximise sum ||A n||^2. The per-layer
equalised-lr gains of the official code are one scalar per layer, so the row normalisation
removes them and the raw stored weights can be used.

Choices, relative to the authors' genforce/sefa code (the layer order is in
`sparse_jax.discovery.sefa_layers`):
  * genforce uses the general `np.linalg.eig` on the symmetric PSD matrix and keeps LAPACK's
    order; here `eigh` (the symmetric solver) with eigenvalues explicitly sorted descending,
    which is what the paper describes (top-k eigenvectors).
  * eigenvector signs are arbitrary in both; here the largest-|.| entry of each is positive.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sparse_jax.decompose.pca import sign_by_max_abs

Array = jax.Array


def sefa_from_weights(weights: Array, k: int) -> tuple[Array, Array]:
    """SeFa on stacked style-affine weights.

    Args:
      weights: [m, w_dim], one row per style channel.
      k: number of directions, 1 <= k <= w_dim.
    Returns:
      (components [k, w_dim] unit rows, eigenvalues [k] descending) of A^T A, A = row-normalised
      weights.
    """
    w = jnp.asarray(weights)
    if w.ndim != 2:
        raise ValueError(f"weights must be [m, w_dim], got shape {w.shape}")
    if not 1 <= k <= w.shape[1]:
        raise ValueError(f"k={k} must be between 1 and w_dim={w.shape[1]}")
    return _sefa(w.astype(jnp.promote_types(w.dtype, jnp.float32)), int(k))


@functools.partial(jax.jit, static_argnames=("k",))
def _sefa(w: Array, k: int) -> tuple[Array, Array]:
    a = w / jnp.linalg.norm(w, axis=1, keepdims=True)
    lam, vec = jnp.linalg.eigh(jnp.matmul(a.T, a, precision=jax.lax.Precision.HIGHEST))
    return sign_by_max_abs(vec[:, ::-1][:, :k].T), lam[::-1][:k]
