"""The explorer in a real headless browser (Debian chromium + chromedriver via Selenium): the page
loads from 127.0.0.1 only, moving a slider changes the image, the W distance and the attribute
bars, side by side shows a second image, export writes files that --inputs reloads."""
import os
import shutil
import tempfile
import threading

import numpy as np
import pytest

from sparse_jax.explorer import engine, server

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
W_DIM = 64


def _direction_file(path, seed):
    rng = np.random.default_rng(seed)
    comp = rng.normal(size=(4, W_DIM))
    comp /= np.linalg.norm(comp, axis=1, keepdims=True)
    np.savez(path, lat_comp=comp.astype(np.float32), lat_stdev=np.full(4, 2.0),
             method=np.asarray(f"toy{seed}"))
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    d = tmp_path_factory.mktemp("explorer")
    paths = [_direction_file(str(d / "a.npz"), 0), _direction_file(str(d / "b.npz"), 1)]
    explorer = engine.Explorer(None, paths)
    httpd = server.serve(explorer, str(d / "exports"), port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield explorer, f"http://127.0.0.1:{httpd.server_address[1]}/", str(d / "exports")
    httpd.shutdown()
    httpd.server_close()


def test_engine_edits_move_w_and_export_reloads(app, tmp_path):
    explorer, _, _ = app
    still = explorer.render(3, 1.0, [])
    moved = explorer.render(3, 1.0, [engine.Slider(0, 1, 3.0, 0, 4)], compare=1)
    assert still["w_distance"] == 0 and moved["w_distance"] == pytest.approx(6.0, rel=1e-5)
    assert len(moved["images"]) == 2 and moved["images"][0] != still["images"][0]
    assert set(moved["predictions"][0]) == set(explorer.attributes)
    files = explorer.export(str(tmp_path), "e1", 3, 1.0, [engine.Slider(0, 1, 3.0, 0, 4)])
    again = engine.Explorer(None, [files[2]], use_classifier=False)
    s = again.sets[0]
    assert s["name"] == "e1" and s["layer_ranges"] == [[0, 4]] and s["sigmas"] == [3.0]
    np.testing.assert_allclose(s["lat_comp"][0], explorer.sets[0]["lat_comp"][1], atol=1e-6)
    ws = np.load(files[1])
    np.testing.assert_allclose(ws, moved["ws"], atol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        explorer.render(0, 1.0, [engine.Slider(0, 0, 11.0)])


def _driver():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"no browser: {CHROMIUM} / {DRIVER} not installed (apt-get install "
                    "chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed "
                                    "(pip install '.[explore]')")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=1100,800"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=opts), profile


def test_browser_slider_changes_image_and_bars_and_exports(app, tmp_path):
    explorer, url, exports = app
    driver, profile = _driver()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        wait = WebDriverWait(driver, 120)
        driver.get(url)
        wait.until(lambda d: d.execute_script("return +(document.body.dataset.renders||0)") >= 1)
        img0 = driver.find_element(By.ID, "img0").get_attribute("src")
        bars0 = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#bars .p")]
        assert img0.startswith("data:image/png;base64,") and len(bars0) == len(
            explorer.attributes)
        assert driver.find_element(By.ID, "wdist").text == "0.000"
        # move a slider (d1 of the first file to +6 sigma) the way a drag ends: value + input
        slider = driver.find_element(By.ID, "s_0_1")
        driver.execute_script("arguments[0].value = 6; arguments[0].dispatchEvent("
                              "new Event('input', {bubbles: true}));", slider)
        wait.until(lambda d: d.find_element(By.ID, "img0").get_attribute("src") != img0)
        wait.until(lambda d: d.find_element(By.ID, "wdist").text == "12.000")
        bars1 = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#bars .p")]
        assert bars1 != bars0
        # side by side: a second image along the other file's directions
        driver.execute_script("const s = document.getElementById('compare'); s.value = '1';"
                              "s.dispatchEvent(new Event('change'));")
        wait.until(lambda d: d.find_element(By.ID, "side").is_displayed())
        assert driver.find_element(By.ID, "img1").get_attribute("src").startswith("data:image")
        # export
        driver.find_element(By.ID, "name").clear()
        driver.find_element(By.ID, "name").send_keys("browser_edit")
        driver.find_element(By.ID, "export").click()
        wait.until(lambda d: "wrote" in d.find_element(By.ID, "exported").text)
        for f in ("browser_edit.png", "browser_edit_ws.npy", "browser_edit_directions.npz"):
            assert os.path.getsize(os.path.join(exports, f)) > 0, f
        # offline: every resource the page loaded came from the local server
        urls = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert urls and all(u.startswith(url) for u in urls), urls
        shot = os.environ.get("EXPLORER_SCREENSHOT")
        driver.save_screenshot(shot or str(tmp_path / "explorer.png"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
