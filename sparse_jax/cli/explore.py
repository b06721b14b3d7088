r"""The explorer: a local page on 127.0.0.1 to edit a seed along directions with sliders.

examples:
  sparse-jax-discover --out runs/dirs --methods sca,pca
  sparse-jax-explore --inputs runs/dirs/directions_sca.npz runs/dirs/directions_pca.npz
  sparse-jax-explore --inputs my_edit_directions.npz      # an exported edit as named sliders
Then open the printed address. A slider per direction (+-10 sigma of lat_stdev) with its ws-slot
range [start, end), several at once; the W distance moved and the classifier's predictions as
bars; side by side: the same seed and W distance along another file's directions; export writes
NAME.png, NAME_ws.npy and NAME_directions.npz into --export_dir. The page is Gradio
(`pip install ".[explore]"`) with system fonts, no share link and no telemetry: it works offline.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-explore"


def build_parser() -> argparse.ArgumentParser:
    p = common.new_parser(PROG, __doc__)
    common.add_generator(p)
    common.add_classifier(p)
    p.add_argument("--inputs", nargs="+", required=True, metavar="NPZ",
                   help="direction files (one slider group each)")
    p.add_argument("--noclassifier", action="store_true", help="no attribute bars")
    p.add_argument("--num_directions", type=common.converter(int, "--num_directions"),
                   default=12, help="sliders per direction file: its first N directions "
                   "(default: 12)")
    p.add_argument("--port", type=common.converter(int, "--port"), default=7860,
                   help="port on 127.0.0.1 (0: any free port; default: 7860)")
    p.add_argument("--export_dir", default="explorer_exports",
                   help="folder for exported files (default: explorer_exports)")
    common.add_common(p, multihost=False)
    return p


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    for path in ns.inputs:
        common.check_input_file(path, "--inputs", "npy" if path.endswith(".npy") else "npz",
                                "direction file")
    common.check_input_dir(ns.generator, "--generator")
    common.check_input_dir(ns.classifier, "--classifier")
    common.check_output_parent(ns.export_dir, "--export_dir")
    if ns.num_directions < 1:
        raise common.UserError(f"--num_directions {ns.num_directions}: expected >= 1")
    if not 0 <= ns.port < 65536:
        raise common.UserError(f"--port {ns.port}: expected 0..65535")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise common.UserError('the explorer needs Gradio: pip install ".[explore]"') from None
    from sparse_jax.explorer import app, engine

    explorer = engine.Explorer(ns.generator, ns.inputs, ns.classifier,
                               use_classifier=not ns.noclassifier,
                               num_directions=ns.num_directions)
    demo = app.Page(explorer, ns.export_dir).build()
    try:
        _, url, _ = app.launch(demo, ns.port or None, ns.export_dir, block=False)
    except OSError as e:
        raise common.UserError(f"--port {ns.port}: cannot listen on 127.0.0.1 "
                               f"({e.strerror or e})") from None
    print(f"explorer on {url} (Ctrl-C stops it)", flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv)
