"""The main job, reduced (--smoke sizes), on the shipped generator and classifier.

Checks that every output file is produced and well-formed; the numbers at these sizes mean nothing.
"""
import json
import os
import subprocess
import sys

import chex
import matplotlib.image as mpimg
import numpy as np
import pytest
from conftest import ROOT

from sparse_jax.io import model_dirs
from sparse_jax.pipeline import paper

METHODS = ("pca-w", "pca", "sefa", "sca", "sca-w")


def test_embedded_models_are_shipped():
    cfg, variables = model_dirs.load_generator(model_dirs.default_generator_path())
    assert (cfg.img_resolution, cfg.img_channels) == (32, 1)
    assert os.path.isfile(os.path.join(model_dirs.default_classifier_path(), "config.json"))
    size = 0
    for folder in (model_dirs.default_generator_path(), model_dirs.default_classifier_path()):
        for dirpath, _, files in os.walk(folder):
            size += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    assert size < 25 * 2**20, size


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("results"))
    lines = []
    run = paper.run_paper(out, sizes=paper.PaperSizes.smoke(), progress=False, log=lines.append)
    return out, run, lines


def test_smoke_run_writes_every_output(smoke_run):
    out, run, lines = smoke_run
    sizes = paper.PaperSizes.smoke()
    assert any(line.startswith("sizes: num_samples=300") for line in lines)
    assert run["methods"] == list(METHODS)
    gen_cfg, _ = model_dirs.load_generator(model_dirs.default_generator_path())
    for m in METHODS:
        d = np.load(os.path.join(out, "directions", f"directions_{m}.npz"))
        chex.assert_shape(d["lat_comp"], (sizes.k, 1, gen_cfg.w_dim))  # GANSpace's shape
        np.testing.assert_allclose(np.linalg.norm(d["lat_comp"], axis=-1), 1.0, atol=1e-5)
        assert np.all(np.isfinite(d["lat_stdev"])) and np.all(d["lat_stdev"] > 0)
        npy = np.load(os.path.join(out, "directions", f"directions_{m}.npy"))
        np.testing.assert_array_equal(npy, d["lat_comp"][:, 0])
    table = json.load(open(os.path.join(out, "table1.json")))
    assert sorted(table["methods"]) == sorted(METHODS)
    for m in METHODS:
        r = table["methods"][m]
        assert 0.0 < r["S_d"] <= 1.0, (m, r["S_d"])
        assert np.isfinite(r["S_e"]), m
        assert r["efficiency"] is not None and r["efficiency"] >= 0.0, m
        assert 0.0 <= r["reached_fraction"] <= 1.0, m
        a = np.asarray(r["A"], float)
        assert a.shape[0] == a.shape[1] == r["num_attributes"]
    md = open(os.path.join(out, "table1.md")).read()
    assert "Efficiency: 0.5 / distance" in md and "End-point S_e, paper-literal" in md
    assert "Disentanglement S_d" in md
    preds = np.load(os.path.join(out, "preds_sca.npz"))
    assert preds["reach_preds"].shape[0] == sizes.num_eval_seeds
    assert preds["reach_distances"][0] == 0 and preds["reach_index"].shape == (
        len(table["attributes"]),)
    pngs = [f for f in run["files"] if f.endswith(".png")]
    pngs.append(os.path.join("directions", "scatter.png"))
    assert any(f.startswith("fig5") for f in pngs) and any(f.startswith("fig6") for f in pngs)
    for f in pngs:
        img = mpimg.imread(os.path.join(out, f))
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50, f
    intervals = json.load(open(os.path.join(out, "table1_intervals.json")))
    assert intervals["num_repeats"] == 1 and "sca/pca" in intervals["ratios"]
    for m in METHODS:
        e = intervals["methods"][m]["S_e"]
        assert e["value"] == pytest.approx(table["methods"][m]["S_e"], rel=1e-4)
        assert e["low"] <= e["value"] <= e["high"]
    saved = json.load(open(os.path.join(out, "run.json")))
    assert saved["sizes"]["num_samples"] == 300 and saved["seconds"]["total"] > 0
    leftovers = [f for f in os.listdir(out) if f.startswith(".")]
    assert not leftovers, leftovers


def test_run_paper_rejects_zero_repeats(tmp_path):
    with pytest.raises(ValueError, match="repeats"):
        paper.run_paper(str(tmp_path), repeats=0, log=lambda _: None)


def test_run_paper_binary_rejects_bad_flags(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bin", "run_paper.py"), "--smoke", "--paper_scale",
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "exclude each other" in proc.stderr
