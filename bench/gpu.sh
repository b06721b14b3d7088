#!/usr/bin/env bash
# One prepared benchmark for a machine with an NVIDIA GPU (sized to finish in < 8 minutes on
# one H200-class GPU): prints markdown rows for docs/benchmarks.md with the device named.
#
#   bash bench/gpu.sh                      # on the GPU machine (JAX CUDA build installed)
#   bash bench/gpu.sh --out gpu_rows.md    # also write the rows to a file
#   bash bench/gpu.sh --smoke              # tiny sizes, runs on CPU (tests/test_gpu_script.py)
#
# Sections (each prints its wall time to stderr as it goes):
#   1. generator: StyleGAN2 at the FFHQ-256 and FFHQ-1024 shapes (random weights, noise 'const'),
#      batch 32, fp32 and bf16 compute (weights and latents cast to bfloat16), median of 5
#      batches after a compile + warm-up call;
#   2. features + SCA: n = 100,000 max-pooled samples of a 512-channel layer (p = 512) of the
#      FFHQ-256-shape generator (sparse_jax.discovery.features), then SCA (k = 20, 80% zero
#      loadings: the gamma search included) and PCA on them;
#   3. the main job at the paper's sizes (bin/run_paper.py --paper_scale: 10,000 samples, k = 20,
#      100 + 500 seeds, 11 distances) on the embedded MNIST models.
# Environment: PYTHON (default python3). Exit status 1 when no GPU is found (unless --smoke or
# --allow_cpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SPARSE_JAX_ROOT="$ROOT"
exec "${PYTHON:-python3}" - "$@" <<'PY'
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.environ["SPARSE_JAX_ROOT"]
sys.path.insert(0, ROOT)

ap = argparse.ArgumentParser(prog="bench/gpu.sh")
ap.add_argument("--smoke", action="store_true", help="tiny sizes (CPU, tests)")
ap.add_argument("--allow_cpu", action="store_true", help="run the full sizes without a GPU")
ap.add_argument("--out", default=None, help="also write the markdown to this file")
ap.add_argument("--skip", default="", help="comma list of sections to skip: gen,sca,paper")
args = ap.parse_args()
skip = {s.strip() for s in args.skip.split(",") if s.strip()}
bad = skip - {"gen", "sca", "paper"}
if bad:
    sys.exit(f"bench/gpu.sh: error: --skip takes gen, sca, paper; got {sorted(bad)}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

dev = jax.devices()[0]
if dev.platform != "gpu" and not (args.smoke or args.allow_cpu):
    sys.exit(f"bench/gpu.sh: error: no GPU (JAX sees {dev.platform}: {dev.device_kind}); "
             "install a CUDA build of JAX, or pass --smoke / --allow_cpu")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def device_name():
    name = f"{jax.device_count()} x {dev.device_kind} ({dev.platform})"
    if dev.platform == "gpu":
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                                  "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=20).stdout.strip().splitlines()
            if smi:
                name += f"; nvidia-smi: {smi[0]}"
        except (OSError, subprocess.SubprocessError):
            pass
    return name


def commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=20).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


from sparse_jax.core import seeds  # noqa: E402
from sparse_jax.decompose import pca, sca  # noqa: E402
from sparse_jax.discovery import features  # noqa: E402
from sparse_jax.models import stylegan2 as sg  # noqa: E402

if args.smoke:
    SHAPES = {"FFHQ-256 shape (smoke: 32 px)": dict(img_resolution=32, channel_base=256,
                                                     channel_max=16, z_dim=16, w_dim=16,
                                                     mapping_layers=2)}
    GEN_BATCH, GEN_REPEATS = 2, 2
    FEAT = dict(n=256, batch=64, layer="b8.conv1", k=4, shape=next(iter(SHAPES.values())))
else:
    SHAPES = {"FFHQ-256 shape": dict(img_resolution=256, channel_base=16384, channel_max=512,
                                     z_dim=512, w_dim=512, mapping_layers=8),
              "FFHQ-1024 shape": dict(img_resolution=1024, channel_base=32768, channel_max=512,
                                      z_dim=512, w_dim=512, mapping_layers=8)}
    GEN_BATCH, GEN_REPEATS = 32, 5
    FEAT = dict(n=100_000, batch=2000, layer="b32.conv1", k=20,
                shape=SHAPES["FFHQ-256 shape"])

rows = []
t_start = time.perf_counter()


def timed(fn, *a):
    t0 = time.perf_counter()
    out = fn(*a)
    jax.block_until_ready(out)
    return time.perf_counter() - t0, out


