"""The explorer: its engine in process, and its Gradio page in a real headless browser (Debian
chromium + chromedriver via Selenium) with the network off.

The browser test runs the page server and the browser inside a fresh network namespace
(`unshare -rn`: only a loopback device, so any request to a CDN or font host fails) when the
machine allows it, and checks through the Performance API and the page's style sheets that every
resource came from the local server. It asserts that the page loads, moving a slider changes the
image, the W distance and the attribute bars, side by side shows a second image, and export writes
the PNG, the ws .npy and a direction file that --inputs reloads as named sliders.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from sparse_jax.explorer import engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
W_DIM = 64       # the shipped MNIST generator's w_dim
NETNS = "SPARSE_JAX_EXPLORER_NETNS"  # set inside the network namespace


def _direction_file(path, seed, k=4):
    rng = np.random.default_rng(seed)
    comp = rng.normal(size=(k, W_DIM))
    comp /= np.linalg.norm(comp, axis=1, keepdims=True)
    np.savez(path, lat_comp=comp.astype(np.float32), lat_stdev=np.full(k, 2.0),
             method=np.asarray(f"toy{seed}"))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("explorer")
    return [_direction_file(str(d / "a.npz"), 0), _direction_file(str(d / "b.npz"), 1)], d


@pytest.fixture(scope="module")
def explorer(files):
    return engine.Explorer(None, files[0])


def test_engine_edits_move_w_and_export_reloads(explorer, tmp_path):
    still = explorer.render(3, 1.0, [])
    moved = explorer.render(3, 1.0, [engine.Slider(0, 1, 3.0, 0, 4)], compare=1)
    assert still["w_distance"] == 0 and moved["w_distance"] == pytest.approx(6.0, rel=1e-5)
    assert moved["w_distance_compare"] == pytest.approx(6.0, rel=1e-5)
    assert len(moved["images"]) == 2 and moved["images"][0].shape == (32, 32, 1)
    assert not np.array_equal(moved["images"][0], still["images"][0])
    assert not np.array_equal(moved["images"][0], moved["images"][1])
    assert set(moved["predictions"][0]) == set(explorer.attributes) == set(moved["base"])
    assert still["predictions"][0] == pytest.approx(still["base"], abs=1e-6)
    # the ws: base + 6 along direction 1 on slots 0-3 only
    base = explorer.base_ws(3)
    delta = moved["ws"] - base
    np.testing.assert_allclose(delta[0, :4], np.repeat(6 * explorer.sets[0]["lat_comp"][1:2], 4,
                                                       0), atol=1e-5)
    assert np.abs(delta[0, 4:]).max() == 0
    # truncation is a traced argument: psi 0 puts every seed on w_avg
    w0 = explorer.base_ws(3, 0.0)
    np.testing.assert_allclose(w0, explorer.base_ws(7, 0.0), atol=1e-6)
    files = explorer.export(str(tmp_path), "e1", 3, 1.0, [engine.Slider(0, 1, 3.0, 0, 4)])
    again = engine.Explorer(None, [files[2]], use_classifier=False)
    s = again.sets[0]
    assert s["name"] == "e1" and s["layer_ranges"] == [[0, 4]] and s["sigmas"] == [3.0]
    assert s["labels"] == ["toy0 d1"]
    np.testing.assert_allclose(s["lat_comp"][0], explorer.sets[0]["lat_comp"][1], atol=1e-6)
    np.testing.assert_allclose(np.load(files[1]), moved["ws"], atol=1e-6)
    reloaded = again.render(3, 1.0, [engine.Slider(0, 0, 3.0, 0, 4)])
    np.testing.assert_allclose(reloaded["ws"], moved["ws"], atol=1e-5)
    for bad, match in [(engine.Slider(0, 0, 11.0), "sigma"), (engine.Slider(0, 9, 1.0), "range"),
                       (engine.Slider(0, 0, 1.0, 5, 2), "layer range")]:
        with pytest.raises(ValueError, match=match):
            explorer.render(0, 1.0, [bad])
    with pytest.raises(ValueError, match="export name"):
        explorer.export(str(tmp_path), "../x", 3, 1.0, [])


def test_page_handler_outputs_and_bars(explorer, tmp_path):
    gr = pytest.importorskip("gradio", reason="gradio not installed (pip install '.[explore]')")
    from sparse_jax.explorer import app

    page = app.Page(explorer, str(tmp_path))
    n = len(page.sliders)
    zero = [0.0, 0, explorer.cfg.num_ws] * n
    img0, img1, wdist, bars = page.render(3, 1.0, -1, *zero)
    assert img0.shape == (32, 32) and img1 is None and wdist == "0.000"
    assert bars.count('class="row"') == len(explorer.attributes)
    moved = list(zero)
    moved[3 * 1] = 6.0  # slider (set 0, direction 1) to +6 sigma
    img0b, img1b, wdist_b, bars_b = page.render(3, 1.0, 1, *moved)
    assert wdist_b == "12.000" and img1b is not None and not np.array_equal(img0, img0b)
    assert bars_b.count('class="row"') == len(explorer.attributes) and bars_b != bars
    assert bars_b.count('class="p p1"') == len(explorer.attributes)
    with pytest.raises(gr.Error, match="sigma"):
        page.render(3, 1.0, -1, *([20.0, 0, 8] + zero[3:]))
    status, paths = page.export("h1", 3, 1.0, -1, *moved)
    assert status.startswith("wrote") and [os.path.basename(p) for p in paths] == [
        "h1.png", "h1_ws.npy", "h1_directions.npz"]


def _netns_works():
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    r = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True)
    return r.returncode == 0


def test_browser_offline(files, tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"no browser: {CHROMIUM} / {DRIVER} not installed (apt-get install "
                    "chromium chromium-driver)")
    pytest.importorskip("gradio", reason="gradio not installed (pip install '.[explore]')")
    pytest.importorskip("selenium", reason="selenium not installed (pip install '.[explore]')")
    if not os.environ.get(NETNS) and _netns_works():
        # Rerun this test in a network namespace with only loopback: the network is really off.
        cmd = (f"ip link set lo up && exec {sys.executable} -m pytest -q -s -p no:cacheprovider "
               f"{os.path.join(ROOT, 'tests', 'test_explorer.py')}::test_browser_offline")
        r = subprocess.run(["unshare", "-rn", "sh", "-c", cmd], cwd=ROOT, text=True,
                           capture_output=True, env={**os.environ, NETNS: "1"}, timeout=600)
        print(r.stdout[-3000:], r.stderr[-3000:])
        assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
        return
    if os.environ.get(NETNS):
        with pytest.raises(OSError):  # no route out of the namespace
            socket.create_connection(("1.1.1.1", 80), timeout=3)
        print("network namespace: only loopback")
    else:
        print("no network namespace here (unshare -rn unavailable): resources checked only")
    _drive_browser(files[0], tmp_path)


def _driver(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=1400,1150"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


# Every resource, style sheet, @import and @font-face source of the page, as absolute URLs.
_RESOURCES_JS = """
const out = performance.getEntriesByType('resource').map(e => e.name);
for (const sheet of document.styleSheets) {
  if (sheet.href) out.push(sheet.href);
  let rules = [];
  try { rules = sheet.cssRules; } catch (e) { out.push('unreadable:' + sheet.href); }
  for (const r of rules) {
    if (r instanceof CSSImportRule) out.push(new URL(r.href, sheet.href || location).href);
    if (r instanceof CSSFontFaceRule) {
      for (const m of r.style.getPropertyValue('src').matchAll(/url\\(["']?([^"')]+)/g))
        out.push(new URL(m[1], sheet.href || location).href);
    }
  }
}
return out;
"""


def _drive_browser(paths, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from sparse_jax.explorer import app

    exports = str(tmp_path / "exports")
    explorer = engine.Explorer(None, paths)
    demo = app.Page(explorer, exports).build()
    _, url, _ = app.launch(demo, None, exports, block=False)
    assert url.startswith("http://127.0.0.1:")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    driver = _driver(profile)
    src = "return (document.querySelector(arguments[0] + ' img') || {}).src || ''"
    bars = "return [...document.querySelectorAll('#bars .p')].map(e => e.textContent)"

    def text(elem_id):
        return driver.execute_script(
            f"return document.querySelector('#{elem_id} textarea, #{elem_id} input').value")

    try:
        wait = WebDriverWait(driver, 120)
        driver.get(url)
        wait.until(lambda d: d.execute_script(src, "#img0") and len(d.execute_script(bars)) ==
                   len(explorer.attributes))
        img0, bars0 = driver.execute_script(src, "#img0"), driver.execute_script(bars)
        assert img0.startswith(url) and text("wdist") == "0.000"
        # drag d1 of the first file to +6 sigma (lat_stdev 2: W distance 12)
        driver.execute_script(
            "const s = document.querySelector('#s_0_1 input[type=range]');"
            "const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;"
            "for (const v of [2, 4, 6]) { set.call(s, v);"
            "  s.dispatchEvent(new Event('input', {bubbles: true})); }"
            "s.dispatchEvent(new Event('change', {bubbles: true}));")
        wait.until(lambda d: text("wdist") == "12.000")
        wait.until(lambda d: d.execute_script(src, "#img0") not in ("", img0))
        bars1 = driver.execute_script(bars)
        assert len(bars1) == len(explorer.attributes) and bars1 != bars0, (bars0, bars1)
        # side by side: the same seed and distance along the second file
        driver.find_element(By.CSS_SELECTOR, "#compare input").click()
        wait.until(lambda d: [o for o in d.find_elements(By.CSS_SELECTOR, "#compare li, "
                                                         "ul.options li") if "toy1" in o.text])
        [o for o in driver.find_elements(By.CSS_SELECTOR, "#compare li, ul.options li")
         if "toy1" in o.text][0].click()
        wait.until(lambda d: d.execute_script(src, "#img1"))
        wait.until(lambda d: len(d.execute_script(bars)) == 2 * len(explorer.attributes))
        assert driver.execute_script(src, "#img1") != driver.execute_script(src, "#img0")
        shot = os.environ.get("EXPLORER_SCREENSHOT")
        driver.save_screenshot(shot or str(tmp_path / "explorer.png"))
        # export
        box = driver.find_element(By.CSS_SELECTOR, "#name textarea, #name input")
        box.clear()
        box.send_keys("browser_edit")
        driver.find_element(By.CSS_SELECTOR, "#export").click()
        wait.until(lambda d: "wrote" in (text("exported") or ""))
        for f in ("browser_edit.png", "browser_edit_ws.npy", "browser_edit_directions.npz"):
            assert os.path.getsize(os.path.join(exports, f)) > 0, f
        again = engine.Explorer(None, [os.path.join(exports, "browser_edit_directions.npz")],
                                use_classifier=False)
        assert again.sets[0]["labels"] == ["toy0 d1"] and again.sets[0]["sigmas"] == [6.0]
        # offline: every resource the page loaded came from the local server
        urls = driver.execute_script(_RESOURCES_JS)
        origin = url.rstrip("/")
        assert len(urls) > 3 and all(u.startswith(origin + "/") for u in urls), [
            u for u in urls if not u.startswith(origin + "/")]
        print(f"{len(urls)} resources, all from {origin}")
    finally:
        driver.quit()
        demo.close()
        shutil.rmtree(profile, ignore_errors=True)
