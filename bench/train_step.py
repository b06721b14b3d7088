#!/usr/bin/env python3
"""GAN training throughput (images/s) of the embedded MNIST recipe, per convolution implementation.

  python bench/train_step.py                     # both conv_impl values, 5 repeats of 32 iterations
  python bench/train_step.py --impls matmul --iterations 50

One iteration is what `bin/train_stylegan.py` runs per minibatch: a G step, a D step, and the lazy
R1 step every `d_reg_interval` iterations. The generator has the shipped model's configuration
(read from its config.json), the discriminator the one it was trained with (PacGAN-4, channel_base
512, channel_max 64); weights and images are random (the time does not depend on the values).
The baseline is conv_impl 'xla' (XLA's own convolutions), measured in the same run.
"""
import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from sparse_jax.io import model_dirs  # noqa: E402
from sparse_jax.models import conv_ops  # noqa: E402
from sparse_jax.models import discriminator as disc  # noqa: E402
from sparse_jax.models import stylegan2 as sg  # noqa: E402
from sparse_jax.training import train_gan as tg  # noqa: E402


def bench(conv_impl: str, batch: int, iterations: int, repeats: int) -> dict:
    meta = model_dirs.read_model_config(model_dirs.default_generator_path(),
                                         model_dirs.GENERATOR_FORMAT)
    gcfg = sg.GeneratorConfig.from_dict(meta["config"])
    tcfg = tg.TrainConfig(batch=batch, pack=4)
    dcfg = disc.DiscriminatorConfig(gcfg.img_resolution, gcfg.img_channels * tcfg.pack, 512, 64)
    state = tg.init_state(jax.random.key(0), gcfg, dcfg, tcfg)
    images = jax.random.uniform(jax.random.key(1), (1000, gcfg.img_channels, gcfg.img_resolution,
                                                      gcfg.img_resolution), minval=-1, maxval=1)
    steps = tg.make_steps(gcfg, dcfg, tcfg, conv_impl)
    loop_key = jax.random.key(2)
    t0 = time.perf_counter()
    state, _ = tg.run_iterations(steps, tcfg, state, images, loop_key, tcfg.d_reg_interval)
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, _ = tg.run_iterations(steps, tcfg, state, images, loop_key, iterations)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return dict(conv_impl=conv_impl, compile_and_first_s=first, median_s=med,
                img_per_s=iterations * batch / med)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--impls", default=",".join(conv_ops.CONV_IMPLS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    print(f"command: python bench/train_step.py --impls {args.impls} --batch {args.batch} "
          f"--iterations {args.iterations} --repeats {args.repeats}")
    rows = [bench(impl, args.batch, args.iterations, args.repeats)
            for impl in args.impls.split(",")]
    base = next((r for r in rows if r["conv_impl"] == "xla"), None)
    print(f"\n| conv_impl | compile + first {tg.TrainConfig().d_reg_interval} iterations (s) | "
          f"median of {args.repeats} x {args.iterations} iterations (s) | img/s | vs xla |")
    print("|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['img_per_s'] / base['img_per_s']:.2f}x" if base else "n/a"
        print(f"| {r['conv_impl']} | {r['compile_and_first_s']:.1f} | {r['median_s']:.2f} | "
              f"{r['img_per_s']:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