def to_bf16(tree):
    return jax.tree_util.tree_map(
        lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


# 1. Generator throughput --------------------------------------------------------------------
if "gen" not in skip:
    for label, shape in SHAPES.items():
        cfg = sg.GeneratorConfig(img_channels=3, conv_clamp=256.0, **shape)
        variables = sg.init_generator(jax.random.key(0), cfg)
        gen = jax.jit(lambda v, z, cfg=cfg: sg.generate(cfg, v, z, noise_mode="const"))
        for dtype in ("fp32", "bf16"):
            v = variables if dtype == "fp32" else to_bf16(variables)
            cast = (lambda z: z) if dtype == "fp32" else (lambda z: z.astype(jnp.bfloat16))
            key = seeds.stream_key(0, seeds.IMAGE_STREAM)
            zs = [cast(seeds.latents(key, jnp.arange(i * GEN_BATCH, (i + 1) * GEN_BATCH),
                                     cfg.z_dim)) for i in range(GEN_REPEATS + 1)]
            first, img = timed(gen, v, zs[0])
            times = [timed(gen, v, z)[0] for z in zs[1:]]
            med = statistics.median(times)
            ok = bool(jnp.all(jnp.isfinite(img)))
            log(f"generator {label} {dtype}: compile+first {first:.1f} s, median {med:.4f} s")
            rows.append(f"| generator | {label} | {dtype} | {GEN_BATCH} | "
                        f"{GEN_BATCH / med:.1f} img/s (median of {len(times)} batches; first "
                        f"call with compile {first:.1f} s{'' if ok else '; NON-FINITE OUTPUT'}) |")
        del variables, gen

# 2. Features + SCA at n = 100,000 -----------------------------------------------------------
if "sca" not in skip:
    cfg = sg.GeneratorConfig(img_channels=3, conv_clamp=256.0, **FEAT["shape"])
    variables = sg.init_generator(jax.random.key(0), cfg)
    t0 = time.perf_counter()
    f = features.sample_features(cfg, variables, seeds.stream_key(0, seeds.FIT_STREAM),
                                 FEAT["n"], layers=FEAT["layer"], batch_size=FEAT["batch"],
                                 progress=False)
    t_feat = time.perf_counter() - t0
    n, p = f.x.shape
    log(f"features: [{n}, {p}] in {t_feat:.1f} s")
    rows.append(f"| features | {n:,} samples, {FEAT['layer']} max-pooled (p = {p}) | fp32 | "
                f"{FEAT['batch']} | {t_feat:.1f} s ({n / t_feat:,.0f} samples/s, compile "
                "included) |")
    x = jax.device_put(f.x)
    t_pca, _ = timed(lambda a: pca(a, FEAT["k"]), x)
    rows.append(f"| PCA | [{n:,}, {p}], k = {FEAT['k']} | fp32 | - | {t_pca:.2f} s "
                "(compile included) |")
    t_sca, r = timed(lambda a: sca(a, FEAT["k"], target_sparsity=0.8, rotate_z=False), x)
    sparsity = float(np.mean(np.asarray(r.loadings) == 0.0))
    log(f"SCA: {t_sca:.1f} s, {r.n_iter} iterations, sparsity {sparsity:.2f}")
    rows.append(f"| SCA | [{n:,}, {p}], k = {FEAT['k']}, 80% zero loadings (gamma search) | "
                f"fp32 | - | {t_sca:.2f} s (compile included; {int(r.n_iter)} sweeps, "
                f"sparsity {sparsity:.2f}, converged {bool(r.converged)}) |")
    del variables, f, x

# 3. The main job ----------------------------------------------------------------------------
if "paper" not in skip:
    from sparse_jax.pipeline import paper

    # Smoke: the smallest run that passes every stage (no activation method, whose regression
    # draws GANSpace's 10,000 fresh samples).
    sizes = (paper.PaperSizes(num_samples=64, k=2, num_assign_seeds=4, num_eval_seeds=4,
                              num_distances=2, d_max_samples=64)
             if args.smoke else paper.PaperSizes.paper())
    methods = "pca-w,sefa" if args.smoke else None
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run = paper.run_paper(out, sizes=sizes, methods=methods, progress=False,
                              log=lambda m: log(m.splitlines()[0] if m else m))
        t_paper = time.perf_counter() - t0
    label = "smoke sizes, pca-w + sefa" if args.smoke else "paper sizes (--paper_scale)"
    rows.append(f"| main job | {label}: {sizes.num_samples:,} samples, k = {sizes.k}, "
                f"{sizes.num_assign_seeds} + {sizes.num_eval_seeds} seeds, "
                f"{sizes.num_distances} distances | fp32 | 256 | {t_paper:.0f} s "
                f"(discovery {run['seconds']['discovery']:.0f} s) |")

total = time.perf_counter() - t_start
header = [
    f"GPU benchmark (`bash bench/gpu.sh{' --smoke' if args.smoke else ''}`), "
    f"{datetime.date.today().isoformat()}, commit {commit()}, device: {device_name()}, "
    f"jax {jax.__version__}, host {platform.node()} ({os.cpu_count()} CPUs), "
    f"total {total:.0f} s.",
    "",
    "| stage | shape | compute | batch | result |",
    "|---|---|---|---|---|",
]
text = "\n".join(header + rows) + "\n"
print(text, end="")
if args.out:
    with open(args.out, "w") as fh:
        fh.write(text)
PY
