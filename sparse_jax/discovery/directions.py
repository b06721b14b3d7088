"""From a basis in some feature space to unit directions in W (GANSpace's least-squares recipe).

A basis found in activation space (PCA or SCA of max-pooled features) does not live in W. As in
GANSpace (Härkönen et al. 2020), we draw fresh samples, compute their whitened component scores
A = ((X - mean) @ comp.T) / stdev, and solve the linear map M with A M ~= w (least squares, no
intercept; both sides centred on the sample means). Row i of M is the W direction whose movement
best explains a unit-stdev change of score i; it is normalised to unit length. Its scale in W is
recorded separately as `lat_stdev`, the stdev of w projected on the unit direction.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_TINY = 1e-12


class Directions(NamedTuple):
    """k directions in W plus the basis they came from (GANSpace's .npz layout).

    Attributes:
      lat_comp: [k, w_dim] unit rows in W.
      lat_mean: [w_dim] mean of w over the samples used.
      lat_stdev: [k] stdev of w projected on each row of lat_comp.
      act_comp: [k, p] unit rows of the basis in the decomposed space.
      act_mean: [p] mean of the decomposed features.
      act_stdev: [k] stdev of the component scores (the whitening scale).
      var_ratio: [k] share of the feature variance each component explains.
    """

    lat_comp: Any
    lat_mean: Any
    lat_stdev: Any
    act_comp: Any
    act_mean: Any
    act_stdev: Any
    var_ratio: Any

    def to_numpy(self) -> "Directions":
        return Directions(*(np.asarray(jax.device_get(a), dtype=np.float32) for a in self))


def normalize_rows(m: jax.Array) -> jax.Array:
    """Scales each row of m [k, d] to unit L2 norm (zero rows stay zero; see check_nonzero_rows)."""
    norms = jnp.linalg.norm(m, axis=-1, keepdims=True)
    return m / jnp.maximum(norms, _TINY)


def check_nonzero_rows(m: np.ndarray, what: str) -> None:
    """Raises ValueError naming the rows of m [k, d] that are (numerically) all zero."""
    norms = np.linalg.norm(np.asarray(m), axis=-1)
    bad = np.flatnonzero(norms <= 1e-8)
    if bad.size:
        raise ValueError(
            f"{what}: component(s) {bad.tolist()} are all zero, so no direction can be derived; "
            "lower the sparsity (--target_sparsity or --gamma) or k (--k)"
        )


def sca_basis(loadings: jax.Array) -> jax.Array:
    """SCA loadings [p, k] (sparse, columns not unit) -> basis rows [k, p] with unit length.

    SCA's own scores are X_c @ loadings, whose scale depends on how much soft-thresholding shrank
    each column. We normalise the columns first so that every component's score is the projection
    of X_c on a unit vector (as for PCA); whitening by the score stdev then makes the regression
    independent of that scale anyway, and the sparsity pattern is unchanged.
    """
    return normalize_rows(jnp.asarray(loadings).T)


@jax.jit
def project_scores(x: jax.Array, mean: jax.Array, comp: jax.Array, stdev: jax.Array) -> jax.Array:
    """Whitened component scores.

    Args:
      x: [n, p] features.
      mean: [p] feature mean of the basis fit.
      comp: [k, p] basis rows.
      stdev: [k] score stdev on the fit samples.

    Returns:
      [n, k] scores ((x - mean) @ comp.T) / stdev.
    """
    return ((x - mean) @ comp.T) / stdev


@jax.jit
def score_stdev(x: jax.Array, mean: jax.Array, comp: jax.Array) -> jax.Array:
    """Stdev [k] of the scores (x - mean) @ comp.T over the n rows of x [n, p]."""
    return jnp.std((x - mean) @ comp.T, axis=0)


@jax.jit
def regress_to_w(scores: jax.Array, w: jax.Array) -> jax.Array:
    """Least-squares map from component scores to w; one unit direction in W per component.

    Solves min_M ||A_c M - w_c||_F with A_c, w_c the column-centred scores and latents (centring
    replaces the intercept), then normalises each row of M.

    Args:
      scores: [n, k] (whitened) component scores of n samples, n >= k.
      w: [n, w_dim] the same samples' latents.

    Returns:
      [k, w_dim] directions with unit rows (row i: how w moves when score i grows).
    """
    a = scores - jnp.mean(scores, axis=0)
    b = w - jnp.mean(w, axis=0)
    m, _, _, _ = jnp.linalg.lstsq(a, b)
    return normalize_rows(m)


@jax.jit
def latent_stdev(w: jax.Array, lat_comp: jax.Array) -> jax.Array:
    """Stdev [k] of latents w [n, w_dim] projected on the unit rows of lat_comp [k, w_dim]."""
    return jnp.std(w @ lat_comp.T, axis=0)


def explained_variance_ratio(x: jax.Array, mean: jax.Array, comp: jax.Array) -> jax.Array:
    """Variance of each projection x @ comp[i] as a share of the total variance of x [n, p]."""
    xc = x - mean
    total = jnp.sum(jnp.var(xc, axis=0))
    return jnp.var(xc @ comp.T, axis=0) / jnp.maximum(total, _TINY)


def from_activation_basis(
    act_comp: jax.Array,
    act_mean: jax.Array,
    act_stdev: jax.Array,
    var_ratio: jax.Array,
    x_fresh: jax.Array,
    w_fresh: jax.Array,
) -> Directions:
    """Regresses an activation-space basis onto W using fresh samples (GANSpace's recipe).

    Args:
      act_comp: [k, p] unit basis rows; act_mean: [p]; act_stdev: [k] score stdev on the fit data.
      var_ratio: [k] explained-variance share per component (carried through).
      x_fresh: [n, p] features of samples not used to fit the basis, n >= k.
      w_fresh: [n, w_dim] their latents.

    Returns:
      Directions with lat_comp [k, w_dim] unit rows, lat_mean = mean of w_fresh, lat_stdev the
      stdev of w_fresh along each direction.
    """
    check_nonzero_rows(np.asarray(act_stdev)[:, None], "activation basis (zero score stdev)")
    scores = project_scores(x_fresh, act_mean, act_comp, act_stdev)
    lat_comp = regress_to_w(scores, w_fresh)
    return Directions(
        lat_comp=lat_comp,
        lat_mean=jnp.mean(w_fresh, axis=0),
        lat_stdev=latent_stdev(w_fresh, lat_comp),
        act_comp=act_comp,
        act_mean=act_mean,
        act_stdev=act_stdev,
        var_ratio=var_ratio,
    )


def from_latent_basis(
    comp: jax.Array, w: jax.Array, var_ratio: jax.Array, act_stdev: jax.Array | None = None
) -> Directions:
    """Directions for a basis found directly in W (PCA-W, SCA-W, SeFa): no regression needed.

    Args:
      comp: [k, w_dim] basis rows (normalised here).
      w: [n, w_dim] latents for the mean and the stdev along each direction.
      var_ratio: [k] per-component variance share (method-specific; carried through).
      act_stdev: [k] scale to report as act_stdev; default the stdev of w along each direction.

    Returns:
      Directions whose act_* describe the same W basis.
    """
    comp = normalize_rows(jnp.asarray(comp))
    mean = jnp.mean(w, axis=0)
    lat_stdev = latent_stdev(w, comp)
    return Directions(
        lat_comp=comp,
        lat_mean=mean,
        lat_stdev=lat_stdev,
        act_comp=comp,
        act_mean=mean,
        act_stdev=lat_stdev if act_stdev is None else jnp.asarray(act_stdev),
        var_ratio=jnp.asarray(var_ratio),
    )
