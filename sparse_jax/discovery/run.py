"""Discovery pipeline: sampled features -> decomposition -> unit directions in W -> files.

Methods (each gives k unit directions in W and their stdev):
  pca-w  PCA on W (PCA of w; a baseline, not the paper's PCA)
  pca    GANSpace (the paper's PCA [5]): PCA of max-pooled activations, regressed onto W
         exactly as GANSpace's linreg_lstsq does
  sefa   SeFa: eigenvectors of A^T A, A = stacked style-affine weights (already in W)
  sca    SCA of max-pooled activations, regressed onto W (the paper's method)
  sca-w  SCA of w directly

Randomness: the run's `seed` split into the disjoint streams of `sparse_jax.core.seeds`: fit samples
come from its FIT_STREAM, the fresh samples of the regression (as in GANSpace, which regresses on
new samples) from its REGRESSION_STREAM; neither is the IMAGE_STREAM that the evaluation walks and
`--seeds` of the binaries draw from.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from sparse_jax import decompose
from sparse_jax.core import atomic, resume, seeds, sharding, stopping
from sparse_jax.discovery import directions, features, sefa_layers
from sparse_jax.io import direction_files
from sparse_jax.models import generators
from sparse_jax.plots import figures as plots

METHODS = ("pca-w", "pca", "sefa", "sca", "sca-w")
ACTIVATION_METHODS = ("pca", "sca")
GANSPACE_MIN_REGRESSION = 10_000
_SCATTER_MAX_POINTS = 5000
SCA_ROTATE_Z = False  # SCA fast mode; see _sca_basis


@dataclasses.dataclass(frozen=True)
class DiscoveryConfig:
    """The settings of one discovery run: `run_discovery(cfg, variables, **asdict(config))`.

    The fields are `run_discovery`'s keyword arguments (same names, same defaults; a test keeps
    them equal) and the flags of `sparse-jax discover` are derived from them.
    """

    methods: str | None = None  # comma list; None: all of METHODS
    layers: str | None = None  # comma list; None: features.default_layers(cfg)
    pool: str = "global"
    num_samples: int = 10_000
    num_regression_samples: int | None = None
    k: int = 20
    gamma: float | None = None
    target_sparsity: float = 0.8
    seed: int = 0
    batch: int = 256
    truncation: float = 1.0


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """One method's directions and metadata (what `directions_<method>.npz` holds).

    Attributes:
      method: one of METHODS.
      dirs: Directions (numpy) with lat_comp [k, w_dim] unit rows etc.
      act_space: "features" (max-pooled activations) or "w".
      sparsity: fraction of exactly-zero entries of the basis (SCA: of its loadings).
      gamma: SCA's L1 budget (NaN for non-SCA methods).
      seconds: wall time of the decomposition and regression.
      extra: method-specific values for summary.json (e.g. SCA's cpve, SeFa's eigenvalues).
    """

    method: str
    dirs: directions.Directions
    act_space: str
    sparsity: float
    gamma: float
    seconds: float
    extra: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class DiscoveryResult:
    """Everything `run_discovery` computed.

    Attributes:
      methods: method name -> MethodResult, in the requested order.
      layers: full layer names the features came from.
      pooling: "global" or "grid{s}".
      fit: Features of the fit samples (x [n, p], w [n, w_dim], labels or None).
      summary: the content of summary.json.
    """

    methods: dict[str, MethodResult]
    layers: tuple[str, ...]
    pooling: str
    fit: features.Features
    summary: dict[str, Any]


def parse_methods(methods: Sequence[str] | str | None) -> tuple[str, ...]:
    """"pca,sca" or a list -> validated tuple (None/"all"/empty: all five)."""
    if methods is None:
        return METHODS
    if isinstance(methods, str):
        methods = [m.strip().lower() for m in methods.split(",") if m.strip()]
    if not methods or list(methods) == ["all"]:
        return METHODS
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)} (or 'all')")
    return tuple(dict.fromkeys(methods))


def _check_sizes(methods, k, num_samples, num_regression, p, w_dim) -> None:
    if k < 1:
        raise ValueError(f"k (--k) must be >= 1, got {k}")
    if num_samples < 2:
        raise ValueError(f"need at least 2 samples (--num_samples), got {num_samples}")
    if k > num_samples:
        raise ValueError(f"k={k} (--k) is larger than the number of samples n={num_samples} "
                         "(--num_samples)")
    if any(m in ACTIVATION_METHODS for m in methods) and k > num_regression:
        raise ValueError(f"k={k} (--k) is larger than the {num_regression} regression samples")
    for m in methods:
        dim = p if m in ACTIVATION_METHODS else w_dim
        space = "the pooled features" if m in ACTIVATION_METHODS else "W"
        if k > dim:
            hint = "; or use more layers / a finer --pool" if m in ACTIVATION_METHODS else ""
            raise ValueError(f"k={k} (--k) is larger than the dimension p={dim} of {space} "
                             f"(method {m!r}): lower --k{hint}")


# ----------------------------------------------------------------------------- decomposition
# Thin adapters to sparse_jax.decompose, so the rest of the file does not depend on its field names.


def _on_mesh(x: Any, mesh: Mesh | None) -> jax.Array:
    """x [n, p] (the same host array on every process) row-sharded over the run's mesh when
    several processes take part, so the decompositions' products reduce over every device of
    every process. One process keeps one device: SCA on features row-sharded over 4 forced CPU
    devices stalled (n = 300, the main job's smoke size), to be investigated."""
    x = np.asarray(x, np.float32)
    if jax.process_count() == 1:
        return jax.device_put(x)
    return sharding.shard_rows(x, sharding.make_data_mesh() if mesh is None else mesh)


def _pca_basis(x: jax.Array, k: int, mesh: Mesh | None = None
               ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """PCA of x [n, p] -> (comp [k, p] unit rows, mean [p], stdev [k], var_ratio [k])."""
    r = decompose.pca(_on_mesh(x, mesh), k)
    return tuple(jnp.asarray(sharding.to_host(a)) for a in (
        r.components, r.mean, r.stdev, r.explained_variance_ratio))


def _sca_basis(x: jax.Array, k: int, gamma: float | None, target_sparsity: float,
               mesh: Mesh | None = None):
    """SCA of x [n, p] -> (comp [k, p] unit rows, loadings [p, k], gamma, sparsity, info).

    Runs SCA's fast mode (`rotate_z=False`: no varimax of the n x k left factor, which only
    affects Z; on the epca reference data the loadings move by < 1e-6), as n = 10,000+ makes the
    faithful n x k varimax the dominant cost.
    """
    x = _on_mesh(x, mesh)
    if gamma is None:
        r = decompose.sca(x, k, target_sparsity=target_sparsity, rotate_z=SCA_ROTATE_Z)
    else:
        r = decompose.sca(x, k, gamma=gamma, rotate_z=SCA_ROTATE_Z)
    loadings = sharding.to_host(r.loadings)
    directions.check_nonzero_rows(loadings.T, "SCA loadings")
    comp = directions.sca_basis(loadings)
    sparsity = float(np.mean(loadings == 0.0))
    info = {"cpve": sharding.to_host(r.cpve).tolist(), "n_iter": int(sharding.to_host(r.n_iter)),
            "converged": bool(sharding.to_host(r.converged))}
    return comp, loadings, float(sharding.to_host(r.gamma)), sparsity, info


def _sefa_basis(cfg: generators.GeneratorConfig, variables: dict, k: int):
    """SeFa -> (comp [k, w_dim] unit rows, eigenvalues [k], var_ratio [k], layers).

    SeFa row-normalises the stacked affine weights A [m, w_dim], so trace(A^T A) = m and each
    eigenvalue's share of the total is eigenvalue / m.
    """
    chosen = sefa_layers.select_layers(cfg, variables, "all")
    weights = sefa_layers.stacked_weights(chosen)
    comp, eig = decompose.sefa_from_weights(weights, k)
    return comp, eig, eig / weights.shape[0], [n for n, _ in chosen]


def _label_counts(labels: np.ndarray | None) -> dict[str, int] | None:
    if labels is None:
        return None
    values, counts = np.unique(labels, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def _zero_fraction(m: Any) -> float:
    return float(np.mean(np.asarray(m) == 0.0))


def _fit_method(method, fit, fresh, cfg, variables, k, gamma, target_sparsity,
                w_stdev=None, mesh=None) -> MethodResult:
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    gamma_out = math.nan
    if method == "pca-w":
        comp, _, stdev, var_ratio = _pca_basis(fit.w, k, mesh)
        dirs = directions.from_latent_basis(comp, jnp.asarray(fit.w), var_ratio, act_stdev=stdev,
                                            w_stdev=w_stdev)
        space, sparsity = "w", _zero_fraction(comp)
    elif method == "sca-w":
        comp, _, gamma_out, sparsity, extra = _sca_basis(fit.w, k, gamma, target_sparsity, mesh)
        w = jnp.asarray(fit.w)
        var_ratio = directions.explained_variance_ratio(w, jnp.mean(w, axis=0), comp)
        dirs = directions.from_latent_basis(comp, w, var_ratio, w_stdev=w_stdev)
        space = "w"
    elif method == "sefa":
        comp, eig, var_ratio, sefa_layers = _sefa_basis(cfg, variables, k)
        dirs = directions.from_latent_basis(comp, jnp.asarray(fit.w), var_ratio, w_stdev=w_stdev)
        space, sparsity = "w", _zero_fraction(comp)
        extra["eigenvalues"] = np.asarray(eig).tolist()
        extra["sefa_layers"] = sefa_layers
    elif method in ACTIVATION_METHODS:
        x = jnp.asarray(fit.x)
        mean = jnp.mean(x, axis=0)
        if method == "pca":
            comp, mean, stdev, var_ratio = _pca_basis(fit.x, k, mesh)
            sparsity = _zero_fraction(comp)
        else:
            comp, _, gamma_out, sparsity, extra = _sca_basis(fit.x, k, gamma, target_sparsity,
                                                             mesh)
            # Scores are X_c @ (unit-normalised loadings); their stdev whitens the regression.
            stdev = directions.score_stdev(x, mean, comp)
            var_ratio = directions.explained_variance_ratio(x, mean, comp)
        dirs = directions.from_activation_basis(
            comp, mean, stdev, var_ratio, jnp.asarray(fresh.x), jnp.asarray(fresh.w),
            w_stdev=w_stdev)
        space = "features"
    else:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    data = fit.x if space == "features" else fit.w
    dirs = dirs._replace(random_stdevs=directions.random_stdevs(data, dirs.act_mean, k))
    dirs = dirs.to_numpy()
    return MethodResult(method=method, dirs=dirs, act_space=space, sparsity=float(sparsity),
                        gamma=float(gamma_out), seconds=time.perf_counter() - t0, extra=extra)


# ----------------------------------------------------------------------------- resuming


def _save_method(checkpoint: resume.RunFolder, part: str, r: MethodResult) -> None:
    checkpoint.save(part, r.dirs._asdict(), {
        "method": r.method, "act_space": r.act_space, "sparsity": r.sparsity,
        "gamma": None if math.isnan(r.gamma) else r.gamma, "seconds": r.seconds,
        "extra": r.extra})


def _load_method(checkpoint: resume.RunFolder, part: str) -> MethodResult:
    arrays, meta = checkpoint.load(part)
    dirs = directions.Directions(**{f: arrays.get(f) for f in directions.Directions._fields})
    gamma = math.nan if meta["gamma"] is None else float(meta["gamma"])
    return MethodResult(method=meta["method"], dirs=dirs, act_space=meta["act_space"],
                        sparsity=float(meta["sparsity"]), gamma=gamma,
                        seconds=float(meta["seconds"]), extra=meta["extra"])


# ----------------------------------------------------------------------------- output


def _basis_scores(r: MethodResult, fit: features.Features) -> np.ndarray:
    data = fit.x if r.act_space == "features" else fit.w
    return (data - r.dirs.act_mean) @ r.dirs.act_comp[:2].T


def scatter_panels(results: dict[str, MethodResult], fit: features.Features
                   ) -> tuple[list[tuple[str, np.ndarray]], np.ndarray | None]:
    """The paper's Fig. 2 data: fit samples in the first two components of each basis.

    Panels for PCA and SCA on activations when computed (else their W variants).
    Returns:
      ([(title, scores [n, 2] or an empty [0, 2] when k < 2)], labels [n] or None).
    """
    names = [m for m in ("pca", "sca") if m in results] or [
        m for m in ("pca-w", "sca-w") if m in results]
    n = min(len(fit.w), _SCATTER_MAX_POINTS)
    panels = []
    for name in names:
        r = results[name]
        if r.dirs.act_comp.shape[0] < 2:
            panels.append((f"{name}: k < 2, nothing to plot", np.zeros((0, 2))))
            continue
        s = _basis_scores(r, features.Features(fit.x[:n], fit.w[:n], None))
        panels.append((f"{name} ({r.act_space}), {n} samples", s[:, :2]))
    return panels, (None if fit.labels is None else fit.labels[:n])


def write_outputs(out: str, result: DiscoveryResult, k: int, seed: int) -> None:
    """Writes directions_<method>.npz/.npy, summary.json and scatter.png into `out` (atomically)."""
    os.makedirs(out, exist_ok=True)
    for name, r in result.methods.items():
        direction_files.write_directions(
            os.path.join(out, f"directions_{name}.npz"), r.dirs, method=r.method,
            act_space=r.act_space, layers=result.layers, pooling=result.pooling, k=k, seed=seed,
            gamma=r.gamma, sparsity=r.sparsity)
        atomic.save_npy(os.path.join(out, f"directions_{name}.npy"), r.dirs.lat_comp)
    panels, labels = scatter_panels(result.methods, result.fit)
    if panels:
        fig = plots.scatter_figure(panels, labels)
        atomic.save_figure(os.path.join(out, "scatter.png"), fig)
    atomic.write_json(os.path.join(out, "summary.json"), result.summary)


# ----------------------------------------------------------------------------- entry point


def run_discovery(
    cfg: generators.GeneratorConfig,
    variables: dict,
    *,
    methods: Sequence[str] | str | None = None,
    layers: Sequence[str] | str | None = None,
    pool: int | str = "global",
    num_samples: int = 10_000,
    num_regression_samples: int | None = None,
    k: int = 20,
    gamma: float | None = None,
    target_sparsity: float = 0.8,
    seed: int = 0,
    batch: int = 256,
    truncation: float = 1.0,
    out: str | None = None,
    label_fn: Callable[[jax.Array], jax.Array] | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    checkpoint: resume.RunFolder | None = None,
) -> DiscoveryResult:
    """Finds k unit directions in W per method and (optionally) writes them to `out`.

    Args:
      cfg, variables: the generator (see `checkpoints.load_generator`).
      methods: subset of METHODS (list or comma string); None for all five.
      layers: synthesis layers for the activation methods (short names accepted); None for
        `features.default_layers(cfg)`.
      pool: "global" (one max per channel) or "grid{s}" / s (an s x s grid of maxima).
      num_samples: n fit samples (paper: 10,000).
      num_regression_samples: fresh samples for the regression of pca/sca (default
        max(10,000, n), GANSpace's count).
      k: directions per method.
      gamma: SCA L1 budget; None picks the gamma giving `target_sparsity` zero loadings.
      target_sparsity: fraction of SCA loadings that should be exactly zero (default 0.8).
      seed: PRNG seed (fit and regression samples derive from it).
      batch: samples per jitted step.
      truncation: truncation psi for z -> w.
      out: output folder, or None to only return the result.
      label_fn: images [B, C, H, W] -> int labels [B], used to colour scatter.png.
      mesh: 1-D data mesh (default: all devices).
      progress: tqdm progress bars.
      checkpoint: the run folder (`core.resume`) where finished samples and methods are saved
        as they finish and read back when the run is resumed; None computes everything.

    Returns:
      DiscoveryResult.
    """
    methods = parse_methods(methods)
    names = features.resolve_layers(cfg, layers)
    grid = features.parse_pool(pool)
    pooling = features.pool_name(grid)
    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target_sparsity (--target_sparsity) must be in [0, 1), got "
                         f"{target_sparsity}")
    if gamma is not None and not gamma > 0:
        raise ValueError(f"gamma (--gamma) must be positive, got {gamma}")
    # GANSpace regresses on max(10,000, n) fresh samples.
    n_reg = (max(GANSPACE_MIN_REGRESSION, num_samples) if num_regression_samples is None
             else int(num_regression_samples))
    needs_acts = any(m in ACTIVATION_METHODS for m in methods)
    p = features.feature_dim(cfg, names, grid) if needs_acts else 0
    _check_sizes(methods, k, num_samples, n_reg, p, cfg.w_dim)

    common = dict(layers=names, pool=grid, batch_size=batch, truncation=truncation, mesh=mesh,
                  progress=progress)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    fit = features.sample_features(cfg, variables, seeds.stream_key(seed, seeds.FIT_STREAM),
                                   num_samples, label_fn=label_fn, desc="fit samples",
                                   rows=resume.rows(checkpoint, "fit_samples"), **common)
    timings["fit_samples"] = time.perf_counter() - t0
    fresh = None
    if needs_acts:
        t0 = time.perf_counter()
        fresh = features.sample_features(cfg, variables,
                                         seeds.stream_key(seed, seeds.REGRESSION_STREAM), n_reg,
                                         desc="regression samples",
                                         rows=resume.rows(checkpoint, "regression_samples"),
                                         **common)
        timings["regression_samples"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    w_stdev = directions.lat_stdev_latents(cfg, variables, seed, truncation=truncation)
    timings["lat_stdev_samples"] = time.perf_counter() - t0
    results: dict[str, MethodResult] = {}
    resumed = []
    for m in methods:
        stopping.check()
        part = f"method_{m}"
        if checkpoint is not None and checkpoint.has(part):
            results[m] = _load_method(checkpoint, part)
            resumed.append(m)
        else:
            results[m] = _fit_method(m, fit, fresh, cfg, variables, k, gamma, target_sparsity,
                                     w_stdev, mesh)
            if checkpoint is not None:
                _save_method(checkpoint, part, results[m])
        timings[m] = results[m].seconds

    summary = {
        "generator": cfg.to_dict(),
        "methods": list(methods),
        "layers": list(names),
        "pooling": pooling,
        "feature_dim": p,
        "num_samples": num_samples,
        "num_regression_samples": n_reg if needs_acts else 0,
        "k": k,
        "gamma": gamma,
        "target_sparsity": target_sparsity,
        "seed": seed,
        "batch": batch,
        "truncation": truncation,
        "devices": (mesh.size if mesh is not None else jax.device_count()),
        "processes": jax.process_count(),
        "seconds": timings,
        "label_counts": _label_counts(fit.labels),
        # Methods read back from an interrupted run's finished parts (their seconds are those
        # of the run that computed them).
        "resumed_methods": resumed,
        "results": {
            m: {
                "file": f"directions_{m}.npz",
                "act_space": r.act_space,
                "sparsity": r.sparsity,
                "gamma": None if math.isnan(r.gamma) else r.gamma,
                "var_ratio": r.dirs.var_ratio.tolist(),
                "lat_stdev": r.dirs.lat_stdev.tolist(),
                **r.extra,
            }
            for m, r in results.items()
        },
    }
    result = DiscoveryResult(methods=results, layers=names, pooling=pooling, fit=fit,
                             summary=summary)
    if out is not None:
        # Every process computed the same result; one writes it, and the others wait for the
        # files (a later stage, e.g. the evaluation, reads them on every process).
        if sharding.is_main_process():
            write_outputs(out, result, k, seed)
        sharding.sync("discovery outputs written")
    return result
