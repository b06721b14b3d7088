r"""Evaluates direction files: Table 1 (S_e, S_d, median d50) and Figs. 3-6.

examples (the embedded MNIST generator and classifier):
  sparse-jax-evaluate --directions runs/discover/directions_pca-w.npz \
      runs/discover/directions_sca.npz --out runs/eval
  sparse-jax-evaluate --preset paper --directions runs/discover/directions_*.npz --out runs/eval
Every number of the protocol (docs/metrics.md) is a flag; --preset sets the sizes (seeds,
distances, directions) shared with discover and run_paper, and individual flags override it.
Rerunning an interrupted command resumes it from the walks it finished (--batch may change).
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-evaluate"
HELP = {
    "seed": "PRNG seed of the walk seeds and of the d_max sample",
    "num_assign_seeds": "seeds that assign directions to attributes",
    "num_eval_seeds": "disjoint seeds that are scored",
    "num_distances": "grid points T from 0 to d_max",
    "d_max": "walk length in W units (default: d_max_sigmas x the std of w along the first PCA "
             "component of W)",
    "d_max_sigmas": "default d_max in PCA-W std units",
    "d_max_samples": "latents for the PCA-W std",
    "num_directions": "use the first n directions of each file (all: every one)",
    "threshold": "a seed starts negative if p_a(0) < this",
    "target": "d50 is where the mean p_a first reaches this",
    "layer_range": "start,end: edit only ws slots [start, end) (default: all)",
    "truncation_psi": common.TRUNCATION_HELP + "; applied before the edit",
    "chunk": "edits per compiled call, memory scales with it (default: 64 on CPU, 256 on "
             "accelerators)",
    "figures": "write Figs. 3-6 (--nofigures: none)",
    "target_shift": "distance-to-effect: the rise of p_a a seed must reach (the headline "
                    "efficiency is target_shift / that distance)",
    "reach_min": "distance-to-effect walk: first distance, in units of d_max",
    "reach_max": "distance-to-effect walk: last distance, in units of d_max",
    "reach_points": "distance-to-effect walk: log-spaced distances (0: skip that walk)",
    "allow_classifier_mismatch": "score a generator whose images the classifier was not trained "
                                 "on (resized, channels averaged or repeated) instead of refusing",
    "grid_directions": "rows of the Fig. 3 grids (all: every direction)",
    "grid_columns": "distances (columns) of the Fig. 3 grids",
    "grid_seeds": "evaluation seeds shown side by side in Figs. 3 and 4",
    "save_predictions": "write preds_<method>.npz (--nosave_predictions: none)",
}
RENAME = {"chunk": "batch"}
# PaperSizes field -> EvalConfig field: what a --preset sets.
PRESET_FIELDS = {"num_assign_seeds": "num_assign_seeds", "num_eval_seeds": "num_eval_seeds",
                 "num_distances": "num_distances", "d_max_samples": "d_max_samples",
                 "k": "num_directions"}
OUTPUTS = ("table1.md", "table1.json", "preds_*.npz", "fig*.png", "run.json")


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.evaluation import run as evaluate

    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    common.add_classifier(p)
    p.add_argument("--directions", nargs="+", default=[], metavar="NPZ",
                   help="direction files, one per method (Table 1 column order); "
                        "comma-separated or space-separated")
    p.add_argument("more_directions", nargs="*", metavar="NPZ", help=argparse.SUPPRESS)
    common.add_out(p, "output folder (table1.md, table1.json, fig*.png, preds_*.npz)")
    common.add_preset(p)
    p.set_defaults(_fields=common.add_fields(
        p, evaluate.EvalConfig, help=HELP, rename=RENAME,
        types_={"truncation_psi": common.psi_type}, aliases={"truncation_psi": ["truncation"]},
        preset_fields=PRESET_FIELDS.values()))
    common.add_common(p, progress=True)
    return p


def config(ns: argparse.Namespace):
    """The run's EvalConfig: the dataclass's defaults, then --preset, then the given flags."""
    from sparse_jax.evaluation import run as evaluate

    return common.preset_config(ns, evaluate.EvalConfig, PRESET_FIELDS, "truncation_psi",
                                "evaluate")


def direction_paths(ns: argparse.Namespace) -> list[str]:
    paths = [q.strip() for p in list(ns.directions) + list(ns.more_directions)
             for q in p.split(",") if q.strip()]
    if not paths:
        raise common.UserError("--directions: give at least one direction file")
    return paths


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.evaluation import run as evaluate

    paths = direction_paths(ns)
    for path in paths:
        common.check_direction_file(path, "--directions")
    common.check_input_dir(ns.generator, "--generator")
    common.check_input_dir(ns.classifier, "--classifier")
    cfg = config(ns)
    run = common.open_run(ns.out, ns.overwrite, OUTPUTS, "evaluate", settings(ns, cfg, paths))
    if run.finished:
        return 0
    result = evaluate.run_evaluation(paths, ns.out, generator=ns.generator,
                                     classifier=ns.classifier, config=cfg,
                                     progress=common.progress_enabled(ns), checkpoint=run)
    run.finish(OUTPUTS)
    print(result.markdown)
    print("wrote " + ", ".join(result.files))
    return 0


def settings(ns: argparse.Namespace, cfg, paths: Sequence[str]) -> dict:
    """What identifies the run in its folder (`core.resume`): the config and every input."""
    import os

    from sparse_jax.core import resume

    return common.run_settings(
        dataclasses.asdict(cfg), ns.generator, ns.classifier,
        directions=[{"name": os.path.basename(p), "fingerprint": resume.fingerprint(p)}
                    for p in paths])


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv, safe_stop=True)
