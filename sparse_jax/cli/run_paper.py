r"""The main job: the paper end to end (discover, walk, evaluate, figures) in one folder.

examples:
  sparse-jax-run-paper --out results                     # --preset quick, the README's job
  sparse-jax-run-paper --out results --preset paper      # the paper's sizes
  sparse-jax-run-paper --generator G_DIR --classifier C_DIR --out results
The sizes are the presets discover and evaluate share (pipeline.paper.PaperSizes); each size
flag overrides its preset value. Rerunning an interrupted command resumes it from the samples,
methods, walks and figures it finished (--batch may change).
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-run-paper"
HELP = {
    "num_samples": "discovery: samples that fit the decompositions",
    "k": "discovery: directions per method (and directions evaluated)",
    "num_assign_seeds": "evaluation: seeds that assign directions",
    "num_eval_seeds": "evaluation: disjoint seeds that are scored",
    "num_distances": "evaluation: grid points from 0 to d_max",
    "d_max_samples": "evaluation: latents for the default d_max",
    "seed": "PRNG seed of every sample and walk",
    "batch": "samples per compiled call in discovery and evaluation (lower it if out of memory)",
    "target_sparsity": "fraction of zero SCA loadings",
    "methods": "comma list (default: pca-w,pca,sefa,sca,sca-w)",
    "repeats": "complete runs with seeds seed..seed+R-1; Table 1 gets 95%% bootstrap intervals "
               "over the repeats and evaluation seeds",
    "allow_classifier_mismatch": "score a generator whose images the classifier was not trained "
                                 "on (resized, channels averaged or repeated) instead of refusing",
    "bootstrap_draws": "bootstrap resamples behind each interval",
}
OUTPUTS = ("directions", "table1.md", "table1.json", "table1_intervals.*", "preds_*.npz",
           "fig*.png", "run.json", "repeat_*")


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.pipeline import paper

    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    common.add_classifier(p)
    common.add_out(p, "output folder (default: results)", required=False, default="results")
    common.add_preset(p)
    p.add_argument("--paper_scale", dest="legacy_preset", action="append_const", const="paper",
                   help="the same as --preset paper")
    p.add_argument("--smoke", dest="legacy_preset", action="append_const", const="smoke",
                   help="the same as --preset smoke")
    sizes = common.add_fields(p, paper.PaperSizes, help=HELP,
                              preset_fields=[f.name for f in dataclasses.fields(paper.PaperSizes)])
    run = common.add_fields(p, paper.run_paper, help=HELP,
                            skip=("out", "generator", "classifier", "sizes", "progress", "log",
                                  "checkpoint"))
    p.set_defaults(_sizes=sizes, _run=run)
    common.add_common(p, progress=True)
    return p


def preset(ns: argparse.Namespace) -> str:
    legacy = sorted(set(ns.legacy_preset or ()))
    if len(legacy) > 1:
        raise common.UserError("--paper_scale and --smoke exclude each other")
    if legacy and ns.preset not in (common.DEFAULT_PRESET, legacy[0]):
        raise common.UserError(f"--{'paper_scale' if legacy[0] == 'paper' else 'smoke'} and "
                               f"--preset {ns.preset} exclude each other")
    return legacy[0] if legacy else ns.preset


def settings(ns: argparse.Namespace) -> dict:
    """The keyword arguments of `pipeline.paper.run_paper` for the parsed flags."""
    from sparse_jax.pipeline import paper

    sizes = dataclasses.replace(common.preset_sizes(preset(ns)),
                                **common.values_of(ns, ns._sizes))
    kw = {**common.defaults_of(paper.run_paper), **common.values_of(ns, ns._run)}
    kw.pop("log", None)
    kw.pop("checkpoint", None)
    kw.update(out=ns.out, generator=ns.generator, classifier=ns.classifier, sizes=sizes,
              progress=common.progress_enabled(ns))
    return kw


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.discovery import run as discover
    from sparse_jax.pipeline import paper

    kw = settings(ns)
    try:
        discover.parse_methods(kw["methods"])
    except ValueError as e:
        raise common.UserError(f"--methods: {e}") from None
    common.check_input_dir(ns.generator, "--generator")
    common.check_input_dir(ns.classifier, "--classifier")
    run = common.open_run(ns.out, ns.overwrite, OUTPUTS, "run_paper", resume_settings(kw))
    if run.finished:
        return 0
    paper.run_paper(**kw, checkpoint=run)
    run.finish(OUTPUTS)
    return 0


def resume_settings(kw: dict) -> dict:
    """What identifies the run in its folder (`core.resume`): every setting of `run_paper` that
    decides its results, with the generator and classifier by content."""
    config = {k: v for k, v in kw.items()
              if k not in ("out", "progress", "generator", "classifier", "sizes")}
    config["sizes"] = dataclasses.asdict(kw["sizes"])
    return common.run_settings(config, kw["generator"], kw["classifier"])


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv, safe_stop=True)
