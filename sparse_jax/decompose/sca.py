"""Sparse component analysis (Chen & Rohe), faithful to the authors' R package epca 1.1.0.

    from sparse_jax.decompose import sca
    res = sca(x, k=10)                           # gamma = sqrt(p*k), epca's default; faithful
    res = sca(x, k=10, gamma=25.0, rotate_z=False)      # fast mode (skips the n x k varimax)
    res = sca(x, k=10, target_sparsity=0.8, rotate_z=False)  # gamma chosen for 80% zero loadings
    res.loadings [p, k], res.scores [n, k], res.z [n, k], res.b [k, k], res.n_iter, res.cpve, ...

X is centred (never scaled, as epca 1.1.0). One sweep alternates two polar-rotate-shrink steps:
Z <- order(flip(polar(X Y) R_Z)) and Y <- order(shrink(flip(polar(X^T Z) R_Y), gamma)), with R the
varimax rotations, shrink an entrywise soft threshold of the whole p x k matrix to L1 norm gamma
(`shrink="hard"`: at most gamma non-zeros), columns ordered by score energy. It stops when the
column distance between successive Z and Y (max-abs per column after unit normalisation, matched
columns summed) falls below `eps`, exactly as epca (`sca_solver._col_distance` explains why the
column matching needs no general assignment solver).

Modes:
  * faithful (`rotate_z=True`, default): reproduces epca's `loadings, scores, z, b, n.iter`
    (float64: to ~1e-12 with equal n_iter; float32: ~1e-7 on loadings and z, equal n_iter on the
    reference data, thanks to an accurately evaluated varimax stopping test). In float32 a dZ
    stuck at its rounding floor (Z varimax at its 1000-iteration cap, n >~ 5000) also stops once
    dY < eps, where epca's rule could otherwise never fire.
  * fast (`rotate_z=False`): skips the Z-side varimax (~90% of epca's time; loadings move by
    <= 1e-7 vs epca in float64 on the reference data) and stops on the Y distance only. When n >= p
    it runs in p-space on the Gram matrix X_c^T X_c: one pass over X for the Gram, one for the
    scores.
    `z` is then the unrotated polar factor polar(X_c Y_prev) (flipped, ordered).
  * differentiable (`sca_fixed`): fixed numbers of sweeps and varimax steps (`lax.scan`, each
    sweep rematerialised), so `jax.grad` reaches X and gamma with memory independent of max_iter.

Everything runs in one `jax.jit` (`lax.while_loop`); `sca_sweep` vmaps the solve over a vector of
gammas in one compiled call; `target_sparsity` / `gamma_for_sparsity` search gamma on three rounds
of vmapped grids inside that call. X may be row-sharded (`NamedSharding`); products fold the mean in
(X_c Y = X Y - 1 mu^T Y) so a large X is never copied.
"""
from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.decompose import centred
from sparse_jax.decompose.centred import as_matrix
from sparse_jax.decompose.sca_solver import (
    Config,
    Info,
    SCAResult,
    solve,
    solve_jit,
    solve_target_jit,
)

Array = jax.Array

# Largest p for which the fast mode keeps the p x p Gram matrix.
GRAM_MAX_P = 8192


# ----------------------------------------------------------------------------- public API


def _config(x: Array, k, shrink, rotate_z, method, max_iter, varimax_max_iter,
            fixed_sweeps=None, varimax_steps=50) -> Config:
    n, p = x.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= min(n, p):
        raise ValueError(f"k={k} must be between 1 and min(n, p) = min({n}, {p})")
    if shrink not in ("soft", "hard"):
        raise ValueError(f"shrink must be 'soft' or 'hard', got {shrink!r}")
    if method not in ("auto", "gram", "products"):
        raise ValueError(f"method must be 'auto', 'gram' or 'products', got {method!r}")
    if method == "gram" and rotate_z:
        raise ValueError("method='gram' needs rotate_z=False (the Z varimax needs Z itself)")
    gram = method == "gram" or (method == "auto" and not rotate_z and n >= p and p <= GRAM_MAX_P)
    return Config(k=int(k), shrink=shrink, rotate_z=bool(rotate_z), gram=gram,
                   centre=n * p <= centred.CENTRE_MAX_ELEMENTS, max_iter=int(max_iter),
                   varimax_max_iter=int(varimax_max_iter), fixed_sweeps=fixed_sweeps,
                   varimax_steps=int(varimax_steps))


