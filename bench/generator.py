#!/usr/bin/env python3
"""Generator throughput (images/s), batch 8, fp32, noise 'const', random weights.

  python bench/generator.py                 # FFHQ-256 and FFHQ-1024 shapes
  python bench/generator.py --shapes 256 --repeats 5

The official PyTorch generator on the 2-core CPU (batch 8, 2 threads, fp32) is quoted from the
issue that asked for this benchmark: 2.5 img/s at 256 and 0.37 img/s at 1024.
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

from sparse_jax.models import stylegan2 as sg  # noqa: E402

SHAPES = {
    256: dict(img_resolution=256, channel_base=16384, channel_max=512),
    1024: dict(img_resolution=1024, channel_base=32768, channel_max=512),
}
QUOTED_TORCH = {256: 2.5, 1024: 0.37}


def bench(res: int, batch: int, repeats: int) -> dict:
    cfg = sg.GeneratorConfig(z_dim=512, w_dim=512, img_channels=3, mapping_layers=8,
                             conv_clamp=256.0, **SHAPES[res])
    variables = sg.init_generator(jax.random.key(0), cfg)
    gen = jax.jit(functools.partial(sg.generate, cfg, noise_mode="const"))
    z = jax.random.normal(jax.random.key(1), (batch, cfg.z_dim))
    t0 = time.perf_counter()
    gen(variables, z).block_until_ready()
    first = time.perf_counter() - t0
    times, cpu = [], []
    for i in range(repeats):
        z = jax.random.normal(jax.random.key(2 + i), (batch, cfg.z_dim))
        t0, c0 = time.perf_counter(), time.process_time()
        jnp.asarray(gen(variables, z)).block_until_ready()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    med = statistics.median(times)
    return dict(res=res, first_call_s=first, median_s=med, img_per_s=batch / med,
                cpu_s_per_img=statistics.median(cpu) / batch, params=sg.num_params(variables))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", default="256,1024")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| shape | params | first call (s) | median batch time (s) | img/s | CPU s/img | "
          "official torch img/s (quoted) | ratio (img/s) |")
    print("|---|---|---|---|---|---|---|---|")
    for res in [int(s) for s in args.shapes.split(",")]:
        r = bench(res, args.batch, args.repeats)
        q = QUOTED_TORCH.get(res)
        print(f"| FFHQ-{res} | {r['params'] / 1e6:.1f}M | {r['first_call_s']:.1f} | "
              f"{r['median_s']:.2f} | {r['img_per_s']:.2f} | {r['cpu_s_per_img']:.2f} | {q} | "
              f"{r['img_per_s'] / q:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
