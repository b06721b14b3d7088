"""The sparsity question, asked by gradient: a smooth efficiency of SCA directions as a function of
SCA's gamma, differentiable end to end, and the sweep behind `bin/sparsity_sweep.py`.

    spec = sparsity.SurrogateSpec(gen_cfg, cls_cfg, k=10, distances=sparsity.surrogate_grid(d_max))
    out = sparsity.surrogate(gamma, x_fit, x_reg, w_reg, gen_vars, cls_params, key,
                             assign_idx, eval_idx, spec=spec)            # out.efficiency []
    value, grad = sparsity.efficiency_and_grad(gamma, ..., spec=spec)   # d efficiency / d gamma

`surrogate` chains, in one jit-able function of arrays (weights and keys are arguments):
  SCA of the pooled fit features (`decompose.sca_fixed`, fixed sweeps, gamma traced)
  -> unit basis rows, whitened scores, GANSpace's regression to W (`discovery.directions`)
  -> walks ws + s t d on every direction and sign (`evaluation.walks.edit_ws`)
  -> synthesis (`models.generators`) -> classifier probabilities
  -> a soft assignment (softmax over directions and signs of the mean gain at d_max) and a soft
     distance to effect (a sigmoid-smoothed first crossing of p_a(0) + shift on a log grid),
  whose mean over attributes is the surrogate efficiency. docs/metrics.md ("Smooth surrogate")
  defines it and says why it is built this way.

`run_sweep` sweeps gamma so that the fraction of zero loadings covers 0 to 95%, scores each point
with the real protocol (`evaluation.run.evaluate_directions`: distance-to-effect efficiency and
S_d, 95% bootstrap intervals over evaluation seeds) and with the surrogate, and checks
d(surrogate)/d(gamma) from `jax.grad` against a central finite difference.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from sparse_jax import decompose
from sparse_jax.core import atomic, resume, seeds, stopping
from sparse_jax.discovery import directions, features
from sparse_jax.evaluation import bootstrap, efficiency, walks
from sparse_jax.evaluation import run as evaluate
from sparse_jax.io import model_dirs
from sparse_jax.io.direction_files import DirectionSet
from sparse_jax.models import classifier as clf
from sparse_jax.models import generators
from sparse_jax.plots import figures as plots

# ----------------------------------------------------------------------------- the surrogate


@dataclasses.dataclass(frozen=True)
class SurrogateSpec:
    """The static part of the surrogate (hashable: a jit static argument).

    Attributes:
      gen_cfg: generator config; cls_cfg: classifier config.
      k: SCA components (= directions walked).
      distances: the walk grid, 0 first, increasing; must contain d_max (see `surrogate_grid`).
      d_max_index: index of d_max in `distances` (the assignment gain and A are read there).
      n_sweeps, varimax_steps: SCA's fixed iteration counts (`sca_fixed`).
      shift: the rise of p_a to reach (the real metric's `--target_shift`).
      threshold: a seed starts negative for a when p_a(0) < threshold.
      tau_assign: softmax temperature of the assignment, in units of p.
      tau_reach: sigmoid temperature of the first crossing, in units of p.
      chunk: images per rematerialised synthesis + classifier call (memory of the backward pass).
      truncation_psi: applied when mapping z -> w.
    """

    gen_cfg: Any
    cls_cfg: clf.ClassifierConfig
    k: int
    distances: tuple[float, ...]
    d_max_index: int
    n_sweeps: int = 20
    varimax_steps: int = 30
    shift: float = 0.5
    threshold: float = 0.5
    tau_assign: float = 0.05
    tau_reach: float = 0.05
    chunk: int = 64
    truncation_psi: float = 1.0


def surrogate_grid(d_max: float, reach_min: float = 0.125, reach_max: float = 4.0,
                   num: int = 11) -> tuple[tuple[float, ...], int]:
    """(distances, d_max_index): 0 and `num` log-spaced points from reach_min to reach_max x d_max,
    with the point nearest d_max set to d_max exactly (the defaults put it on the grid)."""
    t = efficiency.reach_grid(d_max, reach_min, reach_max, num)
    i = int(np.argmin(np.abs(t - d_max)))
    t[i] = d_max
    if not np.all(np.diff(t) > 0):
        raise ValueError(f"surrogate grid: d_max = {d_max} does not fit between the points of "
                         f"{t.tolist()}; choose reach_min < 1 < reach_max")
    return tuple(float(v) for v in t), i


class SurrogateOut(NamedTuple):
    """Output of `surrogate` (S_a assignment seeds, S_e evaluation seeds, A attributes, K dirs).

    Attributes:
      efficiency: [] mean over valid attributes of eff_attr (the differentiated number).
      eff_attr: [A] sum over (k, sign) of weight x mean over negative seeds of the soft
        efficiency (NaN where invalid).
      per_seed: [S_e, A] the soft efficiency of each evaluation seed along the soft assignment.
      negative: bool [S_e, A] evaluation seeds that start negative; valid: bool [A].
      weights: [2K, A] the soft assignment (row g * K + k: direction k, sign index g).
      gain: [2K, A] mean gain at d_max over negative assignment seeds.
      s_d: [] soft S_d = Tr(A) / sum(A) with A_ij = sum_kg w(kg|i) mean |p_j(d_max) - p_j(0)|.
      loadings: [p, K] SCA loadings; lat_comp: [K, w_dim] unit directions in W.
    """

    efficiency: jax.Array
    eff_attr: jax.Array
    per_seed: jax.Array
    negative: jax.Array
    valid: jax.Array
    weights: jax.Array
    gain: jax.Array
    s_d: jax.Array
    loadings: jax.Array
    lat_comp: jax.Array


def sca_directions(gamma: jax.Array, x_fit: jax.Array, x_reg: jax.Array, w_reg: jax.Array, *,
                   k: int, n_sweeps: int, varimax_steps: int) -> tuple[jax.Array, jax.Array]:
    """Discovery's `sca` method with a differentiable SCA: (lat_comp [k, w_dim], loadings [p, k]).

    Args:
      gamma: [] SCA's L1 budget. x_fit: [n, p] pooled fit features (n >= p: p-space solve).
      x_reg: [m, p] fresh features and w_reg [m, w_dim] their latents (the regression to W).
    """
    r = decompose.sca_fixed(x_fit, k, gamma, n_sweeps=n_sweeps, varimax_steps=varimax_steps,
                            rotate_z=False)
    comp = directions.sca_basis(r.loadings)
    mean = jnp.mean(x_fit, axis=0)
    stdev = directions.score_stdev(x_fit, mean, comp)
    scores = directions.project_scores(x_reg, mean, comp, stdev)
    return directions.regress_to_w(scores, w_reg), r.loadings


def _predict(spec: SurrogateSpec, gen_vars: Any, cls_params: Any, ws: jax.Array) -> jax.Array:
    """ws [N, num_ws, w_dim] -> probabilities [N, A], `spec.chunk` images at a time.

    Each chunk is rematerialised (`jax.checkpoint` inside `lax.map`), so the backward pass keeps
    one chunk's activations instead of all N images'.
    """
    n = ws.shape[0]
    size = min(spec.chunk, n)
    pad = -n % size
    padded = jnp.concatenate([ws, jnp.broadcast_to(ws[:1], (pad,) + ws.shape[1:])]) if pad else ws

    @jax.checkpoint
    def one(ws_b):
        img = generators.synthesize(spec.gen_cfg, gen_vars, ws_b, noise_mode="const")
        return clf.predict_probs(spec.cls_cfg, cls_params, img)

    out = lax.map(one, padded.reshape((-1, size) + ws.shape[1:]))
    return out.reshape(-1, out.shape[-1])[:n]


def _ws(spec: SurrogateSpec, gen_vars: Any, key: jax.Array, idx: jax.Array) -> jax.Array:
    z = seeds.latents(key, idx, spec.gen_cfg.z_dim)
    return generators.map_latents(spec.gen_cfg, gen_vars, z, truncation_psi=spec.truncation_psi)


def _edit(ws: jax.Array, dirs: jax.Array, offsets: jax.Array) -> jax.Array:
    """ws [S, num_ws, w_dim], dirs [J, w_dim], offsets [T] -> [S, J, T, num_ws, w_dim], every
    ws slot edited (the protocol's default layer range)."""
    mask = jnp.ones((ws.shape[1],), ws.dtype)
    edit = jax.vmap(walks.edit_ws, in_axes=(None, None, 0, None))           # over T
    edit = jax.vmap(edit, in_axes=(None, 0, None, None))                    # over J
    edit = jax.vmap(edit, in_axes=(0, None, None, None))                    # over S
    return edit(ws, dirs, offsets, mask)


def soft_efficiency(gain: jax.Array, distances: jax.Array, shift: float, tau: float
                    ) -> jax.Array:
    """Soft distance-to-effect efficiency of walks, from their gains p(t) - p(0).

    With s_i = sigmoid((g_i - shift) / tau) the soft "has reached" at grid point i and the
    survival S_i = prod_{j <= i} (1 - s_j) (S_0 = 1), h_i = S_{i-1} - S_i is the probability that
    the first crossing lies in (t_{i-1}, t_i]; the result is sum_i h_i shift / m_i with m_i the
    interval's midpoint. Mass that never crosses (S_T) scores 0, as an unreached seed does in
    the real metric; as tau -> 0 it is shift / (midpoint of the crossing interval).

    Args:
      gain: [..., T] gains at distances[1:] (the point t = 0 is left out: its gain is 0).
      distances: [T + 1] the grid, 0 first.
    Returns:
      [...].
    """
    hit = jax.nn.sigmoid((gain - shift) / tau)
    surv = jnp.cumprod(1.0 - hit, axis=-1)
    prev = jnp.concatenate([jnp.ones_like(surv[..., :1]), surv[..., :-1]], axis=-1)
    mids = 0.5 * (distances[:-1] + distances[1:])
    return jnp.sum((prev - surv) * (shift / mids), axis=-1)


def surrogate(gamma: jax.Array, x_fit: jax.Array, x_reg: jax.Array, w_reg: jax.Array,
              gen_vars: Any, cls_params: Any, key: jax.Array, assign_idx: jax.Array,
              eval_idx: jax.Array, *, spec: SurrogateSpec) -> SurrogateOut:
    """The smooth efficiency of SCA's directions at `gamma` (pure, jit-able, differentiable).

    Args:
      gamma: [] SCA's L1 budget (the differentiated input).
      x_fit: [n, p] pooled fit features; x_reg [m, p], w_reg [m, w_dim]: regression samples.
      gen_vars, cls_params: generator variables and classifier params.
      key: the walk stream key (`seeds.stream_key(seed, seeds.IMAGE_STREAM)`).
      assign_idx: int [S_a] assignment seed indices; eval_idx: int [S_e] evaluation seeds.
      spec: `SurrogateSpec` (static).
    Returns:
      `SurrogateOut`.
    """
    lat, loadings = sca_directions(gamma, x_fit, x_reg, w_reg, k=spec.k,
                                   n_sweeps=spec.n_sweeps, varimax_steps=spec.varimax_steps)
    signed = jnp.concatenate([lat, -lat])                                   # [2K, w_dim]
    t = jnp.asarray(spec.distances, lat.dtype)
    d_max = t[spec.d_max_index]
    predict = functools.partial(_predict, spec, gen_vars, cls_params)
    num_j, num_t = signed.shape[0], t.shape[0] - 1

    # Assignment seeds: p(0) and p(d_max) along every direction and sign.
    ws_a = _ws(spec, gen_vars, key, assign_idx)
    s_a = ws_a.shape[0]
    p0_a = predict(ws_a)                                                   # [S_a, A]
    num_a = p0_a.shape[-1]
    p_a = predict(_edit(ws_a, signed, d_max[None]).reshape((-1,) + ws_a.shape[1:]))
    p_a = p_a.reshape(s_a, num_j, num_a)
    neg_a = (p0_a < spec.threshold).astype(p0_a.dtype)                      # constant in gamma
    count_a = neg_a.sum(0)
    gain = jnp.einsum("sja,sa->ja", p_a - p0_a[:, None], neg_a) / jnp.maximum(count_a, 1.0)
    weights = jax.nn.softmax(gain / spec.tau_assign, axis=0)                # [2K, A]

    # Evaluation seeds: every direction and sign on the whole grid.
    ws_e = _ws(spec, gen_vars, key, eval_idx)
    s_e = ws_e.shape[0]
    p0_e = predict(ws_e)
    p_e = predict(_edit(ws_e, signed, t[1:]).reshape((-1,) + ws_e.shape[1:]))
    p_e = p_e.reshape(s_e, num_j, num_t, num_a)
    g_e = p_e - p0_e[:, None, None, :]
    eff = soft_efficiency(jnp.moveaxis(g_e, 2, -1), t, spec.shift, spec.tau_reach)  # [S, 2K, A]
    per_seed = jnp.einsum("sja,ja->sa", eff, weights)
    neg = p0_e < spec.threshold
    count_e = neg.sum(0)
    valid = (count_a > 0) & (count_e > 0)
    negf = neg.astype(per_seed.dtype)
    eff_attr = jnp.sum(per_seed * negf, 0) / jnp.maximum(count_e, 1)
    efficiency_ = jnp.sum(jnp.where(valid, eff_attr, 0.0)) / jnp.maximum(valid.sum(), 1)

    # Soft A and S_d (reported, not differentiated by the sweep).
    delta = jnp.abs(g_e[:, :, spec.d_max_index - 1, :])                      # [S, 2K, A_j]
    a_mat = jnp.einsum("sjb,ja,sa->ab", delta, weights, negf) / jnp.maximum(count_e, 1)[:, None]
    rows = jnp.where(valid[:, None], a_mat, 0.0)
    s_d = jnp.trace(rows) / jnp.maximum(rows.sum(), 1e-12)
    nan = jnp.asarray(jnp.nan, eff_attr.dtype)
    return SurrogateOut(efficiency=efficiency_, eff_attr=jnp.where(valid, eff_attr, nan),
                        per_seed=per_seed, negative=neg, valid=valid, weights=weights, gain=gain,
                        s_d=s_d, loadings=loadings, lat_comp=lat)


surrogate_jit = jax.jit(surrogate, static_argnames=("spec",))


def _efficiency_only(gamma, *args, spec):
    return surrogate(gamma, *args, spec=spec).efficiency


@functools.partial(jax.jit, static_argnames=("spec",))
def efficiency_and_grad(gamma: jax.Array, x_fit, x_reg, w_reg, gen_vars, cls_params, key,
                        assign_idx, eval_idx, *, spec: SurrogateSpec
                        ) -> tuple[jax.Array, jax.Array]:
    """(surrogate efficiency [], d efficiency / d gamma []) by reverse mode, in one call."""
    return jax.value_and_grad(_efficiency_only)(gamma, x_fit, x_reg, w_reg, gen_vars,
                                                cls_params, key, assign_idx, eval_idx,
                                                spec=spec)


@functools.partial(jax.jit, static_argnames=("k", "n_sweeps", "varimax_steps"))
def _loadings(gamma, x_fit, *, k, n_sweeps, varimax_steps):
    return decompose.sca_fixed(x_fit, k, gamma, n_sweeps=n_sweeps, varimax_steps=varimax_steps,
                               rotate_z=False)


# ----------------------------------------------------------------------------- the sweep


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Sizes and settings of `run_sweep`; the flags of `sparse-jax-sparsity-sweep`.

    `default()` finishes in about 10 minutes on 2 CPU cores; `smoke()` is for tests.
    """

    sparsities: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95)
    grad_sparsities: tuple[float, ...] = (0.4, 0.8, 0.9)
    num_samples: int = 2000
    num_regression_samples: int = 10_000
    k: int = 10
    n_sweeps: int = 40
    varimax_steps: int = 30
    num_assign_seeds: int = 32
    num_eval_seeds: int = 64
    reach_points: int = 22
    surrogate_assign_seeds: int = 16
    surrogate_eval_seeds: int = 16
    surrogate_points: int = 11
    tau_assign: float = 0.05
    tau_reach: float = 0.05
    fd_step: float = 0.01
    d_max_samples: int = 5000
    bootstrap_draws: int = 1000
    seed: int = 0
    batch: int = 64

    def __post_init__(self):
        checks = [
            (len(self.sparsities) >= 2, "sparsities needs >= 2 values"),
            (all(0.0 <= s < 1.0 for s in self.sparsities + self.grad_sparsities),
             "sparsities and grad_sparsities must be in [0, 1)"),
            (self.k >= 1, "k must be >= 1"),
            (self.num_samples >= 2, "num_samples must be >= 2"),
            (self.num_regression_samples >= self.k, "num_regression_samples must be >= k"),
            (self.n_sweeps >= 1 and self.varimax_steps >= 1,
             "n_sweeps and varimax_steps must be >= 1"),
            (min(self.num_assign_seeds, self.num_eval_seeds, self.surrogate_assign_seeds,
                 self.surrogate_eval_seeds) >= 1, "every seed count must be >= 1"),
            (self.reach_points >= 2 and self.surrogate_points >= 2,
             "reach_points and surrogate_points must be >= 2"),
            (self.tau_assign > 0 and self.tau_reach > 0, "tau_assign and tau_reach must be > 0"),
            (0.0 < self.fd_step < 0.5, "fd_step (relative to gamma) must be in (0, 0.5)"),
            (self.d_max_samples >= 2, "d_max_samples must be >= 2"),
            (self.bootstrap_draws >= 1, "bootstrap_draws must be >= 1"),
            (self.batch >= 1, "batch must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"sparsity sweep: {message}")

    @classmethod
    def default(cls) -> "SweepConfig":
        return cls()

    @classmethod
    def smoke(cls) -> "SweepConfig":
        """Tiny sizes for CI: every output is produced; the numbers mean little."""
        return cls(sparsities=(0.0, 0.5, 0.9), grad_sparsities=(0.5,), num_samples=300,
                   num_regression_samples=300, k=3, n_sweeps=4, varimax_steps=5,
                   num_assign_seeds=4, num_eval_seeds=8, reach_points=4,
                   surrogate_assign_seeds=2, surrogate_eval_seeds=2, surrogate_points=3,
                   d_max_samples=200, bootstrap_draws=50, batch=32)


TABLE1_KEYS = ("efficiency", "reached_fraction", "median_reach_distance", "S_e", "S_d")
PRESETS = {"default": SweepConfig.default, "smoke": SweepConfig.smoke}


def _interval(x: np.ndarray, rng: np.random.Generator, draws: int, stat: Callable
              ) -> tuple[float, float]:
    vals = [stat(rng.integers(0, x.shape[0], x.shape[0])) for _ in range(draws)]
    vals = np.asarray(vals)[np.isfinite(vals)]
    if not vals.size:
        return (math.nan, math.nan)
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def surrogate_interval(out: SurrogateOut, draws: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the surrogate efficiency over its evaluation seeds (soft
    assignment held fixed, as the real bootstrap holds the assignment fixed)."""
    per = np.asarray(out.per_seed, np.float64)
    neg = np.asarray(out.negative, bool)
    valid = np.asarray(out.valid, bool)

    def stat(idx):
        n = neg[idx]
        c = n.sum(0)
        ok = valid & (c > 0)
        if not ok.any():
            return math.nan
        return float(np.mean(((per[idx] * n).sum(0) / np.maximum(c, 1))[ok]))

    return _interval(per, np.random.default_rng(seed), draws, stat)


def converged_agreement(x_fit: jax.Array, k: int, gamma: float, loadings: np.ndarray) -> float:
    """min over the converged SCA's components of the best |cos| with a fixed-sweep column: 1
    when `sca_fixed` reached the solution discovery would use (`decompose.sca`, fast mode)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # epca's "improper gamma" warning below k: expected here
        ref = np.asarray(decompose.sca(x_fit, k, gamma=gamma, rotate_z=False).loadings)
    a = ref / np.maximum(np.linalg.norm(ref, axis=0), 1e-30)
    b = loadings / np.maximum(np.linalg.norm(loadings, axis=0), 1e-30)
    return float(np.abs(a.T @ b).max(axis=1).min())


def _nan_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _fmt(e: dict[str, Any], digits: int = 3) -> str:
    if e.get("value") is None:
        return "n/a"
    if e.get("low") is None:
        return f"{e['value']:.{digits}f}"
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def _verdict(e: dict[str, Any]) -> str:
    if not e.get("excludes_1"):
        return "not significant"
    return "higher" if e["low"] > 1 else "lower"


def markdown(result: dict[str, Any]) -> str:
    """The sweep table and the gradient-check table."""
    lines = ["# Sparsity sweep", "",
             "| target zeros | gamma | zero loadings | SCA converged (min \\|cos\\| to converged) "
             "| efficiency (distance to effect) | S_d | surrogate efficiency | soft S_d |",
             "|---|---|---|---|---|---|---|---|"]
    for p in result["points"]:
        lines.append(f"| {p['target_sparsity']:.2f} | {p['gamma']:.4g} | {p['zero_fraction']:.3f} "
                     f"| {'yes' if p['converged'] else 'no'} ({p['cos_to_converged']:.3f}) | "
                     f"{_fmt(p['efficiency'])} | "
                     f"{_fmt(p['S_d'])} | {_fmt(p['surrogate'])} | {p['surrogate_s_d']:.3f} |")
    r = result.get("ratio")
    if r:
        lines += ["", f"Sparsest over densest point ({r['name']}, paired bootstrap over evaluation "
                  f"seeds): efficiency {_fmt(r['efficiency'], 2)} ({_verdict(r['efficiency'])}), "
                  f"S_d {_fmt(r['S_d'], 2)} ({_verdict(r['S_d'])})."]
    lines += ["", "## Gradient check: d(surrogate efficiency)/d(gamma)", "",
              "| gamma | zero loadings | jax.grad | central difference (h) | relative difference "
              "| loadings crossing zero in [gamma - h, gamma + h] | agree (5%) |",
              "|---|---|---|---|---|---|---|"]
    for g in result["gradient_check"]:
        lines.append(f"| {g['gamma']:.4g} | {g['zero_fraction']:.3f} | {g['grad']:.4g} | "
                     f"{g['finite_difference']:.4g} ({g['h']:.3g}) | "
                     f"{g['relative_difference']:.2%} | {g['crossings']} | "
                     f"{'yes' if g['agree'] else 'no: ' + g['note']} |")
    return "\n".join(lines) + "\n"


def run_sweep(out: str, config: SweepConfig = SweepConfig(), generator: str | None = None,
              classifier: str | None = None, progress: bool = True,
              log: Callable[[str], None] = print,
              checkpoint: resume.RunFolder | None = None) -> dict[str, Any]:
    """Sweeps SCA's gamma over `config.sparsities`; writes sweep.json, sweep.md and
    sparsity_sweep.png into `out` (atomically). Returns sweep.json's content.

    checkpoint: the run folder of `out` (`core.resume`): the samples, the gamma search, each
    sweep point (its walks included) and each gradient check are kept as they finish, so an
    interrupted sweep resumes; None computes everything.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    gen_path = generator or model_dirs.default_generator_path()
    cls_path = classifier or model_dirs.default_classifier_path()
    cfg, gen_vars = model_dirs.load_generator(gen_path)
    evaluate.check_classifier_fits(cfg, model_dirs.load_classifier_config(cls_path), gen_path,
                                   cls_path)
    cfg_c, params_c = model_dirs.load_classifier(cls_path)
    predict_fn = jax.tree_util.Partial(functools.partial(clf.predict_probs, cfg_c), params_c)
    names = list(cfg_c.attribute_names)
    c = config
    log(f"generator: {gen_path}; classifier: {cls_path} ({len(names)} attributes)")
    log("settings: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(c).items()))
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    layers = features.default_layers(cfg)
    fit = features.sample_features(cfg, gen_vars, seeds.stream_key(c.seed, seeds.FIT_STREAM),
                                   c.num_samples, layers=layers, batch_size=max(c.batch, 256),
                                   progress=progress, desc="fit samples",
                                   rows=resume.rows(checkpoint, "fit"))
    reg = features.sample_features(cfg, gen_vars,
                                   seeds.stream_key(c.seed, seeds.REGRESSION_STREAM),
                                   c.num_regression_samples, layers=layers,
                                   batch_size=max(c.batch, 256), progress=progress,
                                   desc="regression samples",
                                   rows=resume.rows(checkpoint, "reg"))
    w_stdev = directions.lat_stdev_latents(cfg, gen_vars, c.seed)
    x_fit, x_reg, w_reg = (jnp.asarray(a) for a in (fit.x, reg.x, reg.w))
    p = int(x_fit.shape[1])
    if not c.k <= min(p, c.num_samples):
        raise ValueError(f"k={c.k} (--k) must be <= min(p, num_samples) = "
                         f"min({p}, {c.num_samples})")
    seconds["samples"] = time.perf_counter() - t0
    eval_cfg = evaluate.EvalConfig(seed=c.seed, num_assign_seeds=c.num_assign_seeds,
                                   num_eval_seeds=c.num_eval_seeds, num_distances=2,
                                   d_max_samples=c.d_max_samples, num_directions=None,
                                   reach_points=c.reach_points, chunk=c.batch, figures=False)
    d_max, d_max_source = evaluate.default_d_max(cfg, gen_vars, eval_cfg)
    eval_cfg = dataclasses.replace(eval_cfg, d_max=d_max)
    log(f"features: p={p} ({', '.join(layers)}), {c.num_samples} fit and "
        f"{c.num_regression_samples} regression samples; d_max = {d_max:.4g} ({d_max_source})")

    t0 = time.perf_counter()
    gammas = []
    for i, s in enumerate(tqdm(c.sparsities + c.grad_sparsities, desc="gamma search",
                               disable=not progress)):
        gammas.append(_kept(checkpoint, f"gamma_{i}", lambda s=s: {"gamma": float(
            decompose.gamma_for_sparsity(x_fit, c.k, s, rotate_z=False))})["gamma"])
    sweep_gammas, grad_gammas = gammas[:len(c.sparsities)], gammas[len(c.sparsities):]
    seconds["gamma_search"] = time.perf_counter() - t0

    grid, d_idx = surrogate_grid(d_max, num=c.surrogate_points)
    spec = SurrogateSpec(gen_cfg=cfg, cls_cfg=cfg_c, k=c.k, distances=grid, d_max_index=d_idx,
                         n_sweeps=c.n_sweeps, varimax_steps=c.varimax_steps,
                         shift=eval_cfg.target_shift, threshold=eval_cfg.threshold,
                         tau_assign=c.tau_assign, tau_reach=c.tau_reach, chunk=c.batch)
    key = seeds.stream_key(c.seed, seeds.IMAGE_STREAM)
    # The surrogate's seeds are the first assignment and evaluation seeds of the real protocol.
    assign_idx = jnp.arange(c.surrogate_assign_seeds, dtype=jnp.int32)
    eval_idx = jnp.arange(c.num_assign_seeds, c.num_assign_seeds + c.surrogate_eval_seeds,
                          dtype=jnp.int32)
    args = (x_fit, x_reg, w_reg, gen_vars, params_c, key, assign_idx, eval_idx)

    def dtype_gamma(g):
        return jnp.asarray(g, x_fit.dtype)

    t0 = time.perf_counter()
    points, values = [], {}
    bar = tqdm(list(zip(c.sparsities, sweep_gammas, strict=True)), desc="sweep points",
               disable=not progress)
    for i, (target, gamma) in enumerate(bar):
        label = f"gamma={gamma:.4g}"
        if checkpoint is not None and checkpoint.has(f"point_{i}"):
            arrays, meta = checkpoint.load(f"point_{i}")
            points.append(meta)
            values[label] = bootstrap.SeedValues(**{f: arrays[f] if arrays[f].ndim else
                                                    arrays[f].item()
                                                    for f in bootstrap.SeedValues._fields})
            continue
        stopping.check()
        sur = jax.device_get(surrogate_jit(dtype_gamma(gamma), *args, spec=spec))
        loadings = np.asarray(sur.loadings)
        r = jax.device_get(_loadings(dtype_gamma(gamma), x_fit, k=c.k, n_sweeps=c.n_sweeps,
                                     varimax_steps=c.varimax_steps))
        agreement = converged_agreement(x_fit, c.k, gamma, loadings)
        lat = np.asarray(sur.lat_comp, np.float32)
        lat_stdev = np.asarray(directions.latent_stdev(w_stdev, jnp.asarray(lat)), np.float64)
        ds = DirectionSet(path="(in memory)", method=label, lat_comp=lat, lat_stdev=lat_stdev)
        results, preds = evaluate.evaluate_directions(
            cfg, gen_vars, predict_fn, names, [ds], eval_cfg,
            checkpoint=resume.child(checkpoint, f"walks_{i}"))
        reach = results["reach"][label]
        values[label] = bootstrap.seed_values(
            preds[label], results["distances"], c.num_assign_seeds, reach["preds"],
            reach["distances"], reach["index"], eval_cfg.threshold, eval_cfg.target_shift)
        lo, hi = surrogate_interval(sur, c.bootstrap_draws, c.seed)
        points.append({"label": label, "target_sparsity": target, "gamma": gamma,
                       "zero_fraction": float(np.mean(loadings == 0.0)),
                       "converged": bool(r.converged), "cos_to_converged": agreement,
                       "surrogate": {"value": _nan_none(float(sur.efficiency)),
                                     "low": _nan_none(lo), "high": _nan_none(hi)},
                       "surrogate_s_d": float(sur.s_d),
                       "surrogate_attr": [_nan_none(float(v)) for v in sur.eff_attr],
                       "table1": {k: results["methods"][label].get(k) for k in TABLE1_KEYS}})
        if checkpoint is not None:
            checkpoint.save(f"point_{i}", values[label]._asdict(), points[-1])
        log(f"{label}: zeros {points[-1]['zero_fraction']:.3f}, surrogate "
            f"{float(sur.efficiency):.4f}")
    seconds["sweep"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = [pt["label"] for pt in points]
    # Sparsest over densest: > 1 (interval excluding 1) means sparsity helps.
    ratio_name = f"{labels[-1]}/{labels[0]}"
    intervals = bootstrap.bootstrap([values], num_draws=c.bootstrap_draws, seed=c.seed,
                                    ratios=[(labels[-1], labels[0])], order=labels)
    for pt in points:
        m = intervals["methods"][pt["label"]]
        for k in ("efficiency", "S_e", "S_d"):
            pt[k] = {q: _nan_none(m[k][q]) for q in ("value", "low", "high")}
    ratio = intervals["ratios"].get(ratio_name)
    ratio = None if ratio is None else {"name": ratio_name, **{
        k: {q: _nan_none(ratio[k][q]) for q in ("value", "low", "high")} | {
            "excludes_1": ratio[k]["excludes_1"]} for k in ("efficiency", "S_e", "S_d")}}
    seconds["bootstrap"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    checks = []
    for i, (target, gamma) in enumerate(tqdm(list(zip(c.grad_sparsities, grad_gammas,
                                                      strict=True)),
                                             desc="gradient check", disable=not progress)):
        checks.append(_kept(checkpoint, f"gradient_check_{i}", lambda g=gamma, t=target: {
            **gradient_check(g, args, spec, c.fd_step), "target_sparsity": t}))
    seconds["gradient_check"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_start

    result = {"generator": gen_path, "classifier": cls_path, "config": dataclasses.asdict(c),
              "feature_dim": p, "layers": list(layers), "d_max": d_max,
              "d_max_source": d_max_source, "surrogate_distances": list(grid),
              "attributes": names, "points": points, "ratio": ratio,
              "gradient_check": checks, "seconds": {k: round(v, 1) for k, v in seconds.items()},
              "devices": jax.device_count(), "platform": jax.devices()[0].platform}
    md = markdown(result)
    fig = plots.sparsity_figure(
        np.array([pt["zero_fraction"] for pt in points]),
        {"efficiency (distance to effect)": _triples(points, "efficiency"),
         "surrogate efficiency": _triples(points, "surrogate")},
        _triples(points, "S_d"),
        title=f"SCA on pooled features, k = {c.k}, seed {c.seed}: 95% bootstrap intervals over "
              f"{c.num_eval_seeds} / {c.surrogate_eval_seeds} evaluation seeds")
    os.makedirs(out, exist_ok=True)
    atomic.save_figure(os.path.join(out, "sparsity_sweep.png"), fig)
    atomic.write_text(os.path.join(out, "sweep.md"), md)
    atomic.write_json(os.path.join(out, "sweep.json"), result)
    log(md)
    log(f"done in {seconds['total']:.0f} s; results in {out}")
    return result


def _kept(checkpoint: resume.RunFolder | None, part: str,
          compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The JSON of a part a resumed run finished; else `compute()`, saved as that part."""
    if checkpoint is not None and checkpoint.has(part):
        return checkpoint.load(part)[1]
    stopping.check()
    meta = compute()
    if checkpoint is not None:
        checkpoint.save(part, meta=meta)
    return meta


def _triples(points: list[dict[str, Any]], key: str) -> np.ndarray:
    """[G, 3] (value, low, high) of `key` over the sweep points (NaN for missing)."""
    return np.array([[math.nan if pt[key][q] is None else pt[key][q]
                      for q in ("value", "low", "high")] for pt in points], np.float64)


def gradient_check(gamma: float, args: tuple, spec: SurrogateSpec, fd_step: float,
                   tolerance: float = 0.05, halvings: int = 3) -> dict[str, Any]:
    """jax.grad of the surrogate at gamma next to a central difference (f(g + h) - f(g - h)) / 2h.

    The surrogate is only piecewise smooth in gamma: each loading that crosses zero (enters or
    leaves the soft threshold's support) is a kink. h starts at fd_step x gamma and is divided
    by 4 (at most `halvings` times) while some loading's zero pattern differs between gamma - h
    and gamma + h, so the difference quotient is taken on one smooth piece when possible; the
    count of such loadings at the h used is reported, and explains a disagreement.

    Args:
      gamma: where to differentiate. args: the surrogate's array arguments after gamma.
      spec: `SurrogateSpec`. fd_step: first h relative to gamma. tolerance: relative agreement.
    Returns:
      JSON-ready dict: gamma, h, value, grad, finite_difference, relative_difference
      (|grad - fd| / max(|grad|, |fd|)), crossings, zero_fraction, agree, note.
    """
    x_fit = args[0]
    g = jnp.asarray(gamma, x_fit.dtype)
    value, grad = jax.device_get(efficiency_and_grad(g, *args, spec=spec))
    grad = float(grad)

    def zeros(x):
        r = _loadings(jnp.asarray(x, x_fit.dtype), x_fit, k=spec.k, n_sweeps=spec.n_sweeps,
                      varimax_steps=spec.varimax_steps)
        return np.asarray(r.loadings) == 0.0

    z_mid = zeros(gamma)
    h = fd_step * gamma
    for attempt in range(halvings + 1):
        crossings = int(np.sum(zeros(gamma - h) != zeros(gamma + h)))
        if crossings == 0 or attempt == halvings:
            break
        h /= 4.0
    f_hi = float(surrogate_jit(jnp.asarray(gamma + h, x_fit.dtype), *args, spec=spec).efficiency)
    f_lo = float(surrogate_jit(jnp.asarray(gamma - h, x_fit.dtype), *args, spec=spec).efficiency)
    fd = (f_hi - f_lo) / (2 * h)
    # One float32 rounding of f, divided by the step: what the difference quotient can resolve.
    resolution = float(jnp.finfo(x_fit.dtype).eps) * max(abs(f_hi), abs(f_lo)) / h
    scale = max(abs(grad), abs(fd))
    rel = abs(grad - fd) / scale if scale > 0 else 0.0
    agree = rel <= tolerance
    note = ""
    if scale == 0:
        note = "gamma is at or above the L1 norm of the loadings: nothing is shrunk, both are 0"
    elif not agree:
        why = []
        if crossings:
            why.append(f"{crossings} loading(s) cross zero between gamma - h and gamma + h even "
                       "at the smallest step (a kink of the soft threshold: the difference "
                       "quotient averages two slopes)")
        if abs(grad - fd) < 10 * resolution:
            why.append(f"|grad - fd| = {abs(grad - fd):.2g} is within 10x the float32 "
                       f"resolution of the difference quotient ({resolution:.2g})")
        note = "; ".join(why) or "no kink in the step and above float32 resolution: unexplained"
    return {"gamma": float(gamma), "h": float(h), "value": float(value), "grad": grad,
            "finite_difference": float(fd), "relative_difference": float(rel),
            "crossings": crossings, "fd_resolution": float(resolution),
            "zero_fraction": float(np.mean(z_mid)), "agree": bool(agree),
            "note": note}
