"""Slider -> new image latency of the explorer's Gradio page.

  python bench/explorer_latency.py --inputs runs/dirs/directions_sca.npz [--generator G] [--n 40]
Times a slider move two ways, each as the median and 90th percentile over --n positions after one
warm-up move (which compiles):
  handler: the page's event handler (`Page.render`: edit, synthesis, classifier, bars HTML),
           called in process;
  http:    the round trip through Gradio's HTTP API on 127.0.0.1 with gradio_client (queue, SSE,
           the PNG written to Gradio's cache and downloaded);
  browser: (--browser, needs /usr/bin/chromium + chromedriver) in headless chromium, from setting
           the slider to the new image loaded in the page (timed in the page with
           performance.now()).
The page's budget on CPU for the embedded model is ~200 ms. Prints the machine and its load.
"""
import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from sparse_jax.explorer import app, engine  # noqa: E402


def _stats(name, seconds):
    ms = np.asarray(seconds) * 1000
    return f"{name}: median {np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms"


# Sets the first slider, then resolves once #img0 shows a new, fully loaded image.
_MOVE_JS = """
const [value, done] = arguments;
const s = document.querySelector('#s_0_0 input[type=range]');
const img = () => document.querySelector('#img0 img');
const before = img() ? img().src : '';
const t0 = performance.now();
Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(s, value);
s.dispatchEvent(new Event('input', {bubbles: true}));
s.dispatchEvent(new Event('change', {bubbles: true}));
(function poll() {
  const i = img();
  if (i && i.src !== before && i.complete && i.naturalWidth) done(performance.now() - t0);
  else requestAnimationFrame(poll);
})();
"""


def _browser(url, sigmas):
    import shutil
    import tempfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.set_script_timeout(60)
        driver.get(url)
        for _ in range(600):
            if driver.execute_script("return !!document.querySelector('#img0 img')"):
                break
            time.sleep(0.1)
        driver.execute_async_script(_MOVE_JS, 0.5)  # warm-up
        return [driver.execute_async_script(_MOVE_JS, float(s)) / 1000 for s in sigmas]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--generator", default=None)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--compare", action="store_true", help="side by side on (two images a move)")
    p.add_argument("--nohttp", action="store_true", help="only the in-process handler")
    p.add_argument("--browser", action="store_true", help="also time moves in headless chromium")
    args = p.parse_args()
    ex = engine.Explorer(args.generator, args.inputs)
    page = app.Page(ex, "/tmp/explorer_bench_exports")
    compare = 1 if args.compare and len(ex.sets) > 1 else -1
    num_ws = ex.cfg.num_ws

    def values(sigma):
        v = [0.0, 0, num_ws] * len(page.sliders)
        v[0] = float(sigma)  # the first direction's slider
        return v

    sigmas = np.round(np.linspace(-10, 10, args.n), 1)
    t0 = time.perf_counter()
    page.render(0, 1.0, compare, *values(0.5))
    first = time.perf_counter() - t0
    handler = []
    for s in sigmas:
        t0 = time.perf_counter()
        page.render(0, 1.0, compare, *values(s))
        handler.append(time.perf_counter() - t0)
    lines = [f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load "
             f"{os.getloadavg()[0]:.2f}; generator {ex.cfg.img_resolution}px w_dim "
             f"{ex.cfg.w_dim}, {len(page.sliders)} sliders, side by side "
             f"{'on' if compare >= 0 else 'off'}",
             f"first move (compiles): {first * 1000:.0f} ms",
             _stats(f"handler in process over {args.n} moves", handler)]
    if not args.nohttp:
        from gradio_client import Client

        demo = page.build()
        _, url, _ = app.launch(demo, None, page.export_dir, block=False)
        try:
            client = Client(url, verbose=False)
            client.predict(0, 1.0, compare, *values(0.5), api_name="/render")
            http = []
            for s in sigmas:
                t0 = time.perf_counter()
                client.predict(0, 1.0, compare, *values(s), api_name="/render")
                http.append(time.perf_counter() - t0)
            lines.append(_stats(f"HTTP round trip (gradio_client) over {args.n} moves", http))
            if args.browser:
                lines.append(_stats(f"browser, slider set -> new image loaded, over {args.n} "
                                    "moves", _browser(url, sigmas)))
        finally:
            demo.close()
    lines.append(f"load after: {os.getloadavg()[0]:.2f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
