r"""Renders images from a generator: seeds, a z file or a ws file -> a PNG grid or a raw .npz.

examples:
  sparse-jax-generate --seeds 0-7 --out grid.png
  sparse-jax-generate --generator G_DIR --seeds 0-3 --truncation default --out grid.png
  sparse-jax-generate --generator G_DIR --ws edited_ws.npy --out images.npz
  sparse-jax-generate --seeds 0-15 --scale 4 --labels --out big.png
"""
from __future__ import annotations

import argparse
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-generate"
HELP = {
    "seeds": "seeds, e.g. '0-7' or '1,5,9': one z = normal(key(seed)) each",
    "z_file": ".npy file of latents [N, z_dim]",
    "ws_file": ".npy file of per-layer latents [N, num_ws, w_dim] (or [N, w_dim])",
    "truncation_psi": common.TRUNCATION_HELP + "; ignored with --ws",
    "truncation_cutoff": "truncate only the first N ws slots (none: every slot)",
    "noise_mode": "noise inputs: const, none or random",
    "class_idx": "class label for conditional generators",
    "seed": "PRNG seed of --noise_mode random",
    "batch": "images per compiled call",
    "cols": "grid columns of a PNG (default: a square grid)",
    "scale": "enlarge every image of a PNG grid by this whole factor (nearest neighbour)",
    "labels": "write each image's seed (or row index) under it in a PNG grid",
}
RENAME = {"z_file": "z", "ws_file": "ws"}
NOISE_MODES = ("const", "none", "random")


def _noise(text: str) -> str:
    if text not in NOISE_MODES:
        raise argparse.ArgumentTypeError(f"--noise_mode: expected one of {', '.join(NOISE_MODES)}"
                                         f", got {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.generation import generate

    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    common.add_out(p, "output: .png (a grid) or .npz (raw NCHW float32 images + ws)",
                   overwrite=False)
    p.set_defaults(_fields=common.add_fields(
        p, generate.run, help=HELP, rename=RENAME, skip=("generator", "out"),
        types_={"truncation_psi": common.psi_type, "noise_mode": _noise},
        aliases={"truncation_psi": ["truncation"]}))
    common.add_common(p)
    return p


def settings(ns: argparse.Namespace) -> dict:
    """The keyword arguments of `generation.generate.run` for the parsed flags."""
    from sparse_jax.generation import generate

    kw = {**common.defaults_of(generate.run), **common.values_of(ns, ns._fields)}
    kw.update(generator=ns.generator, out=ns.out)
    return kw


def check_latent_inputs(kw: dict) -> None:
    """Exactly one of --seeds/--z/--ws, each readable (before the generator is loaded)."""
    from sparse_jax.core import seeds

    given = [f for f, k in (("--seeds", "seeds"), ("--z", "z_file"), ("--ws", "ws_file"))
             if kw.get(k)]
    if len(given) != 1:
        raise common.UserError("give exactly one of --seeds, --z or --ws "
                               f"(got {', '.join(given) if given else 'none'})")
    if kw.get("seeds"):
        try:
            seeds.parse_seeds(kw["seeds"])
        except ValueError as e:
            raise common.UserError(f"--seeds: {e}") from None
    for flag, key in (("--z", "z_file"), ("--ws", "ws_file")):
        if kw.get(key):
            common.check_npy_array(kw[key], flag)


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.generation import generate

    kw = settings(ns)
    common.check_output_file(ns.out, "--out", (".png", ".npz"))
    common.check_input_dir(ns.generator, "--generator")
    check_latent_inputs(kw)
    given_cutoff = "truncation_cutoff" in common.values_of(ns, ns._fields)
    kw["truncation_psi"], kw["truncation_cutoff"] = common.resolve_truncation(
        kw["truncation_psi"], kw["truncation_cutoff"], ns.generator, given_cutoff)
    generate.run(**kw)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv)