def default_gamma(p: int, k: int, shrink: str = "soft") -> float:
    """epca's default: sqrt(p k) (soft); for hard shrinkage the same fraction of p k entries."""
    return math.sqrt(p * k) if shrink == "soft" else float(max(k, round(math.sqrt(p * k))))


def _check_gamma(gamma, p: int, k: int, shrink: str) -> None:
    if isinstance(gamma, jax.core.Tracer):
        return
    g = np.asarray(gamma, dtype=np.float64)
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"gamma must be finite and > 0, got {gamma!r}")
    hi = k * math.sqrt(p) if shrink == "soft" else p * k
    if np.any(g < k) or np.any(g > hi):
        bound = "k*sqrt(p)" if shrink == "soft" else "p*k"
        warnings.warn(f"Improper sparsity parameter gamma={gamma!r}: outside [k, {bound}] = "
                      f"[{k}, {hi:.4g}] (epca prints the same message)", stacklevel=3)


def _check_info(info: Info, gamma, x: Array, k: int) -> None:
    """Raises on the host after the solve; skipped under tracing (jit/vmap/grad of the caller)."""
    if any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(info)):
        return
    if not bool(np.all(np.asarray(info.finite))):
        raise ValueError(f"X [{x.shape[0]}, {x.shape[1]}] contains NaN or Inf (or overflows)")
    tol = min(x.shape) * float(jnp.finfo(x.dtype).eps)
    if np.any(np.asarray(info.rank_ratio) <= tol):
        raise ValueError(f"centred X has (numerical) rank < k={k}: the k-th eigenvalue of "
                         f"X_c^T X_c is {float(np.min(info.rank_ratio)):.3g} x the first; lower k")
    dead = np.asarray(info.dead)
    if np.any(dead):
        bad = np.asarray(gamma)[dead] if np.ndim(gamma) else gamma
        raise ValueError(f"gamma={bad!r} is so small that thresholding wipes out a whole loading "
                         f"column; use a larger gamma (>= k={k} is recommended)")


def sca(
    x,
    k: int,
    gamma: float | None = None,
    *,
    target_sparsity: float | None = None,
    shrink: str = "soft",
    rotate_z: bool = True,
    eps: float = 1e-5,
    max_iter: int = 1000,
    varimax_max_iter: int = 1000,
    init_u=None,
    init_v=None,
    method: str = "auto",
) -> SCAResult:
    """Sparse component analysis of X (epca::sca with center=TRUE, scale=FALSE).

    Args:
      x: [n, p] data (rows = samples); may be row-sharded across devices.
      k: number of components, 1 <= k <= min(n, p).
      gamma: L1 budget of the whole loading matrix (soft) or max non-zeros (hard); default
        sqrt(p k). A gamma at or above the L1 norm of the rotated loadings shrinks nothing.
      target_sparsity: instead of gamma, the wanted fraction of zero loadings (e.g. 0.8); gamma
        is then searched inside the same compiled call (hard: floor((1 - target) p k)).
      shrink: "soft" (epca default) or "hard".
      rotate_z: True = faithful to epca (varimax on the n x k Z); False = fast mode.
      eps: outer tolerance (epca `epsilon`); varimax tolerances are eps/sqrt(rows).
      max_iter, varimax_max_iter: iteration caps (epca: 1000, 1000).
      init_u, init_v: [n, k], [p, k] start (e.g. epca's irlba start); default: exact top-k SVD.
      method: "auto", "gram" (p-space, fast mode only) or "products" (two passes over X a sweep).
    Returns:
      SCAResult.
    Raises:
      ValueError: bad shapes/k/gamma, NaN/Inf in X, rank(X_c) < k, or a gamma that zeroes a
        whole loading column (checked on the host after the solve, skipped under tracing).
    """
    x = as_matrix(x)
    cfg = _config(x, k, shrink, rotate_z, method, max_iter, varimax_max_iter)
    n, p = x.shape
    _check_init(init_u, init_v, n, p, k)
    eps_a = jnp.asarray(eps, x.dtype)
    if target_sparsity is not None:
        if gamma is not None:
            raise ValueError("give either gamma or target_sparsity, not both")
        if not 0.0 <= float(target_sparsity) < 1.0:
            raise ValueError(f"target_sparsity must be in [0, 1), got {target_sparsity!r}")
        if shrink == "hard":
            gamma = float(max(1, math.floor((1.0 - float(target_sparsity)) * p * k)))
        else:
            res, info = solve_target_jit(x, jnp.asarray(target_sparsity, x.dtype), eps_a,
                                          init_u, init_v, cfg=cfg)
            _check_info(info, res.gamma, x, k)
            return res
    if gamma is None:
        gamma = default_gamma(p, k, shrink)
    _check_gamma(gamma, p, k, shrink)
    res, info = solve_jit(x, jnp.asarray(gamma, x.dtype), eps_a, init_u, init_v, cfg=cfg,
                           batched=False)
    _check_info(info, gamma, x, k)
    return res


