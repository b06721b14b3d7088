"""Tests for the StyleGAN2 discriminator, losses and training loop (tiny configs)."""
import dataclasses
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax.io import model_dirs
from sparse_jax.models import conv_ops
from sparse_jax.models import discriminator as disc
from sparse_jax.models import stylegan2 as sg
from sparse_jax.training import losses, train_gan

GCFG = sg.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=8, img_channels=1, mapping_layers=2,
                          channel_base=64, channel_max=16)
DCFG = disc.DiscriminatorConfig(img_resolution=8, img_channels=1, channel_base=64, channel_max=16)
TCFG = train_gan.TrainConfig(batch=4, d_reg_interval=2, r1_gamma=1.0, ema_kimg=0.01,
                             ema_rampup=None, pack=1, seed=3)


def _tree_dist(a, b):
    return float(sum(jnp.sum(jnp.square(x - y)) for x, y in
                     zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)))


def _images(n=16, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (n, 1, 8, 8)).astype(np.float32))


@pytest.mark.parametrize("res,batch", [(8, 4), (16, 8), (4, 2)])
def test_discriminator_output_shape(res, batch):
    cfg = disc.DiscriminatorConfig(img_resolution=res, img_channels=1, channel_base=64,
                                   channel_max=16)
    params = disc.init_discriminator(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (batch, 1, res, res))
    logits = jax.jit(lambda p, x: disc.discriminate(cfg, p, x))(params, x)
    chex.assert_shape(logits, (batch,))
    chex.assert_tree_all_finite(logits)
    assert float(jnp.std(logits)) > 0
    with pytest.raises(ValueError, match="expects images"):
        disc.discriminate(cfg, params, x[:, :, :-1])


def test_minibatch_std_groups():
    x = jax.random.normal(jax.random.key(0), (8, 2, 2, 4))
    y = disc.minibatch_std(x, group_size=4, num_channels=1)
    chex.assert_shape(y, (8, 2, 2, 5))
    # sample i is in group i % 2: its std is over samples {i, i+2, i+4, i+6}
    want = jnp.mean(jnp.sqrt(jnp.var(x[0::2], axis=0) + 1e-8))
    np.testing.assert_allclose(y[0, 0, 0, 4], want, rtol=1e-5)
    np.testing.assert_allclose(y[6, 1, 1, 4], want, rtol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        disc.minibatch_std(x[:6], group_size=4, num_channels=1)


@pytest.mark.parametrize("pad,stride", [(1, 1), (0, 2), (2, 2)])
@pytest.mark.parametrize("conv_impl", conv_ops.CONV_IMPLS)
def test_conv2d_matches_lax(pad, stride, conv_impl):
    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 3))
    w = jax.random.normal(jax.random.key(1), (5, 3, 3, 3))
    want = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                        dimension_numbers=("NHWC", "OIHW", "NHWC"))
    got = conv_ops.conv2d(x, w, pad, stride, conv_impl=conv_impl)
    chex.assert_shape(got, want.shape)
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("conv_impl", conv_ops.CONV_IMPLS)
def test_transposed_conv_matches_zero_insertion(conv_impl):
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 3))
    w = jax.random.normal(jax.random.key(1), (4, 3, 3, 3))
    # conv_transpose2d(stride 2) = zero insertion, then a full correlation with the flipped kernel
    z = jnp.zeros((2, 9, 9, 3)).at[:, ::2, ::2].set(x)
    want = jax.lax.conv_general_dilated(z, w[:, :, ::-1, ::-1], (1, 1), [(2, 2)] * 2,
                                        dimension_numbers=("NHWC", "OIHW", "NHWC"))
    got = conv_ops.transposed_conv3x3_stride2(x, w, conv_impl)
    chex.assert_shape(got, (2, 11, 11, 4))
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_discriminator_same_with_either_conv_impl():
    dcfg = disc.DiscriminatorConfig(img_resolution=16, img_channels=2, channel_base=128,
                                    channel_max=16)
    params = disc.init_discriminator(jax.random.key(0), dcfg)
    img = jax.random.normal(jax.random.key(1), (4, 2, 16, 16))
    want = disc.discriminate(dcfg, params, img, "xla")
    np.testing.assert_allclose(disc.discriminate(dcfg, params, img, "matmul"), want,
                               atol=1e-4 * (1.0 + float(jnp.max(jnp.abs(want)))))
    with pytest.raises(ValueError, match="conv_impl"):
        disc.discriminate(dcfg, params, img, "fast")


def test_conv_impl_rejected_by_name():
    with pytest.raises(ValueError, match="conv_impl"):
        conv_ops.conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((1, 1, 3, 3)), 1, conv_impl="cudnn")


