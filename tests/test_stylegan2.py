"""Generator: parity with the official fixture, jit/vmap, devices, configurations, errors."""
import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sparse_jax.core.sharding import make_data_mesh
from sparse_jax.models import stylegan2 as sg

REF_DIR = os.path.join(SHARED, "reference", "stylegan2")


def _tol(ref):
    return 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def variables_from_state(state, cfg):
    """The converter's own name mapping (resample filters are checked, not stored)."""
    from converters.stylegan2_names import state_to_variables
    state = {k: v for k, v in state.items() if not k.endswith("resample_filter")}
    return state_to_variables("s_res32_small_G_ema_state.npz", state, cfg)


@functools.lru_cache(maxsize=1)
def _reference():
    meta = json.load(open(os.path.join(REF_DIR, "s_res32_small_meta.json")))
    kw = meta["G_ema_init_kwargs"]
    syn = kw["synthesis_kwargs"]
    cfg = sg.GeneratorConfig(
        z_dim=kw["z_dim"], w_dim=kw["w_dim"], c_dim=kw["c_dim"],
        img_resolution=kw["img_resolution"], img_channels=kw["img_channels"],
        mapping_layers=kw["mapping_kwargs"]["num_layers"], channel_base=syn["channel_base"],
        channel_max=syn["channel_max"], conv_clamp=syn["conv_clamp"])
    state = dict(np.load(os.path.join(REF_DIR, "s_res32_small_G_ema_state.npz")))
    ref = dict(np.load(os.path.join(REF_DIR, "s_res32_small_ref.npz")))
    return cfg, variables_from_state(state, cfg), ref, meta


def test_mapping_parity():
    cfg, v, ref, meta = _reference()
    z = jnp.asarray(ref["z"])
    cases = {"ws_psi1": (1.0, None), "ws_psi07": (meta["psi"], None),
             "ws_psi07_cutoff4": (meta["psi"], meta["truncation_cutoff"])}
    for key, (psi, cutoff) in cases.items():
        ws = sg.map_latents(cfg, v, z, truncation_psi=psi, truncation_cutoff=cutoff)
        chex.assert_shape(ws, ref[key].shape)
        np.testing.assert_allclose(ws, ref[key], rtol=0, atol=_tol(ref[key]), err_msg=key)


@pytest.mark.parametrize("key,psi,cutoff,noise", [
    ("img_const_psi1", 1.0, None, "const"),
    ("img_none_psi1", 1.0, None, "none"),
    ("img_const_psi07", 0.7, None, "const"),
    ("img_none_psi07", 0.7, None, "none"),
    ("img_const_psi07_cutoff4", 0.7, 4, "const"),
    ("img_const_psi1_unfused", 1.0, None, "const"),
    ("img_const_psi1_defaultprecision", 1.0, None, "const"),
])
def test_image_parity(key, psi, cutoff, noise):
    cfg, v, ref, _ = _reference()
    gen = jax.jit(functools.partial(sg.generate, cfg, truncation_psi=psi,
                                    truncation_cutoff=cutoff, noise_mode=noise))
    img = gen(v, jnp.asarray(ref["z"]))
    chex.assert_shape(img, ref[key].shape)
    np.testing.assert_allclose(img, ref[key], rtol=0, atol=_tol(ref[key]), err_msg=key)


@pytest.mark.parametrize("noise", ["const", "none"])
def test_style_mixed_parity(noise):
    cfg, v, ref, _ = _reference()
    img = sg.synthesize(cfg, v, jnp.asarray(ref["ws_mixed"]), noise_mode=noise)
    want = ref[f"img_mixed_{noise}"]
    np.testing.assert_allclose(img, want, rtol=0, atol=_tol(want))


def test_batch_of_one_parity():
    cfg, v, ref, _ = _reference()
    img = sg.generate(cfg, v, jnp.asarray(ref["z"][:1]))
    want = ref["img_const_psi1_sample0_bs1"]
    np.testing.assert_allclose(img, want, rtol=0, atol=_tol(want))


def test_layer_activations_parity():
    cfg, v, ref, meta = _reference()
    n = meta["act_samples"]
    z = jnp.asarray(ref["z"][:n])
    names = [k[4:] for k in ref if k.startswith("act/")]
    map_names = [k for k in names if k.startswith("mapping.")]
    syn_names = [k for k in names if k.startswith("synthesis.")]
    assert map_names and syn_names
    ws, map_acts = sg.map_latents(cfg, v, z, layers=map_names)
    _, syn_acts = sg.synthesize(cfg, v, ws, layers=syn_names)
    for name in names:
        got = {**map_acts, **syn_acts}[name]
        want = ref["act/" + name]
        chex.assert_shape(got, want.shape)
        np.testing.assert_allclose(got, want, rtol=0, atol=_tol(want), err_msg=name)