def sca_sweep(x, k: int, gammas, **kwargs) -> SCAResult:
    """`sca` for every gamma in `gammas` [G] in one compiled, vmapped call.

    The Gram matrix / start are computed once; every field of the result has a leading [G] axis.
    Keyword arguments as in `sca` (except gamma / target_sparsity).
    """
    x = as_matrix(x)
    shrink = kwargs.get("shrink", "soft")
    cfg = _config(x, k, shrink, kwargs.get("rotate_z", True), kwargs.get("method", "auto"),
                  kwargs.get("max_iter", 1000), kwargs.get("varimax_max_iter", 1000))
    unknown = set(kwargs) - {"shrink", "rotate_z", "method", "max_iter", "varimax_max_iter",
                             "eps", "init_u", "init_v"}
    if unknown:
        raise ValueError(f"unknown arguments to sca_sweep: {sorted(unknown)}")
    init_u, init_v = kwargs.get("init_u"), kwargs.get("init_v")
    _check_init(init_u, init_v, x.shape[0], x.shape[1], k)
    gammas = jnp.atleast_1d(jnp.asarray(gammas, x.dtype))
    _check_gamma(gammas, x.shape[1], k, shrink)
    res, info = solve_jit(x, gammas, jnp.asarray(kwargs.get("eps", 1e-5), x.dtype), init_u,
                           init_v, cfg=cfg, batched=True)
    _check_info(info, gammas, x, k)
    return res


def gamma_for_sparsity(x, k: int, target_sparsity: float, **kwargs) -> float:
    """The gamma that `sca(x, k, target_sparsity=...)` would pick (soft: vmapped grid search)."""
    return float(sca(x, k, target_sparsity=target_sparsity, **kwargs).gamma)


def sca_fixed(
    x,
    k: int,
    gamma=None,
    *,
    n_sweeps: int = 10,
    varimax_steps: int = 50,
    shrink: str = "soft",
    rotate_z: bool = False,
    eps: float = 1e-5,
    init_u=None,
    init_v=None,
    method: str = "auto",
) -> SCAResult:
    """Differentiable SCA: exactly `n_sweeps` sweeps, each varimax `varimax_steps` iterations.

    Pure (no host checks), so `jax.grad` / `jax.jit` / `jax.vmap` work with respect to x and
    gamma; each sweep is rematerialised in the backward pass (memory ~ n_sweeps x carry).

    Args:
      x: [n, p]. k: components. gamma: [] L1 budget (default sqrt(p k)).
      n_sweeps, varimax_steps: fixed iteration counts. Other arguments as in `sca`.
    Returns:
      SCAResult (n_iter = n_sweeps; converged = last distance below eps).
    """
    x = as_matrix(x)
    cfg = _config(x, k, shrink, rotate_z, method, n_sweeps, varimax_steps,
                  fixed_sweeps=int(n_sweeps), varimax_steps=varimax_steps)
    _check_init(init_u, init_v, x.shape[0], x.shape[1], k)
    if gamma is None:
        gamma = default_gamma(x.shape[1], k, shrink)
    res, _ = solve(x, jnp.asarray(gamma, x.dtype), jnp.asarray(eps, x.dtype), init_u, init_v,
                    cfg, batched=False)
    return res


def _check_init(init_u, init_v, n: int, p: int, k: int) -> None:
    if init_u is not None and init_v is None:
        raise ValueError("init_u needs init_v (the sweep starts from Y = init_v)")
    if init_v is not None and tuple(np.shape(init_v)) != (p, k):
        raise ValueError(f"init_v must have shape [p, k] = [{p}, {k}], got {np.shape(init_v)}")
    if init_u is not None and tuple(np.shape(init_u)) != (n, k):
        raise ValueError(f"init_u must have shape [n, k] = [{n}, {k}], got {np.shape(init_u)}")