def test_matmul_convs_give_the_same_generator_and_gradients():
    cfg = sg.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, img_channels=1,
                             mapping_layers=2, channel_base=128, channel_max=16)
    v = sg.init_generator(jax.random.key(0), cfg)
    leaves, tdef = jax.tree_util.tree_flatten(v["params"])
    keys = jax.random.split(jax.random.key(1), len(leaves))
    v["params"] = jax.tree_util.tree_unflatten(
        tdef, [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)])
    ws = sg.map_latents(cfg, v, jax.random.normal(jax.random.key(2), (3, 16)))

    def loss(params, conv_impl):
        img = sg.synthesize(cfg, {"params": params, "buffers": v["buffers"]}, ws,
                            conv_impl=conv_impl)
        return jnp.sum(jnp.sin(img)), img

    (_, want), g_want = jax.value_and_grad(loss, has_aux=True)(v["params"], "xla")
    (_, got), g_got = jax.value_and_grad(loss, has_aux=True)(v["params"], "matmul")
    np.testing.assert_allclose(got, want, atol=1e-4 * float(jnp.max(jnp.abs(want))))
    chex.assert_trees_all_equal_shapes(g_got, g_want)
    for a, b in zip(jax.tree_util.tree_leaves(g_got), jax.tree_util.tree_leaves(g_want),
                    strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3 * (float(jnp.max(jnp.abs(b))) + 1e-6))
    with pytest.raises(ValueError, match="conv_impl"):
        sg.synthesize(cfg, v, ws, conv_impl="fast")


def test_losses():
    real, fake = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
    np.testing.assert_allclose(losses.generator_loss(fake), np.mean(np.log1p(np.exp(-fake))),
                               rtol=1e-6)
    want = np.mean(np.log1p(np.exp(fake))) + np.mean(np.log1p(np.exp(-real)))
    np.testing.assert_allclose(losses.discriminator_loss(real, fake), want, rtol=1e-6)
    x = jnp.ones((2, 1, 2, 2))
    r1, logits = losses.r1_penalty(lambda im: 3.0 * jnp.sum(im, axis=(1, 2, 3)), x)
    np.testing.assert_allclose(r1, [36.0, 36.0])  # 4 pixels, gradient 3 each
    chex.assert_shape(logits, (2,))


def test_top_k_logits_keeps_the_most_realistic_fakes_and_their_gradient_only():
    logits = jnp.array([3.0, -1.0, 2.0, 0.0, -4.0, 1.0])
    np.testing.assert_array_equal(losses.top_k_logits(logits, 0.5), [3.0, 2.0, 1.0])
    assert losses.top_k_logits(logits, 1.0) is logits
    chex.assert_shape(losses.top_k_logits(logits, 0.01), (1,))
    grad = jax.grad(lambda x: losses.generator_loss(losses.top_k_logits(x, 0.5)))(logits)
    assert np.all(np.asarray(grad)[[1, 3, 4]] == 0) and np.all(np.asarray(grad)[[0, 2, 5]] < 0)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="top-k fraction"):
            losses.top_k_logits(logits, bad)
        with pytest.raises(ValueError, match="g_topk"):
            train_gan.TrainConfig(g_topk=bad)


def test_workdir_written_before_an_option_existed_resumes_with_its_default(tmp_path):
    kw = dict(data="sklearn_digits", checkpoint_minutes=1e9, sample_every=100, log_every=2,
              log=lambda s: None)
    kimg = lambda steps: steps * TCFG.batch / 1000
    workdir = str(tmp_path / "old")
    train_gan.train(GCFG, DCFG, TCFG, workdir=workdir, total_kimg=kimg(1), **kw)
    path = os.path.join(workdir, "train_config.json")
    with open(path) as f:
        stored = json.load(f)
    del stored["train"]["g_topk"]  # as written before top-k training was added
    with open(path, "w") as f:
        json.dump(stored, f)
    assert int(train_gan.train(GCFG, DCFG, TCFG, workdir=workdir, total_kimg=kimg(2),
                               **kw).step) == 2
    with pytest.raises(ValueError, match="different configuration"):
        train_gan.train(GCFG, DCFG, dataclasses.replace(TCFG, g_topk=0.5), workdir=workdir,
                        total_kimg=kimg(3), **kw)
    # top-k training runs, and the generator step then differs from a plain one
    topk = dataclasses.replace(TCFG, g_topk=0.5)
    init = lambda: train_gan.init_state(jax.random.key(0), GCFG, DCFG, TCFG)  # steps donate it
    plain, _ = train_gan.run_iterations(train_gan.make_steps(GCFG, DCFG, TCFG), TCFG, init(),
                                        _images(), jax.random.key(1), 1)
    top, m = train_gan.run_iterations(train_gan.make_steps(GCFG, DCFG, topk), topk, init(),
                                      _images(), jax.random.key(1), 1)
    chex.assert_tree_all_finite(jax.device_get(m))
    assert _tree_dist(top.g_params, plain.g_params) > 0


