"""Trains the attribute classifier on CelebA-format data or MNIST-like digits and saves it.

Example (the shipped MNIST classifier):
  python bin/train_classifier.py --data /work/shared/data/mnist.npz \
      --out sparse_jax/assets/classifier_mnist --seed 0
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

_DATA = flags.DEFINE_string(
    "data", None, "CelebA-format folder (with list_attr_celeba.txt), MNIST .npz, MNIST IDX "
    "folder, or 'sklearn_digits'.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output directory (config.json + params/).", required=True)
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")
_RESOLUTION = flags.DEFINE_integer("resolution", 32, "Network input resolution.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Training epochs.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_LR = flags.DEFINE_float("learning_rate", 3e-3, "Peak AdamW learning rate.")
_WD = flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay.")
_SHIFT = flags.DEFINE_integer("max_shift", 2, "Random-shift augmentation in pixels (0: off).")
_LIMIT = flags.DEFINE_integer("limit", None, "Use at most this many images per split.")
_WIDTHS = flags.DEFINE_list("widths", ["16", "32", "64", "128"], "Conv channels per stage.")
_CONVS = flags.DEFINE_integer("convs_per_stage", 1, "3x3 convs per stage after the first.")
_MEASURED = flags.DEFINE_boolean(
    "measured", True, "Digits: also learn measured thickness/slant/width.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO
    from sparse_jax.training import classifier as ct

    try:
        widths = tuple(int(w) for w in _WIDTHS.value)
    except ValueError:
        raise app.UsageError(f"--widths must be integers, got {_WIDTHS.value}") from None
    tcfg = ct.TrainConfig(epochs=_EPOCHS.value, batch_size=_BATCH.value,
                          learning_rate=_LR.value, weight_decay=_WD.value,
                          max_shift=_SHIFT.value, seed=_SEED.value)
    ct.train_and_save(_DATA.value, _OUT.value, tcfg, resolution=_RESOLUTION.value,
                      limit=_LIMIT.value, measured=_MEASURED.value, widths=widths,
                      convs_per_stage=_CONVS.value,
                      progress=_PROGRESS.value)


if __name__ == "__main__":
    app.run(main)
