"""From a basis in some feature space to unit directions in W, as GANSpace computes them.

A basis found in activation space (PCA or SCA of max-pooled features) does not live in W.
GANSpace (Härkönen et al. 2020, `linreg_lstsq` in harskish/ganspace) draws fresh samples, takes
their whitened component coordinates A = ((X - act_mean) @ comp.T) / act_stdev, centred on the
mean of the *fit* samples, and solves A M ~= w by least squares with no intercept and latents
that are not centred; row i of M, normalised, is direction i. The project follows that recipe
exactly (our reading of it, written independently; tests/test_ganspace.py checks it against a
NumPy transcription of the same reading). Its scale in W is recorded separately as `lat_stdev`,
the stdev of w along the unit direction on 5,000 fresh samples (GANSpace's count).
"""
from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.core import seeds
from sparse_jax.models import generators

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
      random_stdevs: [k] stdev of the centred fit features along k random unit directions
        (GANSpace's reference scale for its UI); None until `random_stdevs` fills it.
    """

    lat_comp: Any
    lat_mean: Any
    lat_stdev: Any
    act_comp: Any
    act_mean: Any
    act_stdev: Any
    var_ratio: Any
    random_stdevs: Any = None

    def to_numpy(self) -> "Directions":
        return Directions(*(None if a is None else np.asarray(jax.device_get(a), np.float32)
                            for a in self))


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
    """GANSpace's least-squares map from component coordinates to w; one unit direction each.

    Solves min_M ||A M - w||_F with A the whitened coordinates as given (centred on the fit
    mean, not on these samples) and w not centred, no intercept (GANSpace's `linreg_lstsq`),
    then normalises each row of M.

    Args:
      scores: [n, k] whitened component coordinates of n samples, n >= k.
      w: [n, w_dim] the same samples' latents.

    Returns:
      [k, w_dim] directions with unit rows (row i: how w moves when coordinate i grows).
    """
    m, _, _, _ = jnp.linalg.lstsq(scores, w)
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


LAT_STDEV_SAMPLES = 5000  # GANSpace measures lat_stdev on 5,000 fresh samples


@functools.lru_cache(maxsize=8)
def _w_mapper(cfg: generators.GeneratorConfig, truncation: float):
    def mapper(variables, key, idx):
        z = seeds.latents(key, idx, cfg.z_dim)
        return generators.map_latents(cfg, variables, z, truncation_psi=truncation)[:, 0]

    return jax.jit(mapper)


def lat_stdev_latents(cfg: generators.GeneratorConfig, variables: Any, seed: int,
                      num: int = LAT_STDEV_SAMPLES, truncation: float = 1.0,
                      batch: int = 1000) -> jax.Array:
    """w [num, w_dim] of fresh latents for lat_stdev: the run seed's LAT_STDEV_STREAM, which no
    fit, regression or evaluation sample comes from. Every call maps `batch` rows (one shape)."""
    mapper = _w_mapper(cfg, float(truncation))
    key = seeds.stream_key(seed, seeds.LAT_STDEV_STREAM)
    size = min(batch, num)
    out = []
    for lo in range(0, num, size):
        idx = jax.device_put(np.arange(lo, lo + size, dtype=np.int32))
        out.append(mapper(variables, key, idx)[:num - lo])
    return jnp.concatenate(out)


RANDOM_DIRS_SEED = 2  # fixed, as GANSpace's random reference directions do not vary per run
RANDOM_STDEV_SAMPLES = 5000


def random_stdevs(x: Any, mean: Any, k: int) -> np.ndarray:
    """Stdev [k] of the fit features x [n, p] (centred on mean [p]) along k random unit
    directions: GANSpace's `random_stdevs`, on at most the first 5,000 samples."""
    xc = np.asarray(x, np.float64)[:RANDOM_STDEV_SAMPLES] - np.asarray(mean, np.float64)
    dirs = np.random.default_rng(RANDOM_DIRS_SEED).normal(size=(k, xc.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return (xc @ dirs.T).std(axis=0).astype(np.float32)


def from_activation_basis(
    act_comp: jax.Array,
    act_mean: jax.Array,
    act_stdev: jax.Array,
    var_ratio: jax.Array,
    x_fresh: jax.Array,
    w_fresh: jax.Array,
    w_stdev: jax.Array | None = None,
) -> Directions:
    """Regresses an activation-space basis onto W using fresh samples (GANSpace's recipe).

    Args:
      act_comp: [k, p] unit basis rows; act_mean: [p] mean of the fit features;
        act_stdev: [k] coordinate stdev on the fit data (the whitening scale).
      var_ratio: [k] explained-variance share per component (carried through).
      x_fresh: [n, p] features of samples not used to fit the basis, n >= k (GANSpace:
        max(10,000, fit n)).
      w_fresh: [n, w_dim] their latents.
      w_stdev: [m, w_dim] further fresh latents for lat_stdev (GANSpace: 5,000); default w_fresh.

    Returns:
      Directions with lat_comp [k, w_dim] unit rows, lat_mean = mean of w_fresh, lat_stdev the
      stdev of w_stdev along each direction.
    """
    check_nonzero_rows(np.asarray(act_stdev)[:, None], "activation basis (zero score stdev)")
    scores = project_scores(x_fresh, act_mean, act_comp, act_stdev)
    lat_comp = regress_to_w(scores, w_fresh)
    return Directions(
        lat_comp=lat_comp,
        lat_mean=jnp.mean(w_fresh, axis=0),
        lat_stdev=latent_stdev(w_fresh if w_stdev is None else w_stdev, lat_comp),
        act_comp=act_comp,
        act_mean=act_mean,
        act_stdev=act_stdev,
        var_ratio=var_ratio,
    )


def from_latent_basis(
    comp: jax.Array, w: jax.Array, var_ratio: jax.Array, act_stdev: jax.Array | None = None,
    w_stdev: jax.Array | None = None,
) -> Directions:
    """Directions for a basis found directly in W (PCA-W, SCA-W, SeFa): no regression needed.

    Args:
      comp: [k, w_dim] basis rows (normalised here).
      w: [n, w_dim] the fit latents, for the mean (and act_stdev by default).
      var_ratio: [k] per-component variance share (method-specific; carried through).
      act_stdev: [k] scale to report as act_stdev; default the stdev of w along each direction.
      w_stdev: [m, w_dim] fresh latents for lat_stdev (GANSpace: 5,000); default w.

    Returns:
      Directions whose act_* describe the same W basis.
    """
    comp = normalize_rows(jnp.asarray(comp))
    mean = jnp.mean(w, axis=0)
    fit_stdev = latent_stdev(w, comp)
    return Directions(
        lat_comp=comp,
        lat_mean=mean,
        lat_stdev=fit_stdev if w_stdev is None else latent_stdev(w_stdev, comp),
        act_comp=comp,
        act_mean=mean,
        act_stdev=fit_stdev if act_stdev is None else jnp.asarray(act_stdev),
        var_ratio=jnp.asarray(var_ratio),
    )
