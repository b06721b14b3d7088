r"""Finds edit directions in W with PCA-W, PCA, SeFa, SCA and SCA-W; writes them to --out.

examples:
  sparse-jax-discover --out runs/discover                      # --preset quick sizes
  sparse-jax-discover --out runs/discover --preset paper --methods pca-w,sca
  sparse-jax-discover --generator G_DIR --layers b16.conv1 --pool grid2 --out runs/g
Writes directions_<method>.npz (+ .npy), summary.json and scatter.png (Fig. 2). Rerunning an
interrupted command resumes it from the samples and methods it finished (--batch may change).
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-discover"
HELP = {
    "methods": "comma list of methods: pca-w, pca, sefa, sca, sca-w (default: all)",
    "layers": "comma list of synthesis layers ('b8.conv1' or 'synthesis.b8.conv1'; default: "
              "conv1 of the blocks at 1/4 and 1/2 of the output resolution)",
    "pool": "spatial max pooling: 'global' (one max per channel) or 'gridS' (S x S)",
    "num_samples": "samples that fit the decompositions",
    "num_regression_samples": "fresh samples of the regression onto W (default: --num_samples)",
    "k": "directions per method",
    "gamma": "SCA L1 budget; overrides --target_sparsity",
    "target_sparsity": "fraction of SCA loadings that should be exactly zero",
    "seed": "PRNG seed of the fit and regression samples",
    "batch": "samples per compiled call (lower it on out-of-memory)",
    "truncation": common.TRUNCATION_HELP + " (z -> w)",
}
RENAME = {"truncation": "truncation_psi"}
PRESET_FIELDS = {"num_samples": "num_samples", "k": "k"}
OUTPUTS = ("directions_*.npz", "directions_*.npy", "summary.json", "scatter.png")


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.discovery import run as discover

    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    common.add_out(p, "output folder")
    common.add_preset(p)
    p.set_defaults(_fields=common.add_fields(
        p, discover.DiscoveryConfig, help=HELP, rename=RENAME,
        types_={"truncation": common.psi_type}, aliases={"truncation": ["truncation"]},
        preset_fields=PRESET_FIELDS.values()))
    common.add_common(p, progress=True)
    return p


def config(ns: argparse.Namespace):
    """The run's DiscoveryConfig: its defaults, then --preset, then the given flags."""
    from sparse_jax.discovery import run as discover

    cfg = common.preset_config(ns, discover.DiscoveryConfig, PRESET_FIELDS, "truncation",
                               "discover")
    try:
        discover.parse_methods(cfg.methods)  # an unknown method fails before any sampling
    except ValueError as e:
        raise common.UserError(f"--methods: {e}") from None
    return cfg


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.discovery import run as discover
    from sparse_jax.io import model_dirs

    common.check_input_dir(ns.generator, "--generator")
    cfg = config(ns)
    run = common.open_run(ns.out, ns.overwrite, OUTPUTS, "discover", settings(ns, cfg))
    if run.finished:
        return 0
    gen, variables = model_dirs.load_generator(ns.generator or model_dirs.default_generator_path())
    discover.run_discovery(gen, variables, **dataclasses.asdict(cfg), out=ns.out,
                           progress=common.progress_enabled(ns), checkpoint=run)
    run.finish(OUTPUTS)
    print(f"wrote directions to {ns.out}")
    return 0


def settings(ns: argparse.Namespace, cfg) -> dict:
    """What identifies the run in its folder (`core.resume`): the config and the generator."""
    return common.run_settings(dataclasses.asdict(cfg), ns.generator)


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv, safe_stop=True)
