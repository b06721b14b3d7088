"""Slider -> image latency of the explorer (one POST /api/render, as the page sends on a move).

  python bench/explorer_latency.py --inputs runs/dirs/directions_sca.npz [--generator G] [--n 30]
Prints the median and 90th percentile over --n slider positions after one warm-up request
(which compiles); the page's budget on CPU for the embedded model is ~200 ms.
"""
import argparse
import json
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from sparse_jax.explorer import engine, server  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--generator", default=None)
    p.add_argument("--n", type=int, default=30)
    args = p.parse_args()
    ex = engine.Explorer(args.generator, args.inputs)
    httpd = server.serve(ex, "/tmp/explorer_bench_exports", port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/api/render"

    def post(sigma):
        body = json.dumps({"seed": 0, "psi": 1.0, "sliders": [
            {"set": 0, "index": 0, "sigma": sigma, "start": 0, "end": ex.cfg.num_ws}]}).encode()
        t0 = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, data=body)) as r:
            json.load(r)
        return time.perf_counter() - t0

    first = post(0.0)
    times = [post(s) for s in np.linspace(-10, 10, args.n)]
    ms = np.array(times) * 1000
    print(f"generator {ex.cfg.img_resolution}px w_dim {ex.cfg.w_dim}; first request (compile) "
          f"{first * 1000:.0f} ms; slider -> image over {args.n} moves: median "
          f"{np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms; load "
          f"{os.getloadavg()[0]:.2f}")
    httpd.shutdown()


if __name__ == "__main__":
    main()
