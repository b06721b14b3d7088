"""generate: --scale and --labels on PNG grids; --ws on a conditional generator needs no label."""
import jax
import numpy as np
import pytest
from PIL import Image

from sparse_jax.cli import generate as cli_generate
from sparse_jax.core import images
from sparse_jax.generation import generate
from sparse_jax.io import model_dirs
from sparse_jax.models import stylegan2 as sg


def test_scale_and_labels_grow_the_grid(tmp_path):
    imgs = np.random.default_rng(0).uniform(-1, 1, (5, 1, 8, 8)).astype(np.float32)
    plain = images.make_grid(imgs, 3)
    big = images.make_grid(imgs, 3, scale=4)
    assert big.shape == (2 * (32 + 1) + 1, 3 * (32 + 1) + 1, 1)
    np.testing.assert_array_equal(big[1:33:4, 1:33:4], plain[1:9, 1:9])  # nearest neighbour
    labelled = images.label_grid(big, [f"seed {i}" for i in range(5)], (32, 32), 3)
    assert labelled.shape[0] == big.shape[0] + 2 * 16 and labelled.shape[1] == big.shape[1]
    band = labelled[34:34 + 16, 1:33]
    assert (band < 128).any(), "no caption drawn under the first tile"
    with pytest.raises(ValueError, match="scale"):
        images.make_grid(imgs, 3, scale=0)
    out = str(tmp_path / "g.png")
    assert cli_generate.main(["--seeds", "0-3", "--scale", "2", "--labels", "--out", out]) == 0
    with Image.open(out) as im:
        assert im.width == 2 * (64 + 1) + 1


def test_ws_of_a_conditional_generator_needs_no_class(tmp_path):
    cfg = sg.GeneratorConfig(z_dim=8, w_dim=8, c_dim=3, img_resolution=8, img_channels=1,
                             mapping_layers=1, channel_base=32, channel_max=4)
    gdir = str(tmp_path / "cond")
    model_dirs.save_generator(gdir, cfg, sg.init_generator(jax.random.key(0), cfg))
    z_imgs, ws = generate.render(cfg, model_dirs.load_generator(gdir)[1], "z",
                                 np.ones((2, 8), np.float32), class_idx=1)
    ws_file = str(tmp_path / "ws.npy")
    np.save(ws_file, ws)
    out = str(tmp_path / "out.npz")
    assert cli_generate.main(["--generator", gdir, "--ws", ws_file, "--out", out]) == 0
    with np.load(out) as f:
        np.testing.assert_allclose(f["images"], z_imgs, atol=1e-5)
    # --seeds still needs the label; --class_idx with --ws is refused as meaningless.
    assert cli_generate.main(["--generator", gdir, "--seeds", "0", "--out", out,
                              "--overwrite"]) != 0
    assert cli_generate.main(["--generator", gdir, "--ws", ws_file, "--class_idx", "0",
                              "--out", out, "--overwrite"]) != 0
