"""Tests for sparse_jax.walks: batched walks vs a loop of single edits, devices, layer ranges."""
import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax.core import atomic, seeds
from sparse_jax.evaluation import metrics, walks
from sparse_jax.io import direction_files
from sparse_jax.io.direction_files import read_directions
from sparse_jax.models import stylegan2 as sg

CFG = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, mapping_layers=2,
                         channel_base=64, channel_max=8)
SEEDS = np.array([3, 7, 11])
DIST = np.array([0.0, 0.75, 2.0])


@functools.lru_cache(maxsize=1)
def _variables():
    return sg.init_generator(jax.random.key(0), CFG)


def _directions(d=2):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(d, CFG.w_dim))
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def brightness_predict(images):
    """A deterministic stand-in classifier: [N, C, H, W] -> [N, 2] in (0, 1)."""
    top = images[:, :, : images.shape[2] // 2].mean(axis=(1, 2, 3))
    bottom = images[:, :, images.shape[2] // 2:].mean(axis=(1, 2, 3))
    return jax.nn.sigmoid(jnp.stack([8.0 * (top + bottom), 8.0 * (top - bottom)], axis=1))


def _loop(key, seeds, dirs, dist, layer_range=None, signs=walks.SIGNS):
    """The reference: one generator call per (seed, direction, sign, distance)."""
    start, end = layer_range or (0, CFG.num_ws)
    v = _variables()
    preds = np.zeros((len(seeds), len(dirs), len(signs), len(dist), 2), np.float32)
    imgs = np.zeros((len(seeds), len(dirs), len(signs), len(dist), 1, 8, 8), np.float32)
    for i, s in enumerate(seeds):
        z = jax.random.normal(jax.random.fold_in(key, int(s)), (1, CFG.z_dim))
        ws = sg.map_latents(CFG, v, z)
        for j, d in enumerate(dirs):
            for g, sign in enumerate(signs):
                for k, t in enumerate(dist):
                    edited = ws.at[:, start:end].add(sign * t * jnp.asarray(d, jnp.float32))
                    img = sg.synthesize(CFG, v, edited)
                    imgs[i, j, g, k] = img[0]
                    preds[i, j, g, k] = brightness_predict(img)[0]
    return preds, imgs


def test_batched_walks_equal_a_loop_of_single_edits():
    key = jax.random.key(5)
    dirs = _directions()
    out = walks.run_walks(CFG, _variables(), key, SEEDS, dirs, DIST,
                          predict_fn=brightness_predict, chunk=5, return_images=True)
    chex.assert_shape(out.preds, (3, 2, 2, 3, 2))
    chex.assert_shape(out.images, (3, 2, 2, 3, 1, 8, 8))
    ref_p, ref_i = _loop(key, SEEDS, dirs, DIST)
    np.testing.assert_allclose(out.images, ref_i, atol=2e-5)
    np.testing.assert_allclose(out.preds, ref_p, atol=2e-5)
    np.testing.assert_allclose(out.offsets[1, 1], -DIST)
    # Offset 0 is one shared image per seed.
    assert np.array_equal(out.images[:, 0, 0, 0], out.images[:, 1, 1, 0])


def test_same_result_on_1_and_4_devices_and_any_chunk():
    assert jax.device_count() == 4
    key = jax.random.key(1)
    dirs = _directions(3)
    runs = [walks.run_walks(CFG, _variables(), key, SEEDS, dirs, DIST,
                            predict_fn=brightness_predict, chunk=chunk, devices=devs)
            for chunk, devs in [(7, jax.devices()[:1]), (7, jax.devices()), (64, jax.devices())]]
    for other in runs[1:]:
        np.testing.assert_allclose(other.preds, runs[0].preds, atol=1e-6)


def test_per_direction_distances_and_seed_subsets():
    key = jax.random.key(2)
    dirs = _directions()
    per_dir = np.stack([DIST, 2 * DIST])
    out = walks.run_walks(CFG, _variables(), key, SEEDS, dirs, per_dir,
                          predict_fn=brightness_predict, signs=(1.0,))
    ref, _ = _loop(key, SEEDS, dirs[1:], 2 * DIST, signs=(1.0,))
    np.testing.assert_allclose(out.preds[:, 1:], ref, atol=2e-5)
    # A seed's result does not depend on which other seeds are in the run.
    alone = walks.run_walks(CFG, _variables(), key, SEEDS[1:2], dirs, per_dir,
                            predict_fn=brightness_predict, signs=(1.0,))
    np.testing.assert_allclose(alone.preds[0], out.preds[1], atol=1e-6)


def test_edit_ws_changes_only_the_chosen_slots():
    ws = jnp.asarray(np.random.default_rng(1).normal(size=(CFG.num_ws, CFG.w_dim)), jnp.float32)
    d = jnp.asarray(_directions(1)[0], jnp.float32)
    mask = walks.layer_mask(CFG.num_ws, (1, 3))
    np.testing.assert_array_equal(mask, [0, 1, 1, 0])
    out = walks.edit_ws(ws, d, jnp.float32(1.5), jnp.asarray(mask))
    np.testing.assert_array_equal(out[0], ws[0])
    np.testing.assert_array_equal(out[3], ws[3])
    np.testing.assert_allclose(out[1:3], ws[1:3] + 1.5 * d, atol=1e-6)


def test_layer_range_walk_matches_loop():
    key = jax.random.key(3)
    dirs = _directions()
    out = walks.run_walks(CFG, _variables(), key, SEEDS[:2], dirs, DIST,
                          predict_fn=brightness_predict, layer_range=(2, 4), return_images=True)
    ref_p, ref_i = _loop(key, SEEDS[:2], dirs, DIST, layer_range=(2, 4))
    np.testing.assert_allclose(out.images, ref_i, atol=2e-5)
    full = walks.run_walks(CFG, _variables(), key, SEEDS[:2], dirs, DIST, return_images=True)
    assert not np.allclose(out.images[:, :, :, -1], full.images[:, :, :, -1], atol=1e-4)
    assert out.preds is None or out.preds.shape == ref_p.shape
    assert full.preds is None


def test_plan_items_shares_offset_zero():
    offsets = walks.walk_offsets([0.0, 1.0], 3)
    seed_pos, dir_idx, offset, inverse = walks.plan_items(2, offsets)
    assert seed_pos.shape == (2 * (1 + 3 * 2),)  # one unedited image + 6 edits per seed
    assert len(set(inverse[0, :, :, 0].ravel())) == 1
    np.testing.assert_array_equal(offset[inverse[1, 2, 1, 1]], -1.0)
    assert dir_idx[inverse[1, 2, 1, 1]] == 2 and seed_pos[inverse[1, 2, 1, 1]] == 1


def test_w_pca_stdev_matches_numpy():
    key = jax.random.key(4)
    got = walks.w_pca_stdev(CFG, _variables(), key, 300, chunk=128)
    z = seeds.latents(key, jnp.arange(300), CFG.z_dim)
    w = np.asarray(sg.map_latents(CFG, _variables(), z)[:, 0], np.float64)
    proj = (w - w.mean(0)) @ np.linalg.svd(w - w.mean(0), full_matrices=False)[2][0]
    assert got == pytest.approx(np.std(proj), rel=1e-4)


@pytest.mark.parametrize("kwargs,match", [
    (dict(directions=np.ones((2, 5))), "w_dim=5 but the generator has w_dim=8"),
    (dict(directions=np.zeros((1, 8))), "zero or not finite"),
    (dict(layer_range=(3, 2)), "layer_range"),
    (dict(layer_range=(0, 9)), "layer_range"),
    (dict(predict_fn=None), "predict_fn"),
    (dict(seed_indices=np.array([0.5])), "seed_indices"),
    (dict(distances=np.zeros((3, 2))), "distances"),
    (dict(chunk=0), "chunk"),
])
def test_bad_inputs(kwargs, match):
    args = dict(seed_indices=SEEDS, directions=_directions(), distances=DIST,
                predict_fn=brightness_predict)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        walks.run_walks(CFG, _variables(), jax.random.key(0), args.pop("seed_indices"),
                        args.pop("directions"), args.pop("distances"), **args)


def _write_directions(path, **arrays):
    atomic.save_npz(str(path), **arrays)
    return str(path)


def test_direction_file_errors(tmp_path):

    good = dict(lat_comp=_directions(3), lat_mean=np.zeros(8), lat_stdev=np.ones(3),
                method=np.array("sca"))
    ds = read_directions(_write_directions(tmp_path / "ok.npz", **good), w_dim=8)
    assert ds.method == "sca" and ds.lat_comp.shape == (3, 8)
    missing = {k: v for k, v in good.items() if k != "lat_stdev"}
    with pytest.raises(ValueError, match=r"missing\.npz.*lat_stdev"):
        read_directions(_write_directions(tmp_path / "missing.npz", **missing), w_dim=8)
    with pytest.raises(ValueError, match=r"wdim\.npz.*w_dim=8 but the generator has w_dim=16"):
        read_directions(_write_directions(tmp_path / "wdim.npz", **good), w_dim=16)
    bad_stdev = dict(good, lat_stdev=np.ones(2))
    with pytest.raises(ValueError, match=r"stdev\.npz.*lat_stdev"):
        read_directions(_write_directions(tmp_path / "stdev.npz", **bad_stdev), w_dim=8)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        direction_files.read_directions(str(tmp_path / "nope.npz"), w_dim=8)


def _eval_config(**kw):
    from sparse_jax.evaluation import run as evaluate

    base = dict(num_assign_seeds=6, num_eval_seeds=10, num_distances=4, d_max_samples=200,
                num_directions=3, grid_directions=2, grid_columns=3, chunk=64)
    base.update(kw)
    return evaluate.EvalConfig(**base)


def _direction_files(tmp_path):
    rng = np.random.default_rng(3)
    paths = []
    for method in ("pca-w", "sca"):
        comp = rng.normal(size=(4, CFG.w_dim))
        comp /= np.linalg.norm(comp, axis=1, keepdims=True)
        paths.append(_write_directions(tmp_path / f"directions_{method}.npz", lat_comp=comp,
                                       lat_mean=np.zeros(8), lat_stdev=np.full(4, 0.5),
                                       method=np.array(method)))
    return paths


def test_run_evaluation_end_to_end(tmp_path, monkeypatch):
    import json

    from sparse_jax.evaluation import run as evaluate
    from sparse_jax.io import model_dirs

    gen_dir = str(tmp_path / "gen")
    model_dirs.save_generator(gen_dir, CFG, _variables())
    monkeypatch.setattr(evaluate, "load_predictor",
                        lambda *args, **kwargs: (brightness_predict, ["bright", "top_heavy"]))
    config = _eval_config()
    out = evaluate.run_evaluation(_direction_files(tmp_path), str(tmp_path / "eval"),
                                  generator=gen_dir, config=config)
    res = out.results
    assert list(res["methods"]) == ["pca-w", "sca"]
    std = walks.w_pca_stdev(CFG, _variables(), seeds.stream_key(0, seeds.D_MAX_STREAM), 200)
    assert res["d_max"] == pytest.approx(3.0 * std, rel=1e-6)
    assert res["distances"][0] == 0.0 and res["distances"][-1] == pytest.approx(res["d_max"])
    with open(tmp_path / "eval" / "table1.json") as f:
        on_disk = json.loads(f.read(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert on_disk["methods"]["sca"]["num_attributes"] == 2
    assert "| Disentanglement S_d |" in (tmp_path / "eval" / "table1.md").read_text()
    names = {os.path.basename(p) for p in out.files}
    assert {"fig3_walks_pca-w.png", "fig3_walks_sca.png", "fig5_curves.png",
            "fig6_disentanglement.png", "preds_sca.npz"} <= names
    assert any(n.startswith("fig4_walks_") for n in names)
    for p in out.files:
        if p.endswith(".png"):
            with open(p, "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n"
            from PIL import Image

            with Image.open(p) as im:
                assert im.width <= 2400, (p, im.size)  # the figures' size rule
    with np.load(tmp_path / "eval" / "preds_sca.npz") as f:
        chex.assert_shape(f["preds"], (16, 3, 2, 4, 2))
    # The library agrees with metrics applied to the saved predictions.
    p = np.load(tmp_path / "eval" / "preds_sca.npz")["preds"]
    again = metrics.summarize_method(p[:6], p[6:], res["distances"], ["bright", "top_heavy"],
                                     np.full(3, 0.5))
    # Table 1 is computed on the device in float32 (device_metrics); numpy is the oracle.
    assert again["S_d"] == pytest.approx(res["methods"]["sca"]["S_d"], abs=1e-6)


def test_evaluate_is_device_count_invariant(tmp_path):
    from sparse_jax.evaluation import run as evaluate

    sets = [direction_files.read_directions(p, 8, 2) for p in _direction_files(tmp_path)]
    config = _eval_config(d_max=1.5, num_eval_seeds=6, chunk=16)
    one, _ = evaluate.evaluate_directions(CFG, _variables(), brightness_predict, ["a", "b"], sets,
                                          config, devices=jax.devices()[:1])
    with jax.transfer_guard("disallow"):  # every host <-> device copy is explicit
        four, _ = evaluate.evaluate_directions(CFG, _variables(), brightness_predict,
                                               ["a", "b"], sets, config)
    for m in ("pca-w", "sca"):
        for key in ("S_e", "S_d"):
            a, b = one["methods"][m][key], four["methods"][m][key]
            assert (a is None and b is None) or a == pytest.approx(b, abs=1e-6)


def test_bin_render(tmp_path):
    import subprocess
    import sys

    from sparse_jax.io import model_dirs

    gen_dir = str(tmp_path / "gen")
    model_dirs.save_generator(gen_dir, CFG, _variables())
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = str(tmp_path / "grid.png")
    proc = subprocess.run(
        [sys.executable, os.path.join(root, "bin", "render.py"), "--generator", gen_dir,
         "--directions", _direction_files(tmp_path)[1], "--out", out, "--seeds", "0,4",
         "--num_directions", "2", "--sigmas=-2,0,2", "--layer_range", "0,2"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        [sys.executable, os.path.join(root, "bin", "render.py"), "--generator", gen_dir,
         "--directions", str(tmp_path / "missing.npz"), "--out", out],
        capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "missing.npz: direction file not found" in bad.stderr


def test_walks_show_progress_with_an_estimate_only_when_asked(capsys):
    from sparse_jax.core import seeds as seed_streams

    key = seed_streams.stream_key(0, seed_streams.IMAGE_STREAM)
    dirs = np.eye(2, CFG.w_dim, dtype=np.float32)
    walks.run_walks(CFG, _variables(), key, np.arange(8), dirs, [0.0, 1.0], chunk=8,
                    return_images=True,
                    progress=True, desc="sca: walks")
    err = capsys.readouterr().err
    assert "sca: walks" in err and "chunk" in err and "<" in err  # elapsed<remaining
    walks.run_walks(CFG, _variables(), key, np.arange(8), dirs, [0.0, 1.0], chunk=8,
                    return_images=True)
    assert "walks" not in capsys.readouterr().err
