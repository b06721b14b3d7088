r"""Renders a walk grid: rows are directions (x walk indices), columns are distances along each.

examples:
  sparse-jax-render --directions runs/discover/directions_sca.npz --out sca_grid.png \
      --seeds 0,1 --num_directions 6 --sigmas=-3,-1.5,0,1.5,3
--seeds are the seeds of every command (core/seeds.py): seed i with --seed s is the image
`sparse-jax-generate --seeds i --seed s` draws, and evaluation seed index i of evaluate.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-render"
HELP = {
    "seeds": "seeds, e.g. '0-3' or '1,5' (one block of rows each)",
    "num_directions": "the first n directions of the file",
    "distances": "signed absolute W distances (columns), e.g. -2,0,2",
    "sigmas": "signed distances in units of each direction's lat_stdev (default -3,...,3 when "
              "--distances is not given)",
    "layer_range": "start,end: edit only ws slots [start, end) (default: all)",
    "seed": "the run seed whose image stream --seeds index (as in generate and evaluate)",
    "truncation_psi": common.TRUNCATION_HELP + "; applied before the edit",
    "chunk": "images per compiled call (default: 64 on CPU, 256 on accelerators)",
}
RENAME = {"chunk": "batch"}
DEFAULT_SIGMAS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)


def _seeds(text: str) -> list[int]:
    from sparse_jax.core import seeds

    try:
        return seeds.parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--seeds: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.evaluation import run as evaluate

    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    p.add_argument("--directions", required=True, metavar="NPZ", help="a direction file")
    common.add_out(p, "output PNG", overwrite=False)
    p.set_defaults(_fields=common.add_fields(
        p, evaluate.run_render, help=HELP, rename=RENAME,
        skip=("direction_path", "out_path", "generator", "devices"),
        types_={"truncation_psi": common.psi_type, "seeds": _seeds},
        aliases={"truncation_psi": ["truncation"]}))
    common.add_common(p)
    return p


def settings(ns: argparse.Namespace) -> dict:
    from sparse_jax.evaluation import run as evaluate

    kw = {**common.defaults_of(evaluate.run_render), **common.values_of(ns, ns._fields)}
    kw.pop("devices", None)
    if kw["distances"] is not None and kw["sigmas"] is not None:
        raise common.UserError("give --distances or --sigmas, not both")
    if kw["distances"] is None and kw["sigmas"] is None:
        kw["sigmas"] = DEFAULT_SIGMAS
    kw.update(direction_path=ns.directions, out_path=ns.out, generator=ns.generator)
    return kw


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.evaluation import run as evaluate

    kw = settings(ns)
    common.check_output_file(ns.out, "--out", (".png",))
    common.check_input_dir(ns.generator, "--generator")
    common.check_direction_file(ns.directions, "--directions")
    kw["truncation_psi"] = common.psi_without_cutoff(kw["truncation_psi"], ns.generator, "render")
    path = evaluate.run_render(**kw)
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv)
