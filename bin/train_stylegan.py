"""Trains a small StyleGAN2 (e.g. the embedded MNIST default) and exports its EMA generator.

Example (the shipped MNIST generator; see sparse_jax/assets/generator_mnist/README.md):
  python bin/train_stylegan.py --data /path/to/mnist.npz --workdir runs/gan_mnist --seed 0
Re-running the same command resumes from the latest checkpoint in --workdir.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from sparse_jax.models import discriminator as disc  # noqa: E402
from sparse_jax.models import stylegan2 as sg  # noqa: E402
from sparse_jax.training import train_gan  # noqa: E402

_DATA = flags.DEFINE_string(
    "data", None, "Training images: an .npz (x_train), a folder of MNIST IDX files, or "
    "'sklearn_digits'.", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, samples and logs.", required=True)
_EXPORT = flags.DEFINE_string("export", None, "Write the EMA generator here at the end.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")
_BATCH = flags.DEFINE_integer("batch", 32, "Minibatch size (a multiple of the mbstd group 4).")
_TOTAL_KIMG = flags.DEFINE_float("total_kimg", 300.0, "Stop after this many thousand images.")
_MINUTES = flags.DEFINE_float("minutes", None, "Stop after this many minutes (this invocation).")
_RES = flags.DEFINE_integer("resolution", 32, "Image resolution (power of two).")
_CHANNELS = flags.DEFINE_integer("channels", 1, "Image channels.")
_CBASE = flags.DEFINE_integer("channel_base", 512, "Channels at res r: min(base // r, max).")
_CMAX = flags.DEFINE_integer("channel_max", 64, "Maximum channels per layer.")
_ZDIM = flags.DEFINE_integer("z_dim", 64, "Latent z size.")
_WDIM = flags.DEFINE_integer("w_dim", 64, "Latent w size.")
_MAPPING = flags.DEFINE_integer("mapping_layers", 2, "Mapping network depth.")
_MBSTD = flags.DEFINE_integer("mbstd_group", 4, "Minibatch-std group size (the official cifar "
                              "config uses 32: a larger group sees more of the batch's variety).")
_D_CBASE = flags.DEFINE_integer("d_channel_base", None, "Discriminator channel_base (default: "
                                 "--channel_base).")
_D_CMAX = flags.DEFINE_integer("d_channel_max", None, "Discriminator channel_max (default: "
                               "--channel_max).")
_MBSTD_CH = flags.DEFINE_integer("mbstd_channels", 1, "Minibatch-std statistics channels.")
_PACK = flags.DEFINE_integer(
    "pack", 4, "PacGAN (Lin et al. 2018): the discriminator judges this many samples at once, "
    "stacked as channels. 4 made the shipped model; with 1 (plain StyleGAN2) the small MNIST "
    "generator collapsed to a single digit.")
_TOPK = flags.DEFINE_float(
    "g_topk", 1.0, "Top-k training (Sinha et al. 2020): the generator loss uses only this fraction "
    "of the discriminator's decisions on fakes, the most realistic ones. 1 = plain StyleGAN2.")
_GAMMA = flags.DEFINE_float("r1_gamma", 0.01, "R1 weight gamma (StyleGAN2-ADA's automatic value "
                            "for 32x32, batch 32; the shipped model's).")
_GLR = flags.DEFINE_float("g_lr", 0.0025, "Generator Adam learning rate (StyleGAN2's).")
_DLR = flags.DEFINE_float("d_lr", 0.0025, "Discriminator Adam learning rate (StyleGAN2's).")
_EMA_KIMG = flags.DEFINE_float("ema_kimg", 10.0, "EMA generator half-life in thousand images.")
_MIXING = flags.DEFINE_float("style_mixing_prob", 0.0, "Style-mixing regularisation probability.")
_INIT_FROM = flags.DEFINE_string(
    "init_from", None, "Start a new --workdir from another run's latest checkpoint (same networks; "
    "optimisation flags may differ, e.g. a lower learning rate; with another --batch it continues "
    "from the same image count). Ignored when resuming.")
_CKPT_MIN = flags.DEFINE_float("checkpoint_minutes", 5.0, "Minutes between checkpoints.")
_SAMPLE_EVERY = flags.DEFINE_integer("sample_every", 250, "Iterations between sample grids.")
_LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Iterations between log lines.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    gcfg = sg.GeneratorConfig(
        z_dim=_ZDIM.value, w_dim=_WDIM.value, img_resolution=_RES.value,
        img_channels=_CHANNELS.value, mapping_layers=_MAPPING.value,
        channel_base=_CBASE.value, channel_max=_CMAX.value)
    dcfg = disc.DiscriminatorConfig(
        mbstd_group_size=_MBSTD.value, mbstd_num_channels=_MBSTD_CH.value,
        img_resolution=_RES.value, img_channels=_CHANNELS.value * _PACK.value,
        channel_base=_CBASE.value if _D_CBASE.value is None else _D_CBASE.value,
        channel_max=_CMAX.value if _D_CMAX.value is None else _D_CMAX.value)
    tcfg = train_gan.TrainConfig(
        batch=_BATCH.value, g_lr=_GLR.value, d_lr=_DLR.value, r1_gamma=_GAMMA.value,
        ema_kimg=_EMA_KIMG.value, style_mixing_prob=_MIXING.value, pack=_PACK.value,
        g_topk=_TOPK.value,
        seed=_SEED.value)
    train_gan.train(
        gcfg, dcfg, tcfg, data=_DATA.value, workdir=_WORKDIR.value, total_kimg=_TOTAL_KIMG.value,
        minutes=_MINUTES.value, checkpoint_minutes=_CKPT_MIN.value,
        sample_every=_SAMPLE_EVERY.value, log_every=_LOG_EVERY.value, export_dir=_EXPORT.value,
        init_from=_INIT_FROM.value, log=lambda s: print(s, flush=True))


if __name__ == "__main__":
    app.run(main)
