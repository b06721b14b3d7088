r"""Trains the attribute classifier on CelebA-format data or MNIST-like digits and saves it.

examples (from a checkout next to shared/; 'sklearn_digits' needs no file):
  sparse-jax-train-classifier --data ../shared/data/mnist.npz --out runs/classifier
  sparse-jax-train-classifier --data sklearn_digits --out runs/tiny_classifier --epochs 1
The shipped MNIST classifier is `--data ../shared/data/mnist.npz --seed 0` at the defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-train-classifier"
HELP = {
    "epochs": "training epochs",
    "batch_size": "images per step",
    "learning_rate": "peak AdamW learning rate",
    "weight_decay": "AdamW weight decay",
    "max_shift": "random-shift augmentation in pixels (0: off)",
    "seed": "PRNG seed",
    "resolution": "network input resolution",
    "limit": "use at most this many images per split (default: all)",
    "measured": "digits: also learn measured thickness/slant/width (--nomeasured: digits only)",
    "widths": "conv channels per stage, e.g. 16,32,64,128",
    "convs_per_stage": "3x3 convs per stage after the first",
}
RENAME = {"batch_size": "batch"}
OUTPUTS = ("config.json", "variables", "metrics.json")


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.training import classifier as ct

    p = common.new_parser(PROG, __doc__)
    p.add_argument("--data", required=True, help="CelebA-format folder (with "
                   "list_attr_celeba.txt), MNIST .npz, MNIST IDX folder, or 'sklearn_digits'")
    common.add_out(p, "output classifier directory (config.json + variables/)")
    opt = common.add_fields(p, ct.TrainConfig, help=HELP, rename=RENAME)
    run = common.add_fields(p, ct.train_and_save, help=HELP,
                            skip=("spec", "out", "tcfg", "progress"))
    p.set_defaults(_opt=opt, _run=run)
    common.add_common(p, multihost=False, progress=True)
    return p


def settings(ns: argparse.Namespace) -> dict:
    from sparse_jax.training import classifier as ct

    kw = {**common.defaults_of(ct.train_and_save), **common.values_of(ns, ns._run)}
    kw.update(spec=ns.data, out=ns.out, progress=common.progress_enabled(ns),
              tcfg=dataclasses.replace(ct.TrainConfig(), **common.values_of(ns, ns._opt)))
    return kw


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.training import classifier as ct

    if ns.data != "sklearn_digits" and not os.path.exists(ns.data):
        raise common.UserError(f"--data {ns.data}: no such file or folder")
    kw = settings(ns)
    common.check_output_dir(ns.out, ns.overwrite, OUTPUTS, command="train_classifier's")
    ct.train_and_save(**kw)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv)
