r"""Trains a small StyleGAN2 (e.g. the embedded MNIST generator) and exports its EMA generator.

examples:
  sparse-jax-train-stylegan --data ../shared/data/mnist.npz --workdir runs/gan --total_kimg 300
  sparse-jax-train-stylegan --data sklearn_digits --workdir runs/tiny --total_kimg 2
  sparse-jax-train-stylegan --recipe shipped_mnist --data ../shared/data/mnist.npz \
      --workdir runs/shipped --export runs/shipped/generator
Re-running the same command resumes from the latest checkpoint in --workdir. The flags' defaults
are the named config `mnist` (the shipped generator's networks and optimisation, TrainConfig's
defaults); `--recipe shipped_mnist` runs all four stages that made the shipped generator
(sparse_jax/assets/generator_mnist/README.md) into WORKDIR/<stage>, each from the last.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Sequence

from sparse_jax.cli import common

PROG = "sparse-jax-train-stylegan"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training run of a recipe: its name (the sub-workdir), length and TrainConfig changes."""

    name: str
    total_kimg: float
    changes: tuple[tuple[str, Any], ...] = ()


def mnist_generator():
    """The shipped MNIST generator's architecture (sparse_jax/assets/generator_mnist)."""
    from sparse_jax.models import stylegan2 as sg

    return sg.GeneratorConfig(z_dim=64, w_dim=64, img_resolution=32, img_channels=1,
                              mapping_layers=2, channel_base=512, channel_max=64)


def mnist_discriminator():
    """Its discriminator (channels follow the generator's x --pack; see `configs`)."""
    from sparse_jax.models import discriminator as disc

    return disc.DiscriminatorConfig(img_resolution=32, img_channels=1, channel_base=512,
                                    channel_max=64, mbstd_group_size=4, mbstd_num_channels=1)


# The recipe of the shipped generator: stage A is TrainConfig's defaults (PacGAN-4, R1 0.01),
# then top-k training and a longer EMA (sparse_jax/assets/generator_mnist/README.md).
RECIPES: dict[str, tuple[Stage, ...]] = {
    "shipped_mnist": (
        Stage("A", 1198.4),
        Stage("T1", 1542.4, (("g_topk", 0.5),)),
        Stage("T3", 1766.4, (("g_topk", 0.75),)),
        Stage("T5", 1942.4, (("g_topk", 0.75), ("ema_kimg", 100.0))),
    ),
}
HELP = {
    "img_resolution": "image resolution (a power of two)",
    "img_channels": "image channels",
    "channel_base": "generator channels at resolution r: min(base // r, max)",
    "channel_max": "maximum generator channels per layer",
    "mapping_layers": "mapping network depth",
    "channel_base_d": "discriminator channel_base",
    "batch": "minibatch size (a multiple of --pack and of the mbstd group)",
    "pack": "PacGAN (Lin et al. 2018): the discriminator judges this many samples at once, "
            "stacked as channels (4 made the shipped model; with 1 it collapsed to one digit)",
    "g_topk": "top-k training (Sinha et al. 2020): the G loss uses only this fraction of D's "
              "decisions on fakes, the most realistic ones (1 = plain StyleGAN2)",
    "r1_gamma": "R1 weight gamma",
    "ema_kimg": "EMA generator half-life in thousand images",
    "style_mixing_prob": "style-mixing regularisation probability",
    "seed": "PRNG seed",
    "minutes": "stop after this many minutes (this invocation; default: no limit)",
    "checkpoint_minutes": "minutes between checkpoints",
    "sample_every": "iterations between sample grids",
    "log_every": "iterations between log lines",
    "export_dir": "write the EMA generator here at the end",
    "init_from": "start a new --workdir from another run's latest checkpoint (same networks; "
                 "optimisation flags may differ; ignored when resuming)",
}
G_SKIP = ("c_dim", "embed_features", "layer_features", "conv_clamp")
G_RENAME = {"img_resolution": "resolution", "img_channels": "channels"}
D_SKIP = ("img_resolution", "img_channels")
TRAIN_SKIP = ("data", "workdir", "total_kimg", "log")


