"""Converts a StyleGAN checkpoint into a sparse-jax generator directory.

Reads stylegan2-ada-pytorch / stylegan3 snapshot .pkl, rosinality .pt and NVIDIA TensorFlow
StyleGAN / StyleGAN2(-ADA) .pkl files, without executing anything from them.
examples:
  sparse-jax-convert --src network-snapshot.pkl --out runs/generator
  sparse-jax-convert --src stylegan2-ffhq-config-f.pkl --out runs/ffhq --overwrite
"""
from __future__ import annotations

import argparse
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-convert"


def build_parser() -> argparse.ArgumentParser:
    import converters

    p = common.new_parser(PROG, __doc__)
    p.add_argument("--src", required=True, help="the checkpoint file")
    common.add_out(p, "output generator directory (config.json + variables/)")
    p.set_defaults(_run=common.add_fields(
        p, converters.convert, rename={"w_avg_seed": "seed"}, skip=("overwrite",),
        help={"w_avg_seed": "seed for estimating w_avg when a rosinality training checkpoint "
                            "has no latent_avg"}))
    common.add_common(p, multihost=False)
    return p


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    import converters

    common.check_input_file(ns.src, "--src")
    common.check_output_parent(ns.out, "--out")
    conv = converters.convert(ns.src, ns.out, overwrite=ns.overwrite,
                              **common.values_of(ns, ns._run))
    print(f"{conv.summary()} -> {ns.out}")
    for note in conv.notes:
        print(f"  note: {note}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv)
