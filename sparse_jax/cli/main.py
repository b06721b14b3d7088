"""`sparse-jax <command> [flags]`: one entry point for every command (also `sparse-jax-<command>`).

commands: see COMMANDS; `sparse-jax <command> --help` lists a command's flags.
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

# command name -> module in sparse_jax.cli (the console scripts are sparse-jax-<name>).
COMMANDS = {
    "convert": "convert",
    "generate": "generate",
    "edit": "edit",
    "discover": "discover",
    "evaluate": "evaluate",
    "render": "render",
    "run-paper": "run_paper",
    "explore": "explore",
    "sparsity-sweep": "sparsity_sweep",
    "train-stylegan": "train_stylegan",
    "train-classifier": "train_classifier",
}
SUMMARY = {
    "convert": "a StyleGAN checkpoint -> a generator directory",
    "generate": "images from --seeds, --z or --ws",
    "edit": "apply directions to --seeds, --z or --ws: edited ws + a labelled strip",
    "discover": "edit directions with PCA-W, PCA, SeFa, SCA, SCA-W",
    "evaluate": "Table 1 and Figs. 3-6 of direction files",
    "render": "a walk grid of one direction file",
    "run-paper": "the paper end to end (discover + evaluate)",
    "sparsity-sweep": "SCA gamma sweep: efficiency, S_d and d/dgamma against zero loadings",
    "explore": "the explorer: sliders per direction in the browser (127.0.0.1)",
    "train-stylegan": "train a small StyleGAN2",
    "train-classifier": "train the attribute classifier",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: sparse-jax <command> [flags]   (sparse-jax <command> --help for its flags)",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {SUMMARY[name]}" for name in COMMANDS]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name = args[0].replace("_", "-")
    if name not in COMMANDS:
        print(f"sparse-jax: error: unknown command {args[0]!r}; choose from "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"sparse_jax.cli.{COMMANDS[name]}")
    return module.main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