def build_parser() -> argparse.ArgumentParser:
    from sparse_jax.training import train_gan

    p = common.new_parser(PROG, __doc__)
    p.add_argument("--data", required=True, help="training images: an .npz (x_train), a folder "
                   "of MNIST IDX files, or 'sklearn_digits'")
    p.add_argument("--workdir", required=True, help="checkpoints, samples and logs")
    p.add_argument("--total_kimg", type=float, default=None,
                   help="stop after this many thousand images (default: 300; a --recipe sets it "
                        "per stage)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                   help="run every stage of a named recipe into WORKDIR/<stage>")
    g = p.add_argument_group("generator (defaults: the shipped MNIST generator)")
    gen = common.add_fields(g, mnist_generator(), help=HELP, rename=G_RENAME, skip=G_SKIP)
    d = p.add_argument_group("discriminator")
    dis = common.add_fields(d, mnist_discriminator(), prefix="d_", skip=D_SKIP)
    t = p.add_argument_group("optimisation (defaults: TrainConfig, the shipped recipe)")
    opt = common.add_fields(t, train_gan.TrainConfig, help=HELP)
    run = common.add_fields(p, train_gan.train, help=HELP, rename={"export_dir": "export"},
                            skip=TRAIN_SKIP)
    p.set_defaults(_gen=gen, _dis=dis, _opt=opt, _run=run)
    common.add_common(p, multihost=False)
    return p


def configs(ns: argparse.Namespace):
    """(GeneratorConfig, DiscriminatorConfig, TrainConfig) of the flags."""
    from sparse_jax.training import train_gan

    try:
        gcfg = dataclasses.replace(mnist_generator(), **common.values_of(ns, ns._gen))
        tcfg = dataclasses.replace(train_gan.TrainConfig(), **common.values_of(ns, ns._opt))
        dcfg = dataclasses.replace(mnist_discriminator(), **common.values_of(ns, ns._dis),
                                   img_resolution=gcfg.img_resolution,
                                   img_channels=gcfg.img_channels * tcfg.pack)
    except (ValueError, TypeError) as e:
        raise common.UserError(f"--batch/--pack/network flags: {e}") from None
    return gcfg, dcfg, tcfg


def stages(ns: argparse.Namespace, tcfg) -> list[tuple[str, Any, float, str | None]]:
    """[(workdir, TrainConfig, total_kimg, init_from)] of the run."""
    if ns.recipe is None:
        total = 300.0 if ns.total_kimg is None else ns.total_kimg
        return [(ns.workdir, tcfg, total, getattr(ns, "init_from", None))]
    if ns.total_kimg is not None or getattr(ns, "init_from", None):
        raise common.UserError(f"--recipe {ns.recipe} sets --total_kimg and --init_from per stage;"
                               " leave them out")
    out, prev = [], None
    for st in RECIPES[ns.recipe]:
        workdir = os.path.join(ns.workdir, st.name)
        out.append((workdir, dataclasses.replace(tcfg, **dict(st.changes)), st.total_kimg, prev))
        prev = workdir
    return out


def _body(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> int:
    from sparse_jax.training import train_gan

    if ns.data != "sklearn_digits" and not os.path.exists(ns.data):
        raise common.UserError(f"--data {ns.data}: no such file or folder")
    gcfg, dcfg, tcfg = configs(ns)
    run = common.values_of(ns, ns._run)
    export = run.pop("export_dir", None)
    run.pop("init_from", None)
    if export:
        common.check_output_parent(export, "--export")
    plan = stages(ns, tcfg)
    for i, (workdir, cfg, total, init_from) in enumerate(plan):
        if len(plan) > 1:
            print(f"stage {i + 1}/{len(plan)}: {workdir} to {total} kimg", flush=True)
        train_gan.train(gcfg, dcfg, cfg, data=ns.data, workdir=workdir, total_kimg=total,
                        init_from=init_from, export_dir=export if i == len(plan) - 1 else None,
                        log=lambda s: print(s, flush=True), **run)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return common.run_command(PROG, build_parser, _body, argv)