def test_steps_update_params_ema_and_w_avg():
    state0 = train_gan.init_state(jax.random.key(0), GCFG, DCFG, TCFG)
    g0, d0, ema0 = jax.device_get((state0.g_params, state0.d_params, state0.ema_params))
    steps = train_gan.make_steps(GCFG, DCFG, TCFG)
    state, metrics = train_gan.run_iterations(steps, TCFG, state0, _images(), jax.random.key(1), 3)
    assert int(state.step) == 3
    assert {"g_loss", "d_loss", "r1", "real_logit", "fake_logit"} <= set(metrics[0])
    chex.assert_tree_all_finite(jax.device_get(metrics))
    chex.assert_tree_all_finite(state)
    assert _tree_dist(state.g_params, g0) > 0
    assert _tree_dist(state.d_params, d0) > 0
    # The EMA generator moved, and towards the trained G.
    assert _tree_dist(state.ema_params, ema0) > 0
    assert _tree_dist(state.ema_params, state.g_params) < _tree_dist(ema0, state.g_params)
    assert float(jnp.linalg.norm(state.g_buffers["mapping"]["w_avg"])) > 0


def test_noise_buffers_fixed_and_ema_equal_g_at_start_with_rampup():
    tcfg = train_gan.TrainConfig(batch=4, d_reg_interval=2, pack=1, seed=0)  # default ramp-up
    state0 = train_gan.init_state(jax.random.key(0), GCFG, DCFG, tcfg)
    noise0 = jax.device_get(state0.g_buffers["synthesis"])
    steps = train_gan.make_steps(GCFG, DCFG, tcfg)
    state, _ = train_gan.run_iterations(steps, tcfg, state0, _images(), jax.random.key(1), 1)
    chex.assert_trees_all_equal(jax.device_get(state.g_buffers["synthesis"]), noise0)
    # at step 0 the ramped-up half-life is 0 images, so the EMA copies G
    chex.assert_trees_all_close(state.ema_params, state.g_params, atol=1e-6)


def test_resume_matches_uninterrupted_run_on_sklearn_digits(tmp_path):
    kw = dict(data="sklearn_digits", checkpoint_minutes=1e9, sample_every=2, log_every=2,
              log=lambda s: None)
    kimg = lambda steps: steps * TCFG.batch / 1000
    full = train_gan.train(GCFG, DCFG, TCFG, workdir=str(tmp_path / "a"), total_kimg=kimg(4), **kw)
    train_gan.train(GCFG, DCFG, TCFG, workdir=str(tmp_path / "b"), total_kimg=kimg(2), **kw)
    export = str(tmp_path / "g")
    resumed = train_gan.train(GCFG, DCFG, TCFG, workdir=str(tmp_path / "b"), total_kimg=kimg(4),
                              export_dir=export, **kw)
    assert int(full.step) == int(resumed.step) == 4
    chex.assert_trees_all_close(jax.device_get(full), jax.device_get(resumed), atol=1e-6)
    with open(tmp_path / "b" / "progress.json") as f:
        assert json.load(f)["step"] == 4
    assert os.path.exists(tmp_path / "b" / "samples" / "latest.png")
    cfg, variables = model_dirs.load_generator(export)
    assert cfg == GCFG
    chex.assert_trees_all_close(variables["params"], jax.device_get(resumed.ema_params))
    img = sg.generate(cfg, variables, jnp.zeros((2, GCFG.z_dim)))
    chex.assert_shape(img, (2, 1, 8, 8))
    # a different configuration in the same workdir is refused
    with pytest.raises(ValueError, match="different configuration"):
        train_gan.train(GCFG, DCFG, train_gan.TrainConfig(batch=8, pack=1),
                        workdir=str(tmp_path / "b"), total_kimg=1, **kw)


