r"""Applies edits (direction file, index, strength, layer range) to seeds, a z or a ws file.

Writes the edited ws (.npy, reloadable by `sparse-jax-generate --ws`) and a labelled PNG: one
row per latent; columns: the original, each edit alone and (for several) all edits together.
examples:
  sparse-jax-discover --out runs/discover --methods sca
  sparse-jax-edit --seeds 0-3 --edit runs/discover/directions_sca.npz:0:2 --out edited.png
  sparse-jax-edit --ws my_ws.npy --edit dirs.npz:3:-1.5:0,4 --edit dirs.npz:5:2 --out e.png
  sparse-jax-edit --seeds 7 --units w --edit dirs.npz:1:0.8 --out e.png --out_ws e_ws.npy
--edit FILE:INDEX:STRENGTH[:START,END]: direction INDEX of FILE, STRENGTH in sigma units of the
file's lat_stdev (or W distance with --units w), moving only ws slots [START, END) if given.
"""
from __future__ import annotations

import argparse
import os
import re
from typing import NamedTuple, Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-edit"


class EditSpec(NamedTuple):
    path: str
    index: int
    strength: float
    layer_range: tuple[int, int] | None


def parse_edit(text: str) -> EditSpec:
    """'FILE:INDEX:STRENGTH[:START,END]' -> EditSpec (the range may also be START-END)."""
    parts = text.split(":")
    layer_range = None
    if len(parts) >= 4 and re.fullmatch(r"\d+[,-]\d+", parts[-1].strip()):
        a, b = re.split(r"[,-]", parts.pop().strip())
        layer_range = (int(a), int(b))
    if len(parts) < 3 or not parts[0]:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected FILE:INDEX:STRENGTH[:START,END], e.g. dirs.npz:3:2.5:0,4")
    path, index, strength = ":".join(parts[:-2]), parts[-2].strip(), parts[-1].strip()
    if not re.fullmatch(r"\d+", index):
        raise argparse.ArgumentTypeError(f"{text!r}: INDEX must be a direction index "
                                         f"(0, 1, ...), got {index!r}")
    s = common._scalar(float, "--edit", strength) if strength else None
    if s is None:
        raise argparse.ArgumentTypeError(f"{text!r}: STRENGTH is missing")
    return EditSpec(path, int(index), s, layer_range)


def _edit_type(text: str) -> EditSpec:
    try:
        return parse_edit(text)
    except argparse.ArgumentTypeError:
        raise
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.cli import generate as cli_generate

    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    p.add_argument("--seeds", help=cli_generate.HELP["seeds"])
    p.add_argument("--z", help=cli_generate.HELP["z_file"])
    p.add_argument("--ws", help=cli_generate.HELP["ws_file"])
    p.add_argument("--seed", type=common.converter(int, "--seed"), default=0,
                   help="the run seed whose image stream --seeds index (as in generate; "
                        "default: 0)")
    p.add_argument("--edit", action="append", type=_edit_type, default=[], required=True,
                   metavar="FILE:INDEX:STRENGTH[:START,END]", help="one edit (repeat for more)")
    p.add_argument("--units", choices=("sigma", "w"), default="sigma",
                   help="STRENGTH in sigma units of lat_stdev (default) or as a W distance")
    p.add_argument("--truncation_psi", "--truncation", type=common.psi_type, default=1.0,
                   help=common.TRUNCATION_HELP + " (before the edit; ignored with --ws; "
                   "default: 1.0)")
    p.add_argument("--truncation_cutoff", type=common.converter(int | None, "--truncation_cutoff"),
                   default=None, help="truncate only the first N ws slots (default: every slot)")
    common.add_out(p, "output PNG (the labelled strip)", overwrite=False)
    p.add_argument("--out_ws", default=None, metavar="NPY",
                   help="the edited ws [N, num_ws, w_dim] (default: OUT with _ws.npy)")
    p.add_argument("--batch", type=common.converter(int, "--batch"), default=16,
                   help="images per compiled call (default: 16)")
    common.add_common(p)
    return p


def out_ws_path(ns: argparse.Namespace) -> str:
    return ns.out_ws or os.path.splitext(ns.out)[0] + "_ws.npy"


def _latents(ns, cfg, variables, psi, cutoff):
    import numpy as np

    from sparse_jax.core import seeds as seeds_lib
    from sparse_jax.generation import edit

    if ns.seeds:
        chosen = seeds_lib.parse_seeds(ns.seeds)
        ws = edit.ws_from_seeds(cfg, variables, chosen, psi, cutoff, run_seed=ns.seed)
        return ws, [f"seed {s}" for s in chosen]
    if ns.z:
        z = common.check_npy_array(ns.z, "--z")
        if z.ndim != 2 or z.shape[1] != cfg.z_dim:
            raise common.UserError(f"--z {ns.z}: expected shape [N, {cfg.z_dim}], got {z.shape}")
        return edit.ws_from_z(cfg, variables, z, psi, cutoff), [f"z {i}" for i in range(len(z))]
    ws = common.check_npy_array(ns.ws, "--ws").astype(np.float32)
    if ws.ndim == 2 and ws.shape[1] == cfg.w_dim:
        ws = np.repeat(ws[:, None], cfg.num_ws, axis=1)
    if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
        raise common.UserError(f"--ws {ns.ws}: expected shape [N, {cfg.num_ws}, {cfg.w_dim}] "
                               f"(or [N, {cfg.w_dim}]), got {ws.shape}")
    return ws, [f"ws {i}" for i in range(len(ws))]


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    import numpy as np

    from sparse_jax.cli import generate as cli_generate
    from sparse_jax.core import atomic
    from sparse_jax.generation import edit
    from sparse_jax.io import model_dirs
    from sparse_jax.plots import figures

    common.check_output_file(ns.out, "--out", (".png",))
    common.check_output_file(out_ws_path(ns), "--out_ws", (".npy",))
    common.check_input_dir(ns.generator, "--generator")
    cli_generate.check_latent_inputs({"seeds": ns.seeds, "z_file": ns.z, "ws_file": ns.ws})
    for spec in ns.edit:
        common.check_input_file(spec.path, "--edit", "npz", "direction file")
    if ns.batch < 1:
        raise common.UserError(f"--batch must be >= 1, got {ns.batch}")
    psi, cutoff = common.resolve_truncation(ns.truncation_psi, ns.truncation_cutoff,
                                            ns.generator)
    cfg, variables = model_dirs.load_generator(ns.generator or model_dirs.default_generator_path())
    edits = []
    for spec in ns.edit:
        try:
            edits.append(edit.load_edit(spec.path, spec.index, spec.strength, w_dim=cfg.w_dim,
                                        num_ws=cfg.num_ws, layer_range=spec.layer_range,
                                        units=ns.units))
        except ValueError as e:
            raise common.UserError(f"--edit {spec.path}: {e}".replace(
                f"{spec.path}: {spec.path}: ", f"{spec.path}: ")) from None
    ws, rows = _latents(ns, cfg, variables, psi, cutoff)
    images, cols, edited = edit.edit_strip(cfg, variables, ws, edits, ns.batch)
    atomic.save_npy(out_ws_path(ns), edited.astype(np.float32))
    fig = figures.walk_grid(images, rows, cols, title="edits in W (sparse-jax-edit)",
                            tile_inches=1.1)
    atomic.save_figure(ns.out, fig)
    moved = [f"{e.label}: W distance {abs(e.distance):.3g}" for e in edits]
    print(f"wrote {ns.out} ({len(rows)} latents x {len(cols)} columns) and {out_ws_path(ns)}")
    for m in moved:
        print("  " + m)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv)
