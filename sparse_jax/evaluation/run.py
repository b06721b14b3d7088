"""Evaluation of direction files: walks -> Table 1 (S_e, S_d, d50) and Figs. 3-6.

`run_evaluation` is the entry point of `bin/evaluate` (and of the main job); `run_render` is that of
`bin/render`. Both load models and direction files, call `sparse_jax.walks` and
`sparse_jax.metrics`, and write their outputs atomically through `sparse_jax.io`.
The protocol is defined in docs/metrics.md.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from typing import Any, Callable, NamedTuple, Sequence

import jax
import numpy as np

from sparse_jax.core import atomic, resume, sharding, stopping
from sparse_jax.core import seeds as seed_streams
from sparse_jax.evaluation import device_metrics, efficiency, metrics, walks
from sparse_jax.io import direction_files
from sparse_jax.io.direction_files import DirectionSet
from sparse_jax.models import generators
from sparse_jax.plots import figures as plots

logger = logging.getLogger(__name__)

# Streams of the --seed (sparse_jax.core.seeds): walks (seed index i is the image --seeds i of
# every binary) and the latent sample that sets the default d_max.
WALK_STREAM = seed_streams.IMAGE_STREAM
DMAX_STREAM = seed_streams.D_MAX_STREAM


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Every number of the protocol (docs/metrics.md); each is a flag of bin/evaluate."""

    seed: int = 0
    num_assign_seeds: int = 100
    num_eval_seeds: int = 500
    num_distances: int = 11
    d_max: float | None = None
    d_max_sigmas: float = 3.0
    d_max_samples: int = 10000
    num_directions: int | None = 10
    threshold: float = 0.5
    target: float = 0.5
    # The distance-to-effect walk (docs/metrics.md, "Efficiency"): the evaluation seeds along
    # each attribute's assigned direction, on 0 plus reach_points log-spaced distances from
    # reach_min to reach_max x d_max; 0 points skips it.
    target_shift: float = 0.5
    reach_min: float = 1.0 / 32.0
    reach_max: float = 4.0
    reach_points: int = 22
    # A classifier whose input resolution or channel count differs from the generator's output
    # is refused unless this is set (the classifier then resizes / converts channels).
    allow_classifier_mismatch: bool = False
    layer_range: tuple[int, int] | None = None
    truncation_psi: float = 1.0
    chunk: int | None = None  # None: walks.default_chunk() (64 on CPU, 256 elsewhere)
    figures: bool = True
    grid_directions: int | None = None  # None: every direction of the file
    grid_columns: int = 9
    grid_seeds: int = 3
    save_predictions: bool = True

    def __post_init__(self):
        checks = [
            (self.num_assign_seeds >= 1, "num_assign_seeds must be >= 1"),
            (self.num_eval_seeds >= 1, "num_eval_seeds must be >= 1"),
            (self.num_distances >= 2, "num_distances must be >= 2 (0 and d_max)"),
            (self.d_max is None or self.d_max > 0, "d_max must be > 0"),
            (self.d_max_sigmas > 0, "d_max_sigmas must be > 0"),
            (self.d_max_samples >= 2, "d_max_samples must be >= 2"),
            (self.num_directions is None or self.num_directions >= 1,
             "num_directions must be >= 1 (or None for all)"),
            (0.0 < self.threshold < 1.0, "threshold must be in (0, 1)"),
            (0.0 < self.target <= 1.0, "target must be in (0, 1]"),
            (0.0 < self.target_shift < 1.0, "target_shift must be in (0, 1)"),
            (0.0 < self.reach_min < self.reach_max, "need 0 < reach_min < reach_max"),
            (self.reach_points == 0 or self.reach_points >= 2,
             "reach_points must be 0 (no distance-to-effect walk) or >= 2"),
            (self.chunk is None or self.chunk >= 1, "chunk must be >= 1 (or None: automatic)"),
            (self.grid_directions is None or self.grid_directions >= 1,
             "grid_directions must be >= 1 (or None for all)"),
            (self.grid_seeds >= 1, "grid_seeds must be >= 1"),
            (self.grid_columns >= 2, "grid_columns must be >= 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"EvalConfig: {message}")


class Evaluation(NamedTuple):
    """Output of `run_evaluation`: the Table 1 numbers, their markdown and the files written."""

    results: dict[str, Any]
    markdown: str
    files: list[str]


def stream_key(seed: int, stream: int) -> jax.Array:
    """fold_in(key(seed), stream), with explicit transfers (works under transfer_guard)."""
    return seed_streams.stream_key(seed, stream)


def walk_key(seed: int) -> jax.Array:
    """The key of the walk seeds: seed index i (in evaluate and render alike) is the same z."""
    return stream_key(seed, WALK_STREAM)


def _unique_methods(sets: Sequence[DirectionSet]) -> list[DirectionSet]:
    seen: dict[str, int] = {}
    out = []
    for s in sets:
        name = s.method
        if name in seen:
            name = f"{s.method} ({os.path.basename(s.path)})"
        seen[s.method] = seen.get(s.method, 0) + 1
        out.append(s._replace(method=name))
    return out


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "method"


def load_predictor(classifier: str | None, gen_cfg: generators.GeneratorConfig | None = None,
                   generator: str | None = None, allow_mismatch: bool = False
                   ) -> tuple[Callable, list[str]]:
    """The classifier as a jit-able predict_fn (a `Partial` holding its params) and its names.

    With gen_cfg, refuses a classifier whose input does not match the generator's images
    (`check_classifier_fits`) before loading its weights.
    """
    from sparse_jax.io import model_dirs
    from sparse_jax.models import classifier as clf

    if gen_cfg is not None:
        cls_path = classifier or model_dirs.default_classifier_path()
        check_classifier_fits(gen_cfg, model_dirs.load_classifier_config(cls_path),
                              generator or "(embedded default)", cls_path, allow_mismatch)
    cfg_c, params_c = model_dirs.load_classifier(classifier)
    predict = jax.tree_util.Partial(functools.partial(clf.predict_probs, cfg_c), params_c)
    return predict, list(cfg_c.attribute_names)


def load_generator(generator: str | None) -> tuple[generators.GeneratorConfig, Any]:
    """(cfg, variables) from a generator directory, or the embedded default when None."""
    from sparse_jax.io import model_dirs

    return model_dirs.load_generator(
        generator if generator is not None else model_dirs.default_generator_path())


def default_d_max(cfg: generators.GeneratorConfig, variables: Any, config: EvalConfig
                  ) -> tuple[float, str]:
    """(d_max, a sentence saying where it came from)."""
    if config.d_max is not None:
        return float(config.d_max), "set by --d_max"
    key = stream_key(config.seed, DMAX_STREAM)
    std = walks.w_pca_stdev(cfg, variables, key, config.d_max_samples, config.truncation_psi)
    if not std > 0:
        raise ValueError("d_max: w has zero variance along its first principal component; "
                         "set --d_max explicitly")
    return config.d_max_sigmas * std, (
        f"{config.d_max_sigmas:g} x {std:.4g}, the std of w along the first PCA component of W "
        f"from {config.d_max_samples} samples")


def evaluate_directions(cfg: generators.GeneratorConfig, variables: Any, predict_fn: Callable,
                        attribute_names: Sequence[str], direction_sets: Sequence[DirectionSet],
                        config: EvalConfig = EvalConfig(),
                        devices: Sequence[jax.Device] | None = None, progress: bool = False,
                        checkpoint: resume.RunFolder | None = None
                        ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Walks every method's directions and computes Table 1 (no file output).

    Args:
      cfg, variables: the generator.
      predict_fn: images [B, C, H, W] in [-1, 1] -> [B, A] in [0, 1] (see `walks.run_walks`).
      attribute_names: A names.
      direction_sets: one per method, from `load_directions`.
      config: the protocol's numbers.
      devices: devices to shard the walks over (default all).
      progress: progress bars (with time estimates) over each method's walks.
      checkpoint: the run folder (`core.resume`) where each walk's finished predictions are
        saved and read back on a resumed run; None computes everything.

    Returns:
      results: JSON-ready dict (Table 1 numbers, per-attribute details, settings);
      preds: method -> float32 [S_assign + S_eval, D, 2, T, A] (assignment seeds first).
    """
    if not direction_sets:
        raise ValueError("evaluate: no direction files given")
    d_max, source = default_d_max(cfg, variables, config)
    distances = np.linspace(0.0, d_max, config.num_distances)
    n_a, n_e = config.num_assign_seeds, config.num_eval_seeds
    seeds = np.arange(n_a + n_e, dtype=np.int32)
    results: dict[str, Any] = {
        "d_max": d_max, "d_max_source": source, "distances": distances.tolist(),
        "attributes": list(attribute_names), "num_assign_seeds": n_a, "num_eval_seeds": n_e,
        "assign_seed_indices": [0, n_a], "eval_seed_indices": [n_a, n_a + n_e],
        "config": dataclasses.asdict(config), "generator": cfg.to_dict(), "methods": {},
        "direction_files": {},
    }
    all_preds = {}
    reach_all: dict[str, dict[str, np.ndarray]] = {}
    for ds in _unique_methods(direction_sets):
        logger.info("walking %s: %d seeds x %d directions x 2 signs x %d distances", ds.method,
                    seeds.size, ds.lat_comp.shape[0], distances.size)
        out = walks.run_walks(cfg, variables, walk_key(config.seed), seeds, ds.lat_comp,
                              distances, predict_fn=predict_fn, layer_range=config.layer_range,
                              truncation_psi=config.truncation_psi, chunk=config.chunk,
                              devices=devices, progress=progress, desc=f"{ds.method}: walks",
                              rows=resume.rows(checkpoint, f"walks_{_file_stem(ds.method)}"))
        if out.preds.shape[-1] != len(attribute_names):
            raise ValueError(f"predict_fn gives {out.preds.shape[-1]} attributes but "
                             f"{len(attribute_names)} attribute names were given")
        all_preds[ds.method] = out.preds
        summary, reach = _method_numbers(cfg, variables, predict_fn, ds, out.preds, n_a, seeds,
                                         distances, attribute_names, config, devices, progress,
                                         checkpoint)
        results["methods"][ds.method] = summary
        reach_all[ds.method] = reach
        results["direction_files"][ds.method] = ds.path
    results["reach"] = reach_all
    return results, all_preds


def reach_walk_plan(direction: np.ndarray, sign: np.ndarray) -> tuple[list[tuple[int, int]],
                                                                     np.ndarray]:
    """The distinct assigned (direction, sign index) pairs and each attribute's pair.

    Args:
      direction, sign: int [A] from the assignment (-1: unassigned).

    Returns:
      (pairs [(k, g)], index int [A] into pairs, -1 where unassigned).
    """
    pairs = sorted({(int(k), int(g)) for k, g in zip(direction, sign, strict=True) if k >= 0})
    index = np.array([pairs.index((int(k), int(g))) if k >= 0 else -1
                      for k, g in zip(direction, sign, strict=True)], np.int32)
    return pairs, index


def _method_numbers(cfg, variables, predict_fn, ds: DirectionSet, preds: np.ndarray, n_a: int,
                    seeds: np.ndarray, distances: np.ndarray, attribute_names, config: EvalConfig,
                    devices, progress: bool = False, checkpoint: resume.RunFolder | None = None
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Table 1's numbers of one method, computed on the device (`device_metrics`).

    The assignment comes first (it decides which directions the distance-to-effect walk follows);
    then that walk runs on the evaluation seeds, and every number is one jitted call on the
    predictions.

    Returns:
      (summary dict as `metrics.summary_from_numbers`, {"preds" [S_eval, U, T_r, A],
      "distances" [T_r], "index" [A]} of the reach walk; empty arrays when it is skipped).
    """
    pa, pe = jax.device_put((preds[:n_a], preds[n_a:]))
    # Scalars go over explicitly too: the evaluation runs under transfer_guard("disallow").
    threshold, target, shift = jax.device_put(
        (np.float32(config.threshold), np.float32(config.target), np.float32(config.target_shift)))
    direction, sign, _, _ = jax.device_get(device_metrics.assign_directions(pa, threshold))
    pairs, index = reach_walk_plan(np.asarray(direction), np.asarray(sign))
    num_a = preds.shape[-1]
    with_reach = bool(pairs) and config.reach_points > 0
    if with_reach:
        reach_t = efficiency.reach_grid(float(distances[-1]), config.reach_min, config.reach_max,
                                        config.reach_points)
        signed = np.stack([ds.lat_comp[k] * walks.SIGNS[g] for k, g in pairs])
        logger.info("distance-to-effect walk of %s: %d seeds x %d directions x %d distances",
                    ds.method, seeds.size - n_a, len(pairs), reach_t.size)
        out = walks.run_walks(cfg, variables, walk_key(config.seed), seeds[n_a:], signed,
                              reach_t, predict_fn=predict_fn, signs=(1.0,),
                              layer_range=config.layer_range,
                              truncation_psi=config.truncation_psi, chunk=config.chunk,
                              devices=devices, progress=progress,
                              desc=f"{ds.method}: distance-to-effect walks",
                              rows=resume.rows(checkpoint, f"reach_{_file_stem(ds.method)}"))
        reach_preds = out.preds[:, :, 0]                        # [S_eval, U, T_r, A]
    else:
        reach_t = np.zeros(2)
        reach_preds = np.zeros((preds.shape[0] - n_a, 1, 2, num_a), np.float32)
    numbers = device_metrics.table_numbers(
        pa, pe, jax.device_put(np.asarray(distances, np.float32)), jax.device_put(reach_preds),
        jax.device_put(reach_t.astype(np.float32)), jax.device_put(index), threshold, target,
        shift, with_reach=with_reach)
    numbers = jax.device_get(numbers)._asdict()
    summary = metrics.summary_from_numbers(numbers, distances, attribute_names, ds.lat_stdev,
                                           shift=config.target_shift,
                                           reach_distances=reach_t if with_reach else None)
    return summary, {"preds": reach_preds if with_reach else np.zeros((0,), np.float32),
                     "distances": reach_t if with_reach else np.zeros((0,)), "index": index}


def check_classifier_fits(gen_cfg: generators.GeneratorConfig, cls_cfg: Any, generator: str,
                          classifier: str, allow_mismatch: bool = False) -> None:
    """Refuses a classifier that does not take the generator's images as they are.

    The classifier would silently resize and average or repeat channels (e.g. score RGB faces
    with the grey MNIST digit classifier): Table 1 would be numbers without meaning.

    Raises:
      ClassifierMismatchError naming both directories, unless allow_mismatch.
    """
    res_g, ch_g = int(gen_cfg.img_resolution), int(gen_cfg.img_channels)
    res_c, ch_c = int(cls_cfg.resolution), int(cls_cfg.in_channels)
    if (res_g, ch_g) == (res_c, ch_c) or allow_mismatch:
        return
    raise ClassifierMismatchError(
        f"classifier {classifier} takes {res_c}x{res_c} images with {ch_c} channel(s) but "
        f"generator {generator} makes {res_g}x{res_g} with {ch_g}: give a classifier trained on "
        f"this generator's images, or pass --allow_classifier_mismatch to resize and convert "
        f"channels anyway")


class ClassifierMismatchError(ValueError):
    """The classifier's input resolution or channels differ from the generator's output."""


def _curve_arrays(summary: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    def arr(key):
        return np.array([[np.nan if x is None else x for x in r[key]]
                         for r in summary["attributes"].values()], np.float64)

    return arr("curve_mean"), arr("curve_std")


def _a_matrix(summary: dict[str, Any]) -> np.ndarray:
    return np.array([[np.nan if x is None else x for x in row] for row in summary["A"]])


def write_figures(cfg: generators.GeneratorConfig, variables: Any, results: dict[str, Any],
                  preds: dict[str, np.ndarray], direction_sets: Sequence[DirectionSet],
                  out_dir: str, config: EvalConfig,
                  devices: Sequence[jax.Device] | None = None,
                  checkpoint: resume.RunFolder | None = None) -> list[str]:
    """Figs. 3-6 for an evaluation; returns the paths written.

    With a checkpoint, a walk figure (Figs. 3, 4) that a resumed run already wrote is kept.
    """
    files = []

    def finished(path: str) -> bool:
        stopping.check()  # between figures: each one kept is not drawn again
        name = f"figure_{os.path.basename(path)}"
        if checkpoint is not None and checkpoint.has(name) and os.path.isfile(path):
            files.append(path)
            return True
        return False

    def save(path: str, fig: Any) -> None:
        atomic.save_figure(path, fig)
        files.append(path)
        if checkpoint is not None:
            checkpoint.save(f"figure_{os.path.basename(path)}")

    names = results["attributes"]
    distances = np.asarray(results["distances"])
    d_max = results["d_max"]
    methods = results["methods"]
    n_a = config.num_assign_seeds
    key = walk_key(config.seed)
    sets = dict(zip(methods, _unique_methods(direction_sets), strict=True))

    # Fig. 3: every direction of each method (up to grid_directions) on the first grid_seeds
    # evaluation seeds, -d_max .. d_max.
    cols = np.linspace(-d_max, d_max, config.grid_columns)
    fig3_seeds = [n_a + i for i in range(min(config.grid_seeds, config.num_eval_seeds))]
    for method, ds in sets.items():
        path = os.path.join(out_dir, f"fig3_walks_{_file_stem(method)}.png")
        if finished(path):
            continue
        k = ds.lat_comp.shape[0]
        k = k if config.grid_directions is None else min(config.grid_directions, k)
        out = walks.run_walks(cfg, variables, key, fig3_seeds, ds.lat_comp[:k], cols,
                              signs=(1.0,), layer_range=config.layer_range, return_images=True,
                              truncation_psi=config.truncation_psi, chunk=config.chunk,
                              devices=devices)
        grid = np.moveaxis(np.asarray(out.images)[:, :, 0], 0, 1)  # [D, S, T, C, H, W]
        fig = plots.seed_walk_grid(grid, [f"d{i}" for i in range(k)],
                                   [f"seed {s}" for s in fig3_seeds],
                                   [f"{c:+.2g}" for c in cols],
                                   title=f"{method}: W distance along each direction")
        save(path, fig)

    # Fig. 4, one file per attribute: its assigned direction in every method (rows), walked from
    # 0 to d_max on the first grid_seeds evaluation seeds that start negative for it (the same
    # seeds for every method: a seed's unedited image is the same in all of them).
    first = next(iter(preds.values()))
    for a, name in enumerate(names):
        negative = np.nonzero(first[n_a:, 0, 0, 0, a] < config.threshold)[0]
        seeds_a = [n_a + int(i) for i in negative[:config.grid_seeds]]
        path = os.path.join(out_dir, f"fig4_walks_{_file_stem(name)}.png")
        if not seeds_a or finished(path):
            continue
        rows, labels = [], []
        for method, ds in sets.items():
            r = methods[method]["attributes"][name]
            if r["direction"] is None:
                rows.append(None)
                labels.append(f"{method} (n/a)")
                continue
            d = ds.lat_comp[r["direction"]] * r["sign"]
            out = walks.run_walks(cfg, variables, key, seeds_a, d[None], distances,
                                  signs=(1.0,), layer_range=config.layer_range,
                                  return_images=True, truncation_psi=config.truncation_psi,
                                  chunk=config.chunk, devices=devices)
            rows.append(np.asarray(out.images)[:, 0, 0])  # [S, T, C, H, W]
            labels.append(f"{method} (d{r['direction']})")
        done = [r for r in rows if r is not None]
        if not done:
            continue
        blank = np.zeros_like(done[0])  # mid-grey tiles mark an n/a row
        grid = np.stack([blank if r is None else r for r in rows])
        fig = plots.seed_walk_grid(grid, labels, [f"seed {s}" for s in seeds_a],
                                   [f"{t:.2g}" for t in distances],
                                   title=f"{name}: the assigned direction of each method "
                                         "(W distance)")
        save(path, fig)

    # Fig. 5: mean +- std of p along each attribute's direction over its negative seeds.
    curves = {m: _curve_arrays(s) for m, s in methods.items()}
    fig = plots.curves_figure(distances, curves, names,
                              title=f"p along the assigned direction ({config.num_eval_seeds} "
                                    "evaluation seeds, those starting negative)")
    path = os.path.join(out_dir, "fig5_curves.png")
    atomic.save_figure(path, fig)
    files.append(path)

    # Fig. 6: A as heat maps.
    fig = plots.heatmaps_figure({m: _a_matrix(s) for m, s in methods.items()}, names,
                                {m: s["S_d"] for m, s in methods.items()})
    path = os.path.join(out_dir, "fig6_disentanglement.png")
    atomic.save_figure(path, fig)
    files.append(path)
    return files


def run_evaluation(direction_paths: Sequence[str], out_dir: str, generator: str | None = None,
                   classifier: str | None = None, config: EvalConfig = EvalConfig(),
                   devices: Sequence[jax.Device] | None = None,
                   progress: bool = False,
                   checkpoint: resume.RunFolder | None = None) -> Evaluation:
    """Evaluates direction files and writes Table 1 and the figures.

    Args:
      direction_paths: `directions_<method>.npz` files, one per method (column order).
      out_dir: folder for table1.md, table1.json, fig*.png and preds_<method>.npz.
      generator: generator directory; None -> the embedded MNIST default.
      classifier: classifier directory; None -> the embedded MNIST classifier.
      config: the protocol's numbers.
      devices: devices to shard the walks over (default all).
      progress: progress bars with time estimates over the walks.
      checkpoint: the run folder (`core.resume`) that keeps finished walks and figures, so an
        interrupted evaluation resumes; None computes everything.

    Returns:
      An `Evaluation` (results dict as in table1.json, the markdown, the files written).
    """
    cfg, variables = load_generator(generator)
    predict_fn, names = load_predictor(classifier, cfg, generator,
                                       config.allow_classifier_mismatch)
    sets = [direction_files.read_directions(p, cfg.w_dim, config.num_directions)
            for p in direction_paths]
    results, preds = evaluate_directions(cfg, variables, predict_fn, names, sets, config, devices,
                                         progress, checkpoint)
    results["generator_path"] = generator or "embedded default"
    results["classifier_path"] = classifier or "embedded default"
    reach = results.pop("reach")
    markdown = metrics.table1_markdown(results)
    files = [os.path.join(out_dir, "table1.md"), os.path.join(out_dir, "table1.json")]
    atomic.write_text(files[0], markdown)
    atomic.write_json(files[1], results)
    if config.save_predictions:
        for method, p in preds.items():
            path = os.path.join(out_dir, f"preds_{_file_stem(method)}.npz")
            r = reach[method]
            atomic.save_npz(path, preds=p.astype(np.float32), distances=np.asarray(
                results["distances"]), num_assign_seeds=config.num_assign_seeds,
                attributes=np.asarray(names), reach_preds=r["preds"].astype(np.float32),
                reach_distances=r["distances"], reach_index=r["index"])
            files.append(path)
    if config.figures:
        files += write_figures(cfg, variables, results, preds, sets, out_dir, config, devices,
                               checkpoint)
    sharding.sync("evaluation written")  # process 0 wrote (core.atomic); the others wait
    return Evaluation(results=results, markdown=markdown, files=files)


def render_distances(direction_set: DirectionSet, distances: Sequence[float] | None,
                     sigmas: Sequence[float] | None) -> tuple[np.ndarray, list[str]]:
    """[D, T] W distances and column labels from --distances (absolute) or --sigmas."""
    if (distances is None) == (sigmas is None):
        raise ValueError("render: pass exactly one of --distances and --sigmas")
    d = direction_set.lat_comp.shape[0]
    if distances is not None:
        t = np.asarray(distances, np.float64)
        return np.broadcast_to(t, (d, t.size)), [f"{x:+.3g}" for x in t]
    s = np.asarray(sigmas, np.float64)
    if not np.all(np.isfinite(direction_set.lat_stdev)) or np.any(direction_set.lat_stdev <= 0):
        raise ValueError(f"{direction_set.path}: --sigmas needs positive lat_stdev values; use "
                         f"--distances instead")
    return direction_set.lat_stdev[:, None] * s[None, :], [f"{x:+.3g}σ" for x in s]


def run_render(direction_path: str, out_path: str, generator: str | None = None,
               seeds: Sequence[int] = (0,), num_directions: int = 8,
               distances: Sequence[float] | None = None, sigmas: Sequence[float] | None = None,
               layer_range: tuple[int, int] | None = None, seed: int = 0,
               truncation_psi: float = 1.0, chunk: int | None = None,
               devices: Sequence[jax.Device] | None = None) -> str:
    """Renders a walk grid (rows: seed x direction, columns: distances) to a PNG.

    Args:
      direction_path: a direction file.
      out_path: the PNG to write.
      generator: generator directory; None -> the embedded default.
      seeds: seed indices (the same indices as bin/evaluate with the same --seed).
      num_directions: the first n directions of the file.
      distances: signed absolute W distances (columns), or
      sigmas: signed distances in units of each direction's lat_stdev.
      layer_range: edit only ws slots [start, end).
      seed: the --seed the walk key comes from.
      truncation_psi, chunk, devices: as in `walks.run_walks`.

    Returns:
      out_path.
    """
    if not seeds:
        raise ValueError("render: --seeds is empty")
    cfg, variables = load_generator(generator)
    ds = direction_files.read_directions(direction_path, cfg.w_dim, num_directions)
    dist, col_labels = render_distances(ds, distances, sigmas)
    out = walks.run_walks(cfg, variables, walk_key(seed), np.asarray(seeds, np.int64),
                          ds.lat_comp, dist, signs=(1.0,), layer_range=layer_range,
                          truncation_psi=truncation_psi, chunk=chunk, return_images=True,
                          devices=devices)
    images = out.images[:, :, 0]                              # [S, D, T, C, H, W]
    k = images.shape[1]
    grid = images.reshape((-1,) + images.shape[2:])
    rows = [f"seed {s} d{i}" if len(seeds) > 1 else f"d{i}" for s in seeds for i in range(k)]
    title = f"{ds.method}" + (f", seed {seeds[0]}" if len(seeds) == 1 else "")
    if layer_range is not None:
        title += f", ws [{layer_range[0]}, {layer_range[1]})"
    atomic.save_figure(out_path, plots.walk_grid(grid, rows, col_labels, title=title))
    return out_path
