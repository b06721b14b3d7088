"""Conversion time and peak memory of a full-size StyleGAN v1 TF pickle (FFHQ-1024 shape).

Writes `karras2019stylegan-ffhq-1024x1024`-shaped networks (G, D stand-in, Gs: NVIDIA's G_style
variable names and shapes, latent 512, fmap_base 8192, fmap_max 512, 18 ws, random weights) through
the project's own test writer of the format, then converts the file with `bin/convert.py` in a
child process, several times, and reports the wall time and the child's peak RSS (ru_maxrss).

  python bench/convert_tf.py --repeats 3
"""
import argparse
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import numpy as np  # noqa: E402
import tf_pickle_writer as tfw  # noqa: E402

KWARGS = dict(resolution=1024, num_channels=3, latent_size=512, dlatent_size=512, fmap_base=8192,
              fmap_decay=1.0, fmap_max=512, mapping_layers=8, mapping_fmaps=512)


def g_style(seed: int) -> tfw.Network:
    """A G_style network (state v3) with NVIDIA's variable names and shapes, random values."""
    rng = np.random.default_rng(seed)
    log2r = int(math.log2(KWARGS["resolution"]))

    def nf(stage):
        return min(int(KWARGS["fmap_base"] / 2.0 ** stage), KWARGS["fmap_max"])

    def rand(*shape):
        return rng.standard_normal(shape, np.float32)

    mapping = []
    for i in range(KWARGS["mapping_layers"]):
        mapping += [(f"Dense{i}/weight", rand(512, 512)), (f"Dense{i}/bias", rand(512))]
    syn = [("lod", np.float32(0))]
    syn += [(f"noise{i}", rand(1, 1, 2 ** (i // 2 + 2), 2 ** (i // 2 + 2)))
            for i in range(2 * log2r - 2)]

    def layer(scope, c, c_in=None):
        out = [(f"{scope}/weight", rand(3, 3, c_in, c))] if c_in else []
        return out + [(f"{scope}/Noise/weight", rand(c)), (f"{scope}/bias", rand(c)),
                      (f"{scope}/StyleMod/weight", rand(512, 2 * c)),
                      (f"{scope}/StyleMod/bias", rand(2 * c))]

    syn += [("4x4/Const/const", rand(1, nf(1), 4, 4))] + layer("4x4/Const", nf(1))
    syn += layer("4x4/Conv", nf(1), nf(1))
    for r in range(3, log2r + 1):
        syn += layer(f"{2**r}x{2**r}/Conv0_up", nf(r - 1), nf(r - 2))
        syn += layer(f"{2**r}x{2**r}/Conv1", nf(r - 1), nf(r - 1))
    for lod in range(log2r - 1):
        c = nf(log2r - lod - 1)
        syn += [(f"ToRGB_lod{lod}/weight", rand(1, 1, c, 3)), (f"ToRGB_lod{lod}/bias", rand(3))]
    comps = {"synthesis": tfw.network("G_synthesis", "G_synthesis", KWARGS, syn, version=3),
             "mapping": tfw.network("G_mapping", "G_mapping", {**KWARGS, "dlatent_broadcast": 18},
                                    mapping, version=3)}
    return tfw.network("Gs", "G_style", KWARGS,
                       [("lod", np.float32(0)), ("dlatent_avg", rand(512))], comps, version=3)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="convert_tf_")
    try:
        pkl = os.path.join(work, "sg1_ffhq1024_random.pkl")
        # G and Gs as NVIDIA's file has them (D omitted: the converter never reads slot 1).
        data = tfw.dumps((g_style(1), g_style(2), g_style(0)), protocol=2)
        with open(pkl, "wb") as f:
            f.write(data)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average before: "
              f"{os.getloadavg()[0]:.2f}")
        print(f"pickle: {len(data) / 2**20:.0f} MiB (G + stand-in D + Gs)")
        times, rss = [], []
        for i in range(args.repeats + 1):
            out = os.path.join(work, f"out{i}")
            t0 = time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            subprocess.run([sys.executable, os.path.join(ROOT, "bin", "convert.py"), "--src", pkl,
                            "--out", out], check=True, stdout=subprocess.DEVNULL)
            elapsed = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            shutil.rmtree(out)
            if i:  # the first run warms the page cache and Python's imports
                times.append(elapsed)
                rss.append(max(peak, before) / 1024)
        print("| file | size MiB | convert wall s (median of "
              f"{args.repeats}) | runs (s) | peak RSS MiB |")
        print("|---|---|---|---|---|")
        print(f"| StyleGAN v1 FFHQ-1024 shape, random weights | {len(data) / 2**20:.0f} | "
              f"{statistics.median(times):.1f} | {', '.join(f'{t:.1f}' for t in times)} | "
              f"{max(rss):.0f} |")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
