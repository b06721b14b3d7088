#!/usr/bin/env python3
"""Generator throughput (images/s), batch 8, fp32, noise 'const', random weights.

  python bench/generator.py                 # FFHQ-256 and FFHQ-1024 shapes
  python bench/generator.py --shapes 256 --repeats 5
  python bench/generator.py --stylegan1     # StyleGAN v1 FFHQ-1024 shape instead

NVIDIA's stylegan2-ada-pytorch generator is not part of the project, so its figures are quoted,
from the foundation issue (#13): measured interleaved with sparse_jax in one process on this
2-core CPU class, same weights, batch 8, fp32, load < 2.5: 1.88 img/s at FFHQ-256 and 0.376 img/s
at FFHQ-1024 (non-fused; torch.compile gave 2.99 and 0.404). NVIDIA's TF graph
of the StyleGAN v1 FFHQ-1024 shape (TensorFlow 2.15 CPU, median of 3 batches of 8 after a
warm-up) is quoted from the TF-checkpoint issue: 0.73 img/s.
"""
import argparse
import functools
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from sparse_jax.models import stylegan1 as sg1  # noqa: E402
from sparse_jax.models import stylegan2 as sg  # noqa: E402

SHAPES = {
    256: dict(img_resolution=256, channel_base=16384, channel_max=512),
    1024: dict(img_resolution=1024, channel_base=32768, channel_max=512),
}
QUOTED_TORCH = {256: 1.88, 1024: 0.376}  # quoted, issue #13 (see the docstring)
QUOTED_TORCH_COMPILE = {256: 2.99, 1024: 0.404}  # quoted, issue #13: torch.compile, non-fused
QUOTED_TF_SG1 = 0.73  # NVIDIA's StyleGAN v1 TF graph, FFHQ-1024 shape, 2-core CPU


def _time_generator(gen, variables, z_dim: int, batch: int, repeats: int) -> dict:
    """First call (compiles) and the median of `repeats` timed batches of jitted gen(v, z)."""
    z = jax.random.normal(jax.random.key(1), (batch, z_dim))
    t0 = time.perf_counter()
    gen(variables, z).block_until_ready()
    first = time.perf_counter() - t0
    times, cpu = [], []
    for i in range(repeats):
        z = jax.random.normal(jax.random.key(2 + i), (batch, z_dim))
        t0, c0 = time.perf_counter(), time.process_time()
        jnp.asarray(gen(variables, z)).block_until_ready()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    return dict(first_call_s=first, median_s=med, img_per_s=batch / med,
                cpu_s_per_img=statistics.median(cpu) / batch)


def bench(res: int, batch: int, repeats: int) -> dict:
    cfg = sg.GeneratorConfig(z_dim=512, w_dim=512, img_channels=3, mapping_layers=8,
                             conv_clamp=256.0, **SHAPES[res])
    variables = sg.init_generator(jax.random.key(0), cfg)
    gen = jax.jit(functools.partial(sg.generate, cfg, noise_mode="const"))
    return dict(res=res, params=sg.num_params(variables),
                **_time_generator(gen, variables, cfg.z_dim, batch, repeats))


def bench_stylegan1(batch: int, repeats: int, conv_impl: str = "xla") -> dict:
    """StyleGAN v1 FFHQ-1024 shape (NVIDIA's G_style defaults: latent 512, fmap_base 8192,
    fmap_max 512, 18 ws, fused up-convs from 128 px), random weights, noise 'const'."""
    cfg = sg1.GeneratorConfig(z_dim=512, w_dim=512, img_resolution=1024, img_channels=3,
                              mapping_layers=8, fmap_base=8192, fmap_max=512)
    assert cfg.num_ws == 18
    variables = sg1.init_generator(jax.random.key(0), cfg)
    gen = jax.jit(lambda v, z: sg1.synthesize(
        cfg, v, sg1.map_latents(cfg, v, z, truncation_psi=0.7, truncation_cutoff=8),
        noise_mode="const", conv_impl=conv_impl))
    return dict(params=sg1.num_params(variables),
                **_time_generator(gen, variables, cfg.z_dim, batch, repeats))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", default="256,1024")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--stylegan1", action="store_true",
                    help="time the StyleGAN v1 FFHQ-1024 shape (vs NVIDIA's TF graph, quoted)")
    ap.add_argument("--conv_impl", default="xla", help="StyleGAN v1 only: xla or matmul")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if args.stylegan1:
        r = bench_stylegan1(args.batch, args.repeats, args.conv_impl)
        print("| shape | params | first call (s) | median batch time (s) | img/s | CPU s/img | "
              "NVIDIA TF img/s (quoted) | ratio (img/s) |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| StyleGAN v1 FFHQ-1024 | {r['params'] / 1e6:.1f}M | {r['first_call_s']:.1f} | "
              f"{r['median_s']:.2f} | {r['img_per_s']:.2f} | {r['cpu_s_per_img']:.2f} | "
              f"{QUOTED_TF_SG1} | {r['img_per_s'] / QUOTED_TF_SG1:.2f}x |", flush=True)
        # img/s is wall-clock: on a shared machine compare the load averages too.
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
    print("| shape | params | first call (s) | median batch time (s) | img/s | CPU s/img | "
          "NVIDIA torch img/s (quoted) | ratio | torch.compile (quoted) | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for res in [int(s) for s in args.shapes.split(",")]:
        r = bench(res, args.batch, args.repeats)
        q = QUOTED_TORCH.get(res)
        print(f"| FFHQ-{res} | {r['params'] / 1e6:.1f}M | {r['first_call_s']:.1f} | "
              f"{r['median_s']:.2f} | {r['img_per_s']:.2f} | {r['cpu_s_per_img']:.2f} | {q} | "
              f"{r['img_per_s'] / q:.2f}x | {QUOTED_TORCH_COMPILE[res]} | "
              f"{r['img_per_s'] / QUOTED_TORCH_COMPILE[res]:.2f}x |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
