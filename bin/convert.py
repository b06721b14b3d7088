"""Converts an official StyleGAN2 .pkl or a rosinality .pt into a sparse-jax generator directory.

    python bin/convert.py --src network-snapshot.pkl --out runs/generator
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

import converters  # noqa: E402

_SRC = flags.DEFINE_string("src", None, "Checkpoint: stylegan2-ada-pytorch / stylegan3 snapshot "
                           ".pkl or rosinality .pt.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output generator directory (config.json + Orbax).",
                           required=True)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace --out if it exists and is not empty.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for estimating w_avg when a rosinality training "
                             "checkpoint has no latent_avg.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO
    try:
        conv = converters.convert(_SRC.value, _OUT.value, overwrite=_OVERWRITE.value,
                                  w_avg_seed=_SEED.value)
    except (converters.ConversionError, FileExistsError) as e:
        sys.exit(f"convert: {e}")
    print(f"{conv.summary()} -> {_OUT.value}")
    for note in conv.notes:
        print(f"  note: {note}")


if __name__ == "__main__":
    app.run(main)