TINY = sg.GeneratorConfig(z_dim=16, w_dim=12, c_dim=0, img_resolution=16, img_channels=1,
                          mapping_layers=2, channel_base=128, channel_max=16, conv_clamp=256.0)


@functools.lru_cache(maxsize=None)
def _tiny(cfg=TINY, seed=0):
    return sg.init_generator(jax.random.key(seed), cfg)


def test_tiny_shapes_and_tree():
    v = _tiny()
    z = jax.random.normal(jax.random.key(1), (3, TINY.z_dim))
    ws = sg.map_latents(TINY, v, z)
    chex.assert_shape(ws, (3, TINY.num_ws, TINY.w_dim))
    img = sg.synthesize(TINY, v, ws)
    chex.assert_shape(img, (3, 1, 16, 16))
    chex.assert_tree_all_finite(img)
    p = v["params"]["synthesis"]
    chex.assert_shape(p["b4"]["const"], (16, 4, 4))
    chex.assert_shape(p["b16"]["conv0"]["weight"], (8, 16, 3, 3))
    chex.assert_shape(p["b16"]["conv0"]["affine"]["weight"], (16, TINY.w_dim))
    chex.assert_shape(p["b16"]["torgb"]["weight"], (1, 8, 1, 1))
    chex.assert_shape(v["buffers"]["synthesis"]["b8"]["conv1"]["noise_const"], (8, 8))
    chex.assert_shape(v["params"]["mapping"]["fc0"]["weight"], (TINY.w_dim, TINY.z_dim))
    assert TINY.num_ws == 6


def test_official_init_scheme():
    v = _tiny()
    np.testing.assert_array_equal(v["params"]["synthesis"]["b8"]["conv1"]["affine"]["bias"], 1.0)
    np.testing.assert_array_equal(v["params"]["synthesis"]["b8"]["conv1"]["bias"], 0.0)
    # Mapping weights are stored divided by the lr multiplier (0.01): std ~ 100.
    std = float(np.std(v["params"]["mapping"]["fc1"]["weight"]))
    assert 50 < std < 200, std
    other = sg.init_generator(jax.random.key(7), TINY)
    assert not np.allclose(other["params"]["synthesis"]["b4"]["const"],
                           v["params"]["synthesis"]["b4"]["const"])


def test_conditional_and_rgb_config():
    cfg = sg.GeneratorConfig(z_dim=8, w_dim=10, c_dim=3, img_resolution=8, img_channels=3,
                             mapping_layers=3, channel_base=64, channel_max=8, conv_clamp=None)
    v = sg.init_generator(jax.random.key(0), cfg)
    z = jax.random.normal(jax.random.key(1), (2, 8))
    c = jax.nn.one_hot(jnp.array([0, 2]), 3)
    img = sg.generate(cfg, v, z, c)
    chex.assert_shape(img, (2, 3, 8, 8))
    img2 = sg.generate(cfg, v, z, jax.nn.one_hot(jnp.array([1, 1]), 3))
    assert float(jnp.max(jnp.abs(img - img2))) > 1e-4  # the label matters
    chex.assert_shape(v["params"]["mapping"]["embed"]["weight"], (10, 3))
    chex.assert_shape(v["params"]["mapping"]["fc0"]["weight"], (10, 18))
    with pytest.raises(ValueError, match="conditional"):
        sg.generate(cfg, v, z)


