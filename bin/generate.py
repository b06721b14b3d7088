#!/usr/bin/env python3
"""Renders images from a converted (or the embedded) StyleGAN2 generator.

  python bin/generate.py --seeds 0-7 --out grid.png
  python bin/generate.py --generator G_DIR --ws edited_ws.npy --out images.npz
"""
import _cli
from absl import app, flags

_GEN = flags.DEFINE_string("generator", None, "Generator directory (bin/convert output); "
                           "default: the embedded MNIST generator.")
_SEEDS = flags.DEFINE_string("seeds", None, "Seeds, e.g. '0-7' or '1,5,9'. One z per seed.")
_Z = flags.DEFINE_string("z", None, ".npy file of latents [N, z_dim].")
_WS = flags.DEFINE_string("ws", None, ".npy file of per-layer latents [N, num_ws, w_dim].")
_TRUNC = flags.DEFINE_float("truncation", 1.0, "Truncation psi (ignored with --ws).")
_CUTOFF = flags.DEFINE_integer("truncation_cutoff", None, "Truncate only the first N ws slots.")
_NOISE = flags.DEFINE_enum("noise_mode", "const", ["const", "none", "random"], "Noise inputs.")
_CLASS = flags.DEFINE_integer("class_idx", None, "Class label for conditional generators.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for --noise_mode=random.")
_BATCH = flags.DEFINE_integer("batch", 16, "Images per compiled call.")
_COLS = flags.DEFINE_integer("cols", None, "Grid columns (PNG output).")
_OUT = flags.DEFINE_string("out", None, "Output: .png (grid) or .npz (raw NCHW float32 + ws).",
                           required=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _cli.quiet_logs()
    from sparse_jax.generation import generate as generate_images
    generate_images.run(
        generator=_GEN.value, out=_OUT.value, seeds=_SEEDS.value, z_file=_Z.value,
        ws_file=_WS.value, truncation_psi=_TRUNC.value, truncation_cutoff=_CUTOFF.value,
        noise_mode=_NOISE.value, class_idx=_CLASS.value, seed=_SEED.value, batch=_BATCH.value,
        cols=_COLS.value)


if __name__ == "__main__":
    app.run(main)
