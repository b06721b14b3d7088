"""The jitted SCA solver behind `sparse_jax.decompose.sca` (see that module for the semantics).

One sweep = polar-rotate-shrink on the Z side, then on the Y side (epca's `prs`), in one of two
data paths: "products" (X_c Y and X_c^T Z each sweep, Z explicit; needed for the faithful Z
varimax) or "gram" (fast mode, n >= p: everything in p-space on G = X_c^T X_c). `solve` runs the
whole thing (start, `lax.while_loop` of sweeps or a fixed `lax.scan`, finish) under one jit and
returns (SCAResult, Info); the host-side checks live in `sca.py`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from sparse_jax.decompose.centred import CentredOps, centred_ops
from sparse_jax.decompose.shrink import hard_threshold_l0, soft_threshold_l1
from sparse_jax.decompose.varimax import (
    flip_skew,
    mm,
    polar,
    varimax_rotation,
    varimax_rotation_fixed,
)

Array = jax.Array

_SEARCH_POINTS = 12
_SEARCH_ROUNDS = 3
# Sweeps per gamma during the search. Gammas that leave only a few non-zeros per column may never
# meet epca's stopping rule; uncapped, one such lane kept a vmapped round running for 1000 sweeps
# (over 10 minutes at p = 2048). The chosen gamma is then solved with the caller's max_iter.
_SEARCH_MAX_SWEEPS = 50


class SCAResult(NamedTuple):
    """SCA output (a pytree; under `sca_sweep` every field gets a leading gamma axis).

    loadings: [p, k] sparse loadings Y (columns ordered, positively skewed, L2 norm <= 1).
    scores: [n, k] X_c Y.
    z: [n, k] left factor Z (orthonormal).
    b: [k, k] middle matrix Z^T X_c Y.
    n_iter: [] int32 sweeps done.
    converged: [] bool, stopped on the distance criterion before max_iter.
    cpve: [k] cumulative proportion of variance explained (Shen & Huang adjusted).
    sparsity: [] fraction of exactly zero loadings.
    gamma: [] sparsity parameter used.
    mean: [p] column means subtracted from X.
    """

    loadings: Array
    scores: Array
    z: Array
    b: Array
    n_iter: Array
    converged: Array
    cpve: Array
    sparsity: Array
    gamma: Array
    mean: Array


class Info(NamedTuple):
    finite: Array       # X had no NaN/Inf
    rank_ratio: Array   # k-th / first eigenvalue of X_c^T X_c (1 when a start was given)
    dead: Array         # a loading column was thresholded to zero


@dataclasses.dataclass(frozen=True)
class Config:
    k: int
    shrink: str
    rotate_z: bool
    gram: bool
    centre: bool
    max_iter: int
    varimax_max_iter: int
    fixed_sweeps: int | None = None
    varimax_steps: int = 50


# ----------------------------------------------------------------------------- start


def _start(ops: CentredOps, k: int, g: Array | None, init_u, init_v):
    """Top-k singular vectors of X_c (or the caller's start). Returns (u, v, rank_ratio)."""
    dtype = ops.mean.dtype
    if init_v is not None:
        v = jnp.asarray(init_v, dtype)
        if init_u is not None:
            u = jnp.asarray(init_u, dtype)
        else:
            xv = ops.xprod(v)
            u = xv / jnp.linalg.norm(xv, axis=0)
        return u, v, jnp.ones((), dtype)
    if ops.n >= ops.p:
        lam, vec = jnp.linalg.eigh(ops.gram() if g is None else g)
        lam, v = lam[::-1][:k], vec[:, ::-1][:, :k]
        u = ops.xprod(v) / jnp.sqrt(jnp.maximum(lam, jnp.finfo(dtype).tiny))
    else:
        # n < p: eigen-decompose the n x n Gram X_c X_c^T instead.
        xxt = ops.xprod(ops.xtprod(jnp.eye(ops.n, dtype=dtype)))  # X_c X_c^T, [n, n]
        lam, vec = jnp.linalg.eigh(xxt)
        lam, u = lam[::-1][:k], vec[:, ::-1][:, :k]
        v = ops.xtprod(u) / jnp.sqrt(jnp.maximum(lam, jnp.finfo(dtype).tiny))
    return u, v, lam[-1] / lam[0]


# ----------------------------------------------------------------------------- sweep pieces


def _col_distance(a: Array, b: Array) -> Array:
    """epca's `distance(a, b, "maximum")` decided without a general assignment solver.

    Columns are unit-normalised; D[i, j] = max_r |a_ri - b_rj|; epca returns the minimal
    assignment sum of D. The row minima sum to a lower bound that a permutation attains whenever
    the row-wise argmins form a permutation; then it IS the Hungarian value. Otherwise +inf is
    returned. This decides `value < eps` exactly whenever the columns of b are more than 2*eps
    apart in max-norm (an assignment below eps uses only entries below eps, so each row then has a
    unique such entry, which is its argmin): distinct orthonormal columns of length m are at least
    sqrt(2/m) apart, i.e. always for m < 5e9 at eps = 1e-5.

    Args:
      a, b: [m, k].
    Returns:
      [] the matched distance (or +inf, meaning "not converged").
    """
    m, k = a.shape
    a = a / jnp.linalg.norm(a, axis=0)
    b = b / jnp.linalg.norm(b, axis=0)
    if m * k * k <= 1 << 22:
        d = jnp.max(jnp.abs(a[:, :, None] - b[:, None, :]), axis=0)  # d[i, j]
    else:  # one column of b at a time: O(m k) memory
        d = lax.map(lambda bj: jnp.max(jnp.abs(a - bj[:, None]), axis=0), b.T).T
    j = jnp.argmin(d, axis=1)
    is_perm = jnp.all(jnp.sum(jax.nn.one_hot(j, k, dtype=jnp.int32), axis=0) == 1)
    return jnp.where(is_perm, jnp.sum(jnp.min(d, axis=1)), jnp.inf)


def _rotate(q: Array, eps: Array, cfg: Config) -> Array:
    if cfg.fixed_sweeps is not None:
        r = varimax_rotation_fixed(q, cfg.varimax_steps)
    else:
        r, _ = varimax_rotation(q, eps, cfg.varimax_max_iter)
    return flip_skew(mm(q, r))


def _order(energy: Array) -> Array:
    return jnp.argsort(-energy, stable=True)


def _y_step(a_y: Array, gamma: Array, eps: Array, cfg: Config, product):
    """prs(X_c, Z): polar, varimax + flip, shrink, order. Returns (y [p,k], product(y) [.,k])."""
    ys = _rotate(polar(a_y), eps / math.sqrt(a_y.shape[0]), cfg)
    if cfg.shrink == "soft":
        yh = soft_threshold_l1(ys, gamma)
    else:
        yh = hard_threshold_l0(ys, gamma)
    prod, energy = product(yh)
    perm = _order(energy)
    return yh[:, perm], prod[:, perm]


def _dead(y: Array) -> Array:
    return jnp.any(jnp.all(y == 0, axis=0))


class State(NamedTuple):
    it: Array
    z: Array       # products path: current Z; Gram path: unused (zeros [1, k])
    y: Array
    prod: Array    # products path: X_c y [n, k]; Gram path: G y [p, k]
    y_prev: Array  # Y that produced the current Z (Gram path finishes Z from it)
    dz: Array
    dy: Array
    done: Array
    dead: Array


def _sweep_products(ops: CentredOps, cfg: Config, gamma, eps, st: State) -> State:
    z_s = polar(st.prod)
    if cfg.rotate_z:
        z_s = _rotate(z_s, eps / math.sqrt(ops.n), cfg)
    else:
        z_s = flip_skew(z_s)
    xtz = ops.xtprod(z_s)
    perm = _order(jnp.sum(xtz**2, axis=0))
    z_new, a_y = z_s[:, perm], xtz[:, perm]

    def product(yh):
        xy = ops.xprod(yh)
        return xy, jnp.sum(xy**2, axis=0)

    y_new, xy = _y_step(a_y, gamma, eps, cfg, product)
    dz = _col_distance(st.z, z_new) if cfg.rotate_z else jnp.zeros_like(st.dz)
    dy = _col_distance(st.y, y_new)
    done, dead = _stop(cfg, eps, dz, dy, y_new, st.dz)
    return State(st.it + 1, z_new, y_new, xy, st.y, dz, dy, done, dead)


def _inv_sqrt_psd(m: Array) -> Array:
    lam, q = jnp.linalg.eigh(m)
    return mm(q / jnp.sqrt(jnp.maximum(lam, jnp.finfo(m.dtype).tiny)), q.T)


def _sweep_gram(g: Array, cfg: Config, gamma, eps, st: State) -> State:
    # Z = polar(X_c Y) = X_c Y M^{-1/2} with M = Y^T G Y, hence X_c^T Z = G Y M^{-1/2}. Z's own
    # flip/order would only permute the columns of X_c^T Z, which the Y step re-canonicalises.
    a_y = mm(st.prod, _inv_sqrt_psd(mm(st.y.T, st.prod)))

    def product(yh):
        gy = mm(g, yh)
        return gy, jnp.sum(yh * gy, axis=0)

    y_new, gy = _y_step(a_y, gamma, eps, cfg, product)
    dy = _col_distance(st.y, y_new)
    dz = jnp.zeros_like(st.dz)
    done, dead = _stop(cfg, eps, dz, dy, y_new, st.dz)
    return State(st.it + 1, st.z, y_new, gy, st.y, dz, dy, done, dead)


def _stop(cfg: Config, eps, dz, dy, y_new, dz_prev):
    """epca's rule max(dZ, dY) < eps (fast mode: dY < eps); also stops on NaN or a dead column.

    float32 faithful mode adds a noise-floor rule: when the Z-side varimax hits its iteration cap
    (n >~ 5000), float32 rounding over its 1000 slow iterations leaves dZ at ~1e-4 (n = 10,000)
    although float64 keeps shrinking it geometrically; so once dY < eps, a dZ that stops
    decreasing also ends the loop (at n = 10,000 on the benchmark data this stops at the same
    sweep as float64 does with epca's rule).
    """
    dead = _dead(y_new)
    crit = jnp.maximum(dz, dy) if cfg.rotate_z else dy
    done = (crit < eps) | dead | jnp.isnan(dy) | jnp.isnan(dz)
    if cfg.rotate_z and y_new.dtype == jnp.float32:
        done = done | ((dy < eps) & (dz >= dz_prev) & jnp.isfinite(dz))
    return done, dead


def _run(sweep, cfg: Config, st: State) -> State:
    if cfg.fixed_sweeps is not None:
        body = jax.checkpoint(lambda s, _: (sweep(s), None))
        st, _ = lax.scan(body, st, None, length=cfg.fixed_sweeps)
        return st
    return lax.while_loop(lambda s: (s.it < cfg.max_iter) & ~s.done, sweep, st)


# ----------------------------------------------------------------------------- solve + finish


class Prepared(NamedTuple):
    ops: CentredOps
    g: Array | None
    u0: Array
    v0: Array
    info_finite: Array
    rank_ratio: Array


def _prepare(x: Array, init_u, init_v, cfg: Config) -> Prepared:
    ops = centred_ops(x, cfg.centre)
    need_gram = cfg.gram or (init_v is None and ops.n >= ops.p)
    g = ops.gram() if need_gram else None
    u0, v0, rank_ratio = _start(ops, cfg.k, g, init_u, init_v)
    finite = jnp.all(jnp.isfinite(ops.mean))
    return Prepared(ops, g if cfg.gram else None, u0, v0, finite, rank_ratio)


def _init_state(pre: Prepared, cfg: Config) -> State:
    ops, dtype = pre.ops, pre.ops.mean.dtype
    inf = jnp.asarray(jnp.inf, dtype)
    if cfg.gram:
        z, prod = jnp.zeros((1, cfg.k), dtype), mm(pre.g, pre.v0)
    else:
        z, prod = pre.u0, ops.xprod(pre.v0)
    return State(jnp.asarray(0, jnp.int32), z, pre.v0, prod, pre.v0, inf, inf,
                  ~pre.info_finite, jnp.asarray(False))


def _iterate(pre: Prepared, gamma: Array, eps: Array, cfg: Config) -> State:
    if cfg.gram:
        sweep = functools.partial(_sweep_gram, pre.g, cfg, gamma, eps)
    else:
        sweep = functools.partial(_sweep_products, pre.ops, cfg, gamma, eps)
    return _run(sweep, cfg, _init_state(pre, cfg))


def _cpve(y: Array, scores: Array, total: Array) -> Array:
    """epca's cpve: ||X_c P_{Y_i}||_F^2 / ||X_c||_F^2 for the first i loading columns Y_i.

    With Y^T Y = R^T R (Cholesky), Q = Y R^{-1} is orthonormal and spans the same nested
    subspaces, so ||X_c P_{Y_i}||_F^2 = sum_{j<=i} ||X_c q_j||^2 = cumsum(diag(R^-T S^T S R^-1)).
    """
    r = jnp.linalg.cholesky(mm(y.T, y), upper=True)
    t = jax.scipy.linalg.solve_triangular(r, mm(scores.T, scores), trans="T", lower=False)
    t = jax.scipy.linalg.solve_triangular(r, t.T, trans="T", lower=False)
    return jnp.cumsum(jnp.diagonal(t)) / total


def _finish(pre: Prepared, st: State, gamma: Array, eps: Array, cfg: Config):
    ops = pre.ops
    y = st.y
    if cfg.gram:
        both = ops.xprod(jnp.concatenate([st.y_prev, y], axis=1))
        a_z, scores = both[:, :cfg.k], both[:, cfg.k:]
        u, s, vt = jnp.linalg.svd(a_z, full_matrices=False)
        z = mm(u, vt)
        # X_c^T Z = G Y_prev V S^-1 V^T: ordering needs no extra pass over X.
        xtz = mm(pre.g, mm(st.y_prev, mm(vt.T / s, vt)))
        sign = jnp.sign(jnp.sum(z**3, axis=0))
        z, xtz = z * sign, xtz * sign
        z = z[:, _order(jnp.sum(xtz**2, axis=0))]
        total = jnp.trace(pre.g)
    else:
        z, scores = st.z, st.prod
        total = ops.sqnorm()
    converged = st.done & ~st.dead & pre.info_finite
    res = SCAResult(
        loadings=y, scores=scores, z=z, b=mm(z.T, scores), n_iter=st.it, converged=converged,
        cpve=_cpve(y, scores, total), sparsity=jnp.mean(y == 0, dtype=y.dtype), gamma=gamma,
        mean=ops.mean)
    return res, Info(pre.info_finite, pre.rank_ratio, st.dead)


def solve(x, gamma, eps, init_u, init_v, cfg: Config, batched: bool):
    """The whole solve for x [n, p] at gamma [] (or [G] with batched=True). Returns (res, info)."""
    pre = _prepare(x, init_u, init_v, cfg)

    def one(g):
        return _finish(pre, _iterate(pre, g, eps, cfg), g, eps, cfg)

    return jax.vmap(one)(gamma) if batched else one(gamma)


def _search_gamma(pre: Prepared, target, eps, cfg: Config):
    """(gamma, final state) whose fraction of zero loadings is closest to `target`.

    `_SEARCH_ROUNDS` rounds of `_SEARCH_POINTS` gammas, each solved for at most
    `_SEARCH_MAX_SWEEPS` sweeps in one vmapped call: the first grid
    is geometric over [k/2, k sqrt(p)], each next one linear inside the bracket where the
    sparsity crosses the target (so the bracket shrinks ~11x a round). The best solution seen is
    kept; a gamma that kills a loading column counts as sparsity 1 and is never chosen. The
    vmapped solver is traced once (`fori_loop` over rounds).
    """
    k, p, npts = cfg.k, pre.ops.p, _SEARCH_POINTS
    dtype = pre.ops.mean.dtype
    search_cfg = dataclasses.replace(cfg, max_iter=min(cfg.max_iter, _SEARCH_MAX_SWEEPS))
    run = jax.vmap(lambda g: _iterate(pre, g, eps, search_cfg))

    def one_round(_, carry):
        grid, best, best_gamma, best_err = carry
        sts = run(grid)
        spars = jnp.mean(sts.y == 0, axis=(1, 2), dtype=dtype)
        err = jnp.where(sts.dead, jnp.inf, jnp.abs(spars - target))
        i = jnp.argmin(err)
        better = err[i] < best_err
        best = jax.tree.map(lambda new, old: jnp.where(better, new[i], old), sts, best)
        best_gamma = jnp.where(better, grid[i], best_gamma)
        j = jnp.clip(jnp.sum(jnp.where(sts.dead, 1.0, spars) >= target) - 1, 0, npts - 2)
        grid = jnp.linspace(grid[j], grid[j + 1], npts).astype(dtype)
        return grid, best, best_gamma, jnp.minimum(err[i], best_err)

    grid0 = jnp.geomspace(0.5 * k, k * math.sqrt(p), npts).astype(dtype)
    init = (grid0, _init_state(pre, cfg), grid0[-1], jnp.asarray(jnp.inf, dtype))
    _, best, gamma, _ = lax.fori_loop(0, _SEARCH_ROUNDS, one_round, init)
    return gamma, best


def solve_target(x, target, eps, init_u, init_v, cfg: Config):
    pre = _prepare(x, init_u, init_v, cfg)
    gamma, searched = _search_gamma(pre, target, eps, cfg)
    full = _iterate(pre, gamma, eps, cfg)
    # Should the full solve kill a column that the capped one kept, return the capped solution
    # (reported as not converged) rather than fail.
    st = jax.tree.map(lambda a, b: jnp.where(full.dead, a, b), searched, full)
    return _finish(pre, st, gamma, eps, cfg)


solve_jit = jax.jit(solve, static_argnames=("cfg", "batched"))
solve_target_jit = jax.jit(solve_target, static_argnames=("cfg",))
