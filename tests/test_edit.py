"""Edits in W (generation/edit.py) and sparse-jax-edit: the edited ws and the labelled strip."""
import os

import numpy as np
import pytest

from sparse_jax.cli import edit as cli_edit
from sparse_jax.cli import generate as cli_generate
from sparse_jax.generation import edit
from sparse_jax.io import model_dirs

W_DIM, NUM_WS = 64, 8


def _direction_file(path, k=3, seed=0):
    rng = np.random.default_rng(seed)
    comp = rng.normal(size=(k, W_DIM))
    comp /= np.linalg.norm(comp, axis=1, keepdims=True)
    np.savez(path, lat_comp=comp.astype(np.float32), lat_stdev=np.arange(1, k + 1) * 0.5,
             method=np.asarray("toy"))
    return comp


def test_edits_move_the_chosen_slots_by_sigma_or_w(tmp_path):
    path = str(tmp_path / "d.npz")
    comp = _direction_file(path)
    ws = np.random.default_rng(1).normal(size=(2, NUM_WS, W_DIM)).astype(np.float32)
    e_sigma = edit.load_edit(path, 2, -2.0, w_dim=W_DIM, num_ws=NUM_WS, layer_range=(1, 3))
    assert e_sigma.distance == pytest.approx(-2.0 * 1.5)  # lat_stdev[2] = 1.5
    assert "toy d2 -2σ [1,3)" == e_sigma.label
    e_w = edit.load_edit(path, 0, 0.7, w_dim=W_DIM, num_ws=NUM_WS, units="w")
    out = edit.apply_edits(ws, [e_sigma, e_w])
    want = ws + 0.7 * comp[0]
    want[:, 1:3] += -3.0 * comp[2]
    np.testing.assert_allclose(out, want, atol=1e-5)
    # the W distance moved on an edited slot is |strength * sigma|
    np.testing.assert_allclose(np.linalg.norm(edit.apply_edits(ws, [e_sigma]) - ws, axis=-1)[
        :, 1:3], 3.0, rtol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        edit.load_edit(path, 3, 1.0, w_dim=W_DIM, num_ws=NUM_WS)
    with pytest.raises(ValueError, match="w_dim"):
        edit.load_edit(path, 0, 1.0, w_dim=32, num_ws=NUM_WS)
    with pytest.raises(ValueError, match="layer range"):
        edit.make_edit(comp[0], 1.0, NUM_WS, (4, 2))


def test_parse_edit_spec():
    assert cli_edit.parse_edit("a/b.npz:3:-1.5:0,4") == ("a/b.npz", 3, -1.5, (0, 4))
    assert cli_edit.parse_edit("b.npz:0:2") == ("b.npz", 0, 2.0, None)
    assert cli_edit.parse_edit("b.npz:0:2:2-5").layer_range == (2, 5)


def test_edit_command_writes_ws_that_generate_renders_the_same(tmp_path, capsys):
    path = str(tmp_path / "d.npz")
    comp = _direction_file(path)
    out = str(tmp_path / "strip.png")
    assert cli_edit.main(["--seeds", "3,5", "--edit", f"{path}:1:2", "--edit",
                          f"{path}:0:-1:0,4", "--out", out]) == 0
    assert "W distance 2" in capsys.readouterr().out  # 2 sigma x lat_stdev[1] = 1.0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    ws_path = str(tmp_path / "strip_ws.npy")
    edited = np.load(ws_path)
    assert edited.shape == (2, NUM_WS, W_DIM)
    cfg, variables = model_dirs.load_generator(model_dirs.default_generator_path())
    base = edit.ws_from_seeds(cfg, variables, [3, 5])
    want = base + 2.0 * 1.0 * comp[1]
    want[:, :4] += -1.0 * 0.5 * comp[0]
    np.testing.assert_allclose(edited, want, atol=1e-4)
    # the same seeds through generate give the unedited ws (one seed convention)
    npz = str(tmp_path / "g.npz")
    assert cli_generate.main(["--seeds", "3,5", "--out", npz]) == 0
    with np.load(npz) as g:
        np.testing.assert_allclose(g["ws"], base, atol=1e-5)
    # and generate --ws renders the edited latents as the strip's "all edits" column
    assert cli_generate.main(["--ws", ws_path, "--out", npz]) == 0
    images, labels, _ = edit.edit_strip(cfg, variables, base, [
        edit.load_edit(path, 1, 2.0, w_dim=W_DIM, num_ws=NUM_WS),
        edit.load_edit(path, 0, -1.0, w_dim=W_DIM, num_ws=NUM_WS, layer_range=(0, 4))])
    assert labels[0] == "original" and labels[-1] == "all edits" and len(labels) == 4
    with np.load(npz) as g:
        np.testing.assert_allclose(g["images"], images[:, -1], atol=1e-4)
    assert os.path.getsize(out) > 1000