def test_jit_vmap_batch_independence():
    v = _tiny()
    z = jax.random.normal(jax.random.key(2), (5, TINY.z_dim))
    gen = jax.jit(functools.partial(sg.generate, TINY))
    batched = gen(v, z)
    single = jnp.concatenate([gen(v, z[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    vmapped = jax.vmap(lambda zi: sg.generate(TINY, v, zi[None])[0])(z)
    np.testing.assert_allclose(batched, vmapped, atol=1e-5)


def test_same_output_on_one_and_four_devices():
    assert jax.device_count() == 4
    v = _tiny()
    z = jax.random.normal(jax.random.key(3), (8, TINY.z_dim))
    gen = jax.jit(functools.partial(sg.generate, TINY))
    one = gen(v, jax.device_put(z, jax.devices()[0]))
    mesh = make_data_mesh()
    four = gen(jax.device_put(v, NamedSharding(mesh, P())),
               jax.device_put(z, NamedSharding(mesh, P("data"))))
    assert len(four.sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(one), np.asarray(four), atol=1e-5)


def test_noise_modes():
    v = _tiny()
    ws = sg.map_latents(TINY, v, jax.random.normal(jax.random.key(4), (2, TINY.z_dim)))
    # Non-zero noise strengths make the modes differ.
    v = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.5 if "noise_strength" in jax.tree_util.keystr(p) else x, v)
    a = sg.synthesize(TINY, v, ws, "random", key=jax.random.key(0))
    b = sg.synthesize(TINY, v, ws, "random", key=jax.random.key(0))
    c = sg.synthesize(TINY, v, ws, "random", key=jax.random.key(1))
    d = sg.synthesize(TINY, v, ws, "none")
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3
    assert float(jnp.max(jnp.abs(a - d))) > 1e-3
    with pytest.raises(ValueError, match="explicit PRNG key"):
        sg.synthesize(TINY, v, ws, "random")
    with pytest.raises(ValueError, match="noise_mode"):
        sg.synthesize(TINY, v, ws, "bogus")


def test_truncation_and_cutoff():
    v = _tiny()
    v["buffers"]["mapping"]["w_avg"] = jnp.ones((TINY.w_dim,))
    z = jax.random.normal(jax.random.key(5), (2, TINY.z_dim))
    ws = sg.map_latents(TINY, v, z)
    ws0 = sg.map_latents(TINY, v, z, truncation_psi=0.0, truncation_cutoff=2)
    np.testing.assert_allclose(ws0[:, :2], 1.0)
    np.testing.assert_allclose(ws0[:, 2:], ws[:, 2:])


def test_layer_capture_and_early_stop():
    v = _tiny()
    ws = sg.map_latents(TINY, v, jax.random.normal(jax.random.key(6), (2, TINY.z_dim)))
    acts = sg.synthesize(TINY, v, ws, layers=("b8.conv1", "synthesis.b4.conv1"),
                         return_image=False)
    assert set(acts) == {"synthesis.b8.conv1", "synthesis.b4.conv1"}
    chex.assert_shape(acts["synthesis.b8.conv1"], (2, 16, 8, 8))
    _, full = sg.synthesize(TINY, v, ws, layers=("synthesis.b8.conv1",))
    np.testing.assert_allclose(acts["synthesis.b8.conv1"], full["synthesis.b8.conv1"], atol=1e-6)
    # Early stop: the b16 parameters are not needed at all.
    pruned = jax.tree_util.tree_map(lambda x: x, v)
    del pruned["params"]["synthesis"]["b16"]
    del pruned["buffers"]["synthesis"]["b16"]
    acts2 = sg.synthesize(TINY, pruned, ws, layers=("b8.conv1",), return_image=False)
    np.testing.assert_allclose(acts2["synthesis.b8.conv1"], full["synthesis.b8.conv1"],
                               atol=1e-6)
    with pytest.raises(ValueError, match="valid names: .*synthesis.b16.conv1"):
        sg.synthesize(TINY, v, ws, layers=("b32.conv1",))


def test_per_layer_ws_only_affect_their_slots():
    v = _tiny()
    ws = sg.map_latents(TINY, v, jax.random.normal(jax.random.key(8), (1, TINY.z_dim)))
    base = sg.synthesize(TINY, v, ws, layers=("b8.conv1", "b16.conv1"), return_image=False)
    slot = sg.ws_slot(TINY, 16, "conv1")
    edited = ws.at[:, slot].add(3.0)
    out = sg.synthesize(TINY, v, edited, layers=("b8.conv1", "b16.conv1"), return_image=False)
    np.testing.assert_allclose(out["synthesis.b8.conv1"], base["synthesis.b8.conv1"], atol=1e-6)
    assert float(jnp.max(jnp.abs(out["synthesis.b16.conv1"] - base["synthesis.b16.conv1"]))) > 1e-3


def test_config_validation_and_roundtrip():
    with pytest.raises(ValueError, match="power of two"):
        sg.GeneratorConfig(img_resolution=48)
    with pytest.raises(ValueError, match="unknown generator config keys"):
        sg.GeneratorConfig.from_dict({"z_dim": 4, "bogus": 1})
    assert sg.GeneratorConfig.from_dict(TINY.to_dict()) == TINY
    cfg = sg.GeneratorConfig(img_resolution=1024)
    assert cfg.num_ws == 18 and cfg.channels(1024) == 32 and cfg.channels(64) == 512


def test_save_load_roundtrip(tmp_path):
    from sparse_jax.io import model_dirs
    v = _tiny()
    model_dirs.save_generator(str(tmp_path / "g"), TINY, v, info={"source": "test"})
    cfg, v2 = model_dirs.load_generator(str(tmp_path / "g"))
    assert cfg == TINY
    chex.assert_trees_all_close(v, v2)
    assert model_dirs.generator_meta(str(tmp_path / "g"))["info"] == {"source": "test"}
    assert sorted(os.listdir(tmp_path)) == ["g"]  # no temporary leftovers
    bad = dict(v)
    bad["params"] = dict(v["params"], extra=jnp.zeros(3))
    with pytest.raises(ValueError, match="unexpected"):
        model_dirs.save_generator(str(tmp_path / "h"), TINY, bad)
    with pytest.raises(ValueError, match="no config.json"):
        model_dirs.load_generator(str(tmp_path))
