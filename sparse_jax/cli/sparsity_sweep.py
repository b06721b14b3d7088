r"""Does more sparsity give more efficient directions? Sweeps SCA's gamma over the fraction of zero
loadings, scores each point, and checks d(efficiency)/d(gamma) from jax.grad.

examples:
  sparse-jax-sparsity-sweep --out runs/sparsity                # --preset default (~10 min)
  sparse-jax-sparsity-sweep --out runs/sparsity --preset smoke  # tiny, for CI
  sparse-jax-sparsity-sweep --out runs/s --sparsities 0,0.5,0.9 --grad_sparsities 0.5
Writes sparsity_sweep.png (efficiency and S_d against the zero fraction, 95% intervals),
sweep.md (the tables) and sweep.json into --out. docs/metrics.md defines the surrogate.
Rerunning an interrupted command resumes it from the points it finished (--batch may change).
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-sparsity-sweep"
HELP = {
    "sparsities": "comma list of target fractions of zero SCA loadings, one sweep point each",
    "grad_sparsities": "comma list of zero fractions where jax.grad is checked against a "
                       "central finite difference",
    "num_samples": "fit samples of SCA (pooled features)",
    "num_regression_samples": "fresh samples of the regression onto W",
    "k": "SCA components (directions)",
    "n_sweeps": "SCA sweeps (fixed, so the solve is differentiable)",
    "varimax_steps": "varimax iterations per SCA sweep",
    "num_assign_seeds": "real metric: seeds that assign directions",
    "num_eval_seeds": "real metric: evaluation seeds (the bootstrap resamples them)",
    "reach_points": "real metric: log-spaced points of the distance-to-effect walk",
    "surrogate_assign_seeds": "surrogate: assignment seeds (the first real ones)",
    "surrogate_eval_seeds": "surrogate: evaluation seeds (the first real ones)",
    "surrogate_points": "surrogate: log-spaced walk points from d_max/8 to 4 d_max",
    "tau_assign": "surrogate: softmax temperature of the soft assignment (units of p)",
    "tau_reach": "surrogate: sigmoid temperature of the soft first crossing (units of p)",
    "fd_step": "first finite-difference step, relative to gamma",
    "d_max_samples": "latents for d_max (3 x the std of w along its first PCA axis)",
    "bootstrap_draws": "bootstrap draws of the 95%% intervals",
    "seed": "PRNG seed of every sample and walk",
    "batch": "images per compiled call (memory of the backward pass scales with it)",
}
OUTPUTS = ("sparsity_sweep.png", "sweep.md", "sweep.json")


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.pipeline import sparsity

    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    common.add_classifier(p)
    common.add_out(p, "output folder")
    p.add_argument("--preset", choices=tuple(sparsity.PRESETS), default="default",
                   help="sizes: default (about 10 minutes on 2 CPU cores) or smoke (CI); "
                   "individual flags override (default: default)")
    fields = [f.name for f in dataclasses.fields(sparsity.SweepConfig)]
    p.set_defaults(_fields=common.add_fields(p, sparsity.SweepConfig, help=HELP,
                                             preset_fields=fields))
    common.add_common(p, progress=True)
    return p


def config(ns: argparse.Namespace):
    """The run's SweepConfig: the preset, then the given flags."""
    from sparse_jax.pipeline import sparsity

    return dataclasses.replace(sparsity.PRESETS[ns.preset](), **common.values_of(ns, ns._fields))


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.pipeline import sparsity

    common.check_input_dir(ns.generator, "--generator")
    common.check_input_dir(ns.classifier, "--classifier")
    cfg = config(ns)
    run = common.open_run(ns.out, ns.overwrite, OUTPUTS, "sparsity_sweep", settings(ns, cfg))
    if run.finished:
        return 0
    sparsity.run_sweep(ns.out, cfg, generator=ns.generator, classifier=ns.classifier,
                       progress=common.progress_enabled(ns), checkpoint=run)
    run.finish(OUTPUTS)
    return 0


def settings(ns: argparse.Namespace, cfg) -> dict:
    """What identifies the run in its folder (`core.resume`): the config and both models."""
    return common.run_settings(dataclasses.asdict(cfg), ns.generator, ns.classifier)


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv, safe_stop=True)