def test_sample_grid_is_written_as_png(tmp_path):
    tcfg = train_gan.TrainConfig(batch=8, pack=1)
    state = train_gan.init_state(jax.random.key(0), GCFG, DCFG, tcfg)
    steps = train_gan.make_steps(GCFG, DCFG, tcfg)
    z = jax.random.normal(jax.random.key(1), (3, GCFG.z_dim))
    train_gan.write_sample_grid(str(tmp_path), steps, state, z, nimg=4000)
    for name in ("fakes000004.png", "latest.png"):
        with open(tmp_path / "samples" / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_pack_images_groups_consecutive_samples_as_channels():
    x = jnp.arange(8 * 1 * 2 * 2, dtype=jnp.float32).reshape(8, 1, 2, 2)
    packed = train_gan.pack_images(x, 4)
    chex.assert_shape(packed, (2, 4, 2, 2))
    np.testing.assert_array_equal(packed[1, 2], x[6, 0])
    assert train_gan.pack_images(x, 1) is x
    with pytest.raises(ValueError, match="pack"):
        train_gan.TrainConfig(batch=6, pack=4)


def test_packed_discriminator_trains_and_rejects_unpacked_config(tmp_path):
    tcfg = train_gan.TrainConfig(batch=8, d_reg_interval=2, r1_gamma=1.0, pack=2, seed=0)
    dcfg = disc.DiscriminatorConfig(img_resolution=8, img_channels=2, channel_base=64,
                                    channel_max=16)
    state0 = train_gan.init_state(jax.random.key(0), GCFG, dcfg, tcfg)
    chex.assert_shape(state0.d_params["b8"]["fromrgb"]["weight"], (8, 2, 1, 1))
    d0 = jax.device_get(state0.d_params)  # the steps donate state0
    steps = train_gan.make_steps(GCFG, dcfg, tcfg)
    state, metrics = train_gan.run_iterations(steps, tcfg, state0, _images(), jax.random.key(1), 2)
    chex.assert_tree_all_finite(jax.device_get(metrics))
    assert _tree_dist(state.d_params, d0) > 0
    with pytest.raises(ValueError, match="packed by 2"):
        train_gan.train(GCFG, DCFG, tcfg, data="sklearn_digits", workdir=str(tmp_path),
                        total_kimg=0.001, log=lambda s: None)


def test_make_grid_layout_without_padding():
    from sparse_jax.core import images

    x = np.full((3, 1, 2, 2), -1.0, np.float32)
    x[1] = 1.0
    grid = images.make_grid(x, ncols=2, pad=0)
    chex.assert_shape(grid, (4, 4, 1))
    assert grid.dtype == np.uint8
    assert grid[0, 2, 0] == 255 and grid[0, 0, 0] == 0 and grid[3, 3, 0] == 255  # empty tile
    assert images.make_grid(x, ncols=2, pad=0, pad_value=0)[3, 3, 0] == 0


def test_init_from_starts_a_new_run_from_another_runs_state(tmp_path):
    kw = dict(data="sklearn_digits", checkpoint_minutes=1e9, sample_every=100, log_every=2,
              log=lambda s: None)
    kimg = lambda steps: steps * TCFG.batch / 1000
    first = train_gan.train(GCFG, DCFG, TCFG, workdir=str(tmp_path / "a"), total_kimg=kimg(2), **kw)
    slower = dataclasses.replace(TCFG, g_lr=TCFG.g_lr / 10, d_lr=TCFG.d_lr / 10)
    # zero further steps: the new run's state is exactly the first run's latest one
    same = train_gan.train(GCFG, DCFG, slower, workdir=str(tmp_path / "b"), total_kimg=kimg(2),
                           init_from=str(tmp_path / "a"), **kw)
    chex.assert_trees_all_close(jax.device_get(same), jax.device_get(first))
    more = train_gan.train(GCFG, DCFG, slower, workdir=str(tmp_path / "b"), total_kimg=kimg(3),
                           init_from=str(tmp_path / "a"), **kw)
    assert int(more.step) == 3
    with open(tmp_path / "b" / "train_config.json") as f:
        stored = json.load(f)
    assert stored["init_from"] == str(tmp_path / "a") and stored["train"]["g_lr"] == slower.g_lr
    # a doubled batch continues from the same image count: 2 steps of 4 are 1 step of 8
    bigger = dataclasses.replace(TCFG, batch=2 * TCFG.batch)
    doubled = train_gan.train(GCFG, DCFG, bigger, workdir=str(tmp_path / "e"),
                              total_kimg=kimg(2), init_from=str(tmp_path / "a"), **kw)
    assert int(doubled.step) == 1
    chex.assert_trees_all_close(jax.device_get(doubled.g_params), jax.device_get(first.g_params))
    # other networks, or a folder that is not a run, are refused with the path in the message
    wide = disc.DiscriminatorConfig(img_resolution=8, img_channels=1, channel_base=128,
                                    channel_max=16)
    with pytest.raises(ValueError, match="discriminator differs"):
        train_gan.train(GCFG, wide, TCFG, workdir=str(tmp_path / "c"), total_kimg=kimg(3),
                        init_from=str(tmp_path / "a"), **kw)
    with pytest.raises(FileNotFoundError, match="train_config.json"):
        train_gan.train(GCFG, DCFG, TCFG, workdir=str(tmp_path / "d"), total_kimg=kimg(3),
                        init_from=str(tmp_path / "nothing"), **kw)
