"""Benchmark of the discovery pipeline: seconds and peak RSS versus the number of samples n.

Each n runs in its own subprocess so that its peak RSS (ru_maxrss) is its own; memory should grow
only by the kept n x p features and n x w_dim latents, never with activations.

    nice -n 10 python bench/discover.py                       # n = 2000, 10000 (random weights)
    nice -n 10 python bench/discover.py --sizes 500,1000 --channel_base 2048 --channel_max 64
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _child(args: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    import jax

    from sparse_jax.discovery import features
    from sparse_jax.discovery import run as discover
    from sparse_jax.models import stylegan2 as sg

    cfg = sg.GeneratorConfig(z_dim=args.w_dim, w_dim=args.w_dim, img_resolution=args.res,
                             mapping_layers=8, channel_base=args.channel_base,
                             channel_max=args.channel_max)
    variables = jax.jit(sg.init_generator, static_argnums=1)(jax.random.key(0), cfg)
    jax.block_until_ready(variables)
    rss_init = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    result = discover.run_discovery(cfg, variables, methods=args.methods, num_samples=args.n,
                                    k=args.k, batch=args.batch, seed=0, progress=False)
    total = time.perf_counter() - t0
    layers = features.default_layers(cfg)
    acts_bytes = sum(cfg.channels(int(name.split(".")[1][1:])) * int(name.split(".")[1][1:]) ** 2
                     for name in layers) * 4
    print(json.dumps({
        "n": args.n,
        "p": result.summary["feature_dim"],
        "seconds_total": total,
        "seconds": result.summary["seconds"],
        "seconds_startup": t0 - t_start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_init_mb": rss_init,
        "kept_mb": (result.fit.x.nbytes + result.fit.w.nbytes) * 2 / 2**20,
        "all_activations_mb": 2 * args.n * acts_bytes / 2**20,
        "layers": list(layers),
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,10000", help="comma list of n")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--channel_base", type=int, default=4096)
    ap.add_argument("--channel_max", type=int, default=128)
    ap.add_argument("--w_dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--methods", default="pca-w,pca,sefa,sca,sca-w")
    ap.add_argument("--repeats", type=int, default=1, help="runs per n (median reported)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        runs = []
        for _ in range(args.repeats):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--n", str(n)]
            for name in ("res", "channel_base", "channel_max", "w_dim", "k", "batch", "methods"):
                cmd += [f"--{name}", str(getattr(args, name))]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                 env={**os.environ, "JAX_PLATFORMS": "cpu"})
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"# n={n}: {runs[-1]}", file=sys.stderr, flush=True)
        runs.sort(key=lambda r: r["seconds_total"])
        rows.append(runs[len(runs) // 2])

    base = rows[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; "
          f"StyleGAN2 {args.res}x{args.res}, channel_base {args.channel_base}, channel_max "
          f"{args.channel_max}, w_dim {args.w_dim}, random weights; layers {base['layers']} "
          f"(global max pool, p={base['p']}); k={args.k}, batch {args.batch}, methods "
          f"{args.methods}; median of {args.repeats} run(s)\n")
    print("| n | fit samples s | regression samples s | decompositions s | total s | "
          "peak RSS MB | kept n x (p + w_dim) MB | all activations would be MB | "
          "total / n=%d | RSS / n=%d |" % (base["n"], base["n"]))
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["seconds"]
        decomp = sum(v for k, v in s.items() if k not in ("fit_samples", "regression_samples"))
        print(f"| {r['n']} | {s['fit_samples']:.1f} | {s.get('regression_samples', 0):.1f} | "
              f"{decomp:.1f} | {r['seconds_total']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{r['kept_mb']:.1f} | {r['all_activations_mb']:.0f} | "
              f"{r['seconds_total'] / base['seconds_total']:.2f} | "
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:.2f} |")


if __name__ == "__main__":
    main()
