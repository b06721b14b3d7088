"""StyleGAN v1 (G_style): the Flax port against NVIDIA's TF outputs and an independent float64
numpy forward written from ../shared/docs/stylegan-tf-spec.md section 3, and the TF converter.

Fixtures: ../shared/reference/stylegan-tf/sg1_r{32,128}_rgb_* (written and run by NVIDIA's TF code).
Random-weight TF networks of other shapes (grayscale, 512 latents, forced fused convs, relu, no
blur, no wscale) are built here as TFNetwork objects and go through the same converter.
"""
import dataclasses
import functools
import json
import math
import os
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SHARED

from converters.errors import ConversionError
from converters.tf_pickle import TFNetwork, load_tf_pickle
from converters.tf_stylegan1 import convert_g_style, default_truncation, resolve_kwargs
from sparse_jax.models import stylegan1 as sg1

REF_DIR = os.path.join(SHARED, "reference", "stylegan-tf")
CASES = ("sg1_r32_rgb", "sg1_r128_rgb")


def _tol(ref):
    return 1e-4 * max(1.0, float(np.max(np.abs(ref))))


def _close(got, ref, what):
    err = float(np.max(np.abs(np.asarray(got, np.float64) - ref)))
    assert err <= _tol(ref), f"{what}: max |port - ref| = {err:.3g} > {_tol(ref):.3g}"


# ----------------------------------------------------------------------------- numpy reference


def _lrelu(x, kind="lrelu"):
    return np.maximum(x, 0.2 * x) if kind == "lrelu" else np.maximum(x, 0.0)


def _coef(fan_in, gain, lrmul, wscale):
    return gain * lrmul / math.sqrt(fan_in) if wscale else lrmul


def np_mapping(kw, flat, z):
    """G_mapping in float64: z [N, latent] -> ws [N, num_ws, dlatent]."""
    x = np.asarray(z, np.float64)
    if kw["normalize_latents"]:
        x = x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + 1e-8)
    i = 0
    while f"mapping/Dense{i}/weight" in flat:
        w = flat[f"mapping/Dense{i}/weight"].astype(np.float64)
        b = flat[f"mapping/Dense{i}/bias"].astype(np.float64)
        lr = kw["mapping_lrmul"]
        x = _lrelu(x @ (w * _coef(w.shape[0], math.sqrt(2), lr, kw["use_wscale"])) + b * lr,
                   kw["mapping_nonlinearity"])
        i += 1
    num_ws = 2 * int(math.log2(kw["resolution"])) - 2
    return np.repeat(x[:, None], num_ws, axis=1)


def _conv3x3(x, w):
    """NCHW correlation, HWIO kernel, zero padding 1."""
    h, wd = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return sum(np.einsum("nihw,io->nohw", xp[:, :, u:u + h, v:v + wd], w[u, v])
               for u in range(3) for v in range(3))


def _fused_up_conv(x, w):
    """NVIDIA's upscale2d_conv2d, literally: [3,3,I,O] -> [3,3,O,I], pad to 5x5, sum the four 4x4
    windows, conv2d_transpose stride 2 'SAME' (scatter form, crop 1 before)."""
    k = np.pad(np.transpose(w, (0, 1, 3, 2)), ((1, 1), (1, 1), (0, 0), (0, 0)))
    k = k[1:, 1:] + k[:-1, 1:] + k[1:, :-1] + k[:-1, :-1]  # [4,4,O,I]
    n, _, h, wd = x.shape
    full = np.zeros((n, k.shape[2], 2 * h + 2, 2 * wd + 2))
    for u in range(4):
        for v in range(4):
            full[:, :, u:u + 2 * h:2, v:v + 2 * wd:2] += np.einsum("nihw,oi->nohw", x, k[u, v])
    return full[:, :, 1:1 + 2 * h, 1:1 + 2 * wd]


def _blur(x):
    f = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
    h, w = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return sum(f[u, v] * xp[:, :, u:u + h, v:v + w] for u in range(3) for v in range(3))


def np_synthesis(kw, flat, ws, noise=True, capture=None):
    """G_synthesis in float64 at lod 0: ws [N, num_ws, D] -> NCHW image."""
    f = {k: np.asarray(v, np.float64) for k, v in flat.items()}
    ws = np.asarray(ws, np.float64)
    d, wscale, act = ws.shape[2], kw["use_wscale"], kw["nonlinearity"]
    log2r = int(math.log2(kw["resolution"]))

    def epilogue(x, i, s):
        if noise:
            x = x + f[f"synthesis/noise{i}"] * f[f"synthesis/{s}/Noise/weight"][None, :, None, None]
        x = _lrelu(x + f[f"synthesis/{s}/bias"][None, :, None, None], act)
        x = x - x.mean(axis=(2, 3), keepdims=True)
        x = x / np.sqrt((x**2).mean(axis=(2, 3), keepdims=True) + 1e-8)
        st = ws[:, i] @ (f[f"synthesis/{s}/StyleMod/weight"] * _coef(d, 1, 1, wscale))
        st = st + f[f"synthesis/{s}/StyleMod/bias"]
        c = x.shape[1]
        x = x * (1 + st[:, :c, None, None]) + st[:, c:, None, None]
        if capture is not None:
            capture[s] = x
        return x

    def conv_w(s):
        w = f[f"synthesis/{s}/weight"]
        return w * _coef(9 * w.shape[2], math.sqrt(2), 1, wscale)

    x = np.repeat(f["synthesis/4x4/Const/const"], ws.shape[0], axis=0)
    x = epilogue(x, 0, "4x4/Const")
    x = epilogue(_conv3x3(x, conv_w("4x4/Conv")), 1, "4x4/Conv")
    for r in range(3, log2r + 1):
        s = f"{2**r}x{2**r}"
        fused = kw["fused_scale"] if kw["fused_scale"] != "auto" else 2**r >= 128
        if fused:
            y = _fused_up_conv(x, conv_w(f"{s}/Conv0_up"))
        else:
            y = _conv3x3(x.repeat(2, axis=2).repeat(2, axis=3), conv_w(f"{s}/Conv0_up"))
        if kw["blur_filter"]:
            y = _blur(y)
        x = epilogue(y, 2 * r - 4, f"{s}/Conv0_up")
        x = epilogue(_conv3x3(x, conv_w(f"{s}/Conv1")), 2 * r - 3, f"{s}/Conv1")
    w = f["synthesis/ToRGB_lod0/weight"][0, 0]
    return np.einsum("nihw,io->nohw", x, w * _coef(w.shape[0], 1, 1, wscale)) + \
        f["synthesis/ToRGB_lod0/bias"][None, :, None, None]


# ----------------------------------------------------------------------------- fixtures


@functools.lru_cache(maxsize=None)
def _fixture(case):
    path = os.path.join(REF_DIR, f"{case}_nosrc.pkl")
    with open(path, "rb") as fh:
        nets = load_tf_pickle(fh.read(), path)
    conv = convert_g_style(path, nets[2])
    ref = dict(np.load(os.path.join(REF_DIR, f"{case}_ref.npz")))
    with open(os.path.join(REF_DIR, f"{case}_meta.json")) as fh:
        meta = json.load(fh)
    return nets, conv, ref, meta


@functools.lru_cache(maxsize=None)
def _jitted(cfg):
    mapping = jax.jit(lambda v, z, psi, cut: sg1.map_latents(cfg, v, z, truncation_psi=psi,
                                                            truncation_cutoff=cut),
                      static_argnums=(3,))
    synth = jax.jit(lambda v, ws, mode: sg1.synthesize(cfg, v, ws, noise_mode=mode),
                    static_argnums=(2,))
    return mapping, synth


def _synth_layers(cfg, layers, return_image=True):
    return jax.jit(functools.partial(sg1.synthesize, cfg, layers=layers,
                                     return_image=return_image))


def _trunc_of(key):
    """'psi07_cut8' -> (0.7, 8); 'cutnone' -> cutoff None (every slot)."""
    m = re.fullmatch(r"psi(\d)(\d*)_cut(\d+|none)", key)
    psi = float(f"{m.group(1)}.{m.group(2) or 0}")
    return psi, None if m.group(3) == "none" else int(m.group(3))


@pytest.mark.parametrize("case", CASES)
def test_fixture_ws_and_images(case):
    _, conv, ref, meta = _fixture(case)
    cfg, v = conv.cfg, conv.variables
    mapping, synth = _jitted(cfg)
    checked = []
    # ws from z (and z2), with every stated truncation.
    _close(mapping(v, ref["z"], 1.0, None), ref["ws_psi1"], "ws_psi1")
    _close(mapping(v, ref["z2"], 1.0, None), ref["ws2_psi1"], "ws2_psi1")
    checked += ["ws_psi1", "ws2_psi1"]
    for key in ref:
        if m := re.fullmatch(r"ws_(psi\d+_cut\w+)", key):
            psi, cut = _trunc_of(m.group(1))
            _close(mapping(v, ref["z"], psi, cut), ref[key], key)
            checked.append(key)
    # Images: from z through the whole generator, from ws through synthesis alone.
    for key in ref:
        if not key.startswith("img_") or ref[key].dtype != np.float32:
            continue
        if key in ("img_psi1", "img_psi1_synth"):
            ws = ref["ws_psi1"] if key.endswith("_synth") else mapping(v, ref["z"], 1.0, None)
            out = synth(v, ws, "const")
        elif key == "img_default_trunc":
            d = conv.defaults
            assert d == default_truncation(resolve_kwargs(case, _fixture(case)[0][2]))
            assert (d["truncation_psi"], d["truncation_cutoff"]) == (0.7, 8)
            out = synth(v, mapping(v, ref["z"], d["truncation_psi"], d["truncation_cutoff"]),
                        "const")
        elif key == "img_mix":
            k = meta["references"]["mix_layer"]
            mixed = np.concatenate([ref["ws_psi1"][:, :k], ref["ws2_psi1"][:, k:]], axis=1)
            np.testing.assert_array_equal(mixed, ref["ws_mix"])
            out = synth(v, ref["ws_mix"], "const")
        elif m := re.fullmatch(r"img_(psi\d+_cut\w+?)(_synth|_noise0)?", key):
            psi, cut = _trunc_of(m.group(1))
            ws = mapping(v, ref["z"], psi, cut) if m.group(2) is None else ref[f"ws_{m.group(1)}"]
            out = synth(v, ws, "none" if m.group(2) == "_noise0" else "const")
        elif key == "img_psi1_noise0":
            out = synth(v, ref["ws_psi1"], "none")
        else:
            raise AssertionError(f"reference key {key} not handled by the test")
        chex.assert_shape(out, ref[key].shape)
        _close(out, ref[key], key)
        checked.append(key)
    assert {"img_psi1", "img_default_trunc", "img_mix", "img_psi1_noise0",
            "img_psi07_cut8", "img_psi07_cut8_synth", "ws_psi07_cut8"} <= set(checked)
    # G (slot 0) is the training network: a converter reading it would be far off.
    g_err = float(np.max(np.abs(np.asarray(synth(v, ref["ws_psi1"], "const")) -
                                ref["G_img_psi1"])))
    assert g_err > 100 * _tol(ref["G_img_psi1"])


@pytest.mark.parametrize("case", CASES)
def test_fixture_layer_activations(case):
    nets, conv, ref, _ = _fixture(case)
    cfg = conv.cfg
    acts_keys = [k for k in ref if k.startswith("act/")]
    assert len(acts_keys) == cfg.num_ws + 1
    ws = ref["ws_psi1"][:2]
    img, acts = _synth_layers(cfg, tuple(k[4:] for k in acts_keys))(conv.variables, ws)
    for key in acts_keys:
        name = sg1.canonical_layer_name(cfg, key[4:])
        _close(acts[name], ref[key], f"{key} ({name})")
    # The numpy reference agrees with NVIDIA's TF too, so the random-config tests below rest on it.
    gs = nets[2]
    cap = {}
    img_np = np_synthesis(resolve_kwargs(case, gs), gs.flat_variables(), ws, capture=cap)
    _close(img_np, ref["img_psi1"][:2], "numpy reference")
    _close(cap["4x4/Conv"], ref["act/4x4/Conv"], "numpy reference 4x4/Conv")


def test_uint8_conversion_matches_nvidia():
    from sparse_jax.core.images import to_uint8
    _, conv, ref, _ = _fixture("sg1_r32_rgb")
    img = np.asarray(_jitted(conv.cfg)[1](conv.variables, ref["ws_psi1"], "const"))
    u8 = np.asarray(to_uint8(img))  # NHWC, as NVIDIA's convert_images_to_uint8(nchw_to_nhwc)
    chex.assert_shape(u8, ref["img_psi1_uint8_nhwc"].shape)
    assert np.max(np.abs(u8.astype(int) - ref["img_psi1_uint8_nhwc"].astype(int))) <= 1


def test_convert_file_dispatches_tf_stylegan1():
    import converters
    path = os.path.join(REF_DIR, "sg1_r32_rgb_nosrc.pkl")
    conv = converters.load_converted(path)
    assert isinstance(conv.cfg, sg1.GeneratorConfig)
    ref = _fixture("sg1_r32_rgb")[2]
    assert conv.defaults == {"truncation_psi": 0.7, "truncation_cutoff": 8}
    _close(_jitted(conv.cfg)[1](conv.variables, ref["ws_psi1"], "const"), ref["img_psi1"],
           "img_psi1")


# ----------------------------------------------------------------------------- random TF networks


def _random_gs(static_kwargs, seed=0, growing_torgbs=True):
    """A G_style TFNetwork with NVIDIA's variable names and shapes and random values."""
    kw = {**resolve_kwargs("defaults", _bare_gs({})), **static_kwargs}
    rng = np.random.default_rng(seed)
    log2r = int(math.log2(kw["resolution"]))
    num_ws = 2 * log2r - 2
    d, zdim, nc = kw["dlatent_size"], kw["latent_size"], kw["num_channels"]

    def nf(stage):
        return min(int(kw["fmap_base"] / 2.0 ** (stage * kw["fmap_decay"])), kw["fmap_max"])

    def w(*shape, fan_in, gain=None, lrmul=1.0):
        gain = math.sqrt(2) if gain is None else gain
        std = 1.0 / lrmul if kw["use_wscale"] else gain / math.sqrt(fan_in) / lrmul
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def b(n, scale=0.2):
        return (rng.standard_normal(n) * scale).astype(np.float32)

    mapping = {}
    feats = [zdim] + [kw["mapping_fmaps"]] * (kw["mapping_layers"] - 1) + [d]
    for i in range(kw["mapping_layers"]):
        lr = kw["mapping_lrmul"]
        mapping[f"Dense{i}/weight"] = w(feats[i], feats[i + 1], fan_in=feats[i], lrmul=lr)
        mapping[f"Dense{i}/bias"] = b(feats[i + 1], 0.2 / lr)
    syn = {"lod": np.asarray(np.float32(0))}
    for i in range(num_ws):
        r = 2 ** (i // 2 + 2)
        syn[f"noise{i}"] = rng.standard_normal((1, 1, r, r)).astype(np.float32)

    def layer(scope, c, c_in=None):
        if c_in is not None:
            syn[f"{scope}/weight"] = w(3, 3, c_in, c, fan_in=9 * c_in)
        syn[f"{scope}/Noise/weight"] = b(c, 0.3)
        syn[f"{scope}/bias"] = b(c)
        syn[f"{scope}/StyleMod/weight"] = w(d, 2 * c, fan_in=d, gain=1.0)
        syn[f"{scope}/StyleMod/bias"] = b(2 * c)

    syn["4x4/Const/const"] = rng.standard_normal((1, nf(1), 4, 4)).astype(np.float32)
    layer("4x4/Const", nf(1))
    layer("4x4/Conv", nf(1), nf(1))
    for r in range(3, log2r + 1):
        layer(f"{2**r}x{2**r}/Conv0_up", nf(r - 1), nf(r - 2))
        layer(f"{2**r}x{2**r}/Conv1", nf(r - 1), nf(r - 1))
    for lod in range(log2r - 1 if growing_torgbs else 1):
        c = nf(log2r - lod - 1)
        syn[f"ToRGB_lod{lod}/weight"] = w(1, 1, c, nc, fan_in=c, gain=1.0)
        syn[f"ToRGB_lod{lod}/bias"] = b(nc)
    top = {"lod": np.asarray(np.float32(0)), "dlatent_avg": b(d, 0.5)}
    comps = {
        "synthesis": TFNetwork("G_synthesis", 3, "G_synthesis", dict(static_kwargs), syn, {},
                               "placeholder", where="Gs.synthesis"),
        "mapping": TFNetwork("G_mapping", 3, "G_mapping",
                             {"dlatent_broadcast": num_ws, **static_kwargs}, mapping, {},
                             "placeholder", where="Gs.mapping")}
    return TFNetwork("Gs", 3, "G_style", dict(static_kwargs), top, comps, "placeholder",
                     where="Gs"), kw


def _bare_gs(static_kwargs):
    return TFNetwork("Gs", 3, "G_style", dict(static_kwargs), {}, {}, "", where="Gs")


RANDOM_CONFIGS = {
    # grayscale, small latents, 2 mapping layers, relu, the fused (flipped) conv forced at 8-16 px
    "r16_gray_fused_relu": dict(resolution=16, num_channels=1, latent_size=32, dlatent_size=32,
                                mapping_layers=2, mapping_fmaps=24, fmap_base=64, fmap_max=16,
                                fused_scale=True, nonlinearity="relu", label_size=0),
    # 128 px: 'auto' fuses only the last block; no equalized lr, no blur, no latent normalisation
    "r128_nowscale_noblur": dict(resolution=128, num_channels=3, latent_size=16, dlatent_size=16,
                                 mapping_fmaps=16, fmap_base=128, fmap_max=8, use_wscale=False,
                                 blur_filter=None, normalize_latents=False, mapping_lrmul=0.1),
    # NVIDIA's defaults for everything the pickle omits: 512 latents, 8 mapping layers
    "r8_defaults": dict(resolution=8, num_channels=3, label_size=0, fmap_base=16, fmap_max=8),
}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n.startswith("r128") else n
    for n in sorted(RANDOM_CONFIGS)])
def test_random_config_matches_numpy_reference(name):
    gs, kw = _random_gs(RANDOM_CONFIGS[name], seed=len(name))
    conv = convert_g_style(f"{name}.pkl", gs)
    cfg, v = conv.cfg, conv.variables
    # The converted tree is exactly the one init_generator lays out for the same config.
    init = jax.eval_shape(lambda k: sg1.init_generator(k, cfg), jax.random.key(0))
    chex.assert_trees_all_equal_shapes_and_dtypes(init, v)
    assert sg1.num_params(init) == sg1.num_params(v)
    z = np.random.default_rng(1).standard_normal((2, cfg.z_dim)).astype(np.float32)
    flat = gs.flat_variables()
    ws_ref = np_mapping(kw, flat, z)
    mapping, synth = _jitted(cfg)
    ws = mapping(v, z, 1.0, None)
    chex.assert_shape(ws, (2, cfg.num_ws, cfg.w_dim))
    _close(ws, ws_ref, f"{name} ws")
    for mode, noise in (("const", True), ("none", False)):
        img = synth(v, ws, mode)
        chex.assert_shape(img, (2, cfg.img_channels, cfg.img_resolution, cfg.img_resolution))
        _close(img, np_synthesis(kw, flat, ws_ref, noise=noise), f"{name} img noise {mode}")


def test_fresh_init_runs_and_is_finite():
    cfg = sg1.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=2,
                              mapping_layers=2, mapping_fmaps=8, fmap_base=16, fmap_max=4)
    v = jax.jit(sg1.init_generator, static_argnums=1)(jax.random.key(0), cfg)
    np.testing.assert_array_equal(np.asarray(v["params"]["synthesis"]["b4"]["const"]), 1.0)
    out = jax.jit(lambda v, z: sg1.generate(cfg, v, z, truncation_psi=0.7,
                                            truncation_cutoff=4))(v, jnp.ones((2, 8)))
    chex.assert_shape(out, (2, 2, 8, 8))
    chex.assert_tree_all_finite(out)


def test_upsample_conv_equals_nearest_then_conv():
    rng = np.random.default_rng(0)
    for h, w in ((4, 4), (5, 7)):
        x = rng.standard_normal((2, h, w, 3)).astype(np.float32)
        k = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
        got = sg1.upsample_conv3x3(jnp.asarray(x), jnp.asarray(k))
        up = x.transpose(0, 3, 1, 2).repeat(2, axis=2).repeat(2, axis=3).astype(np.float64)
        want = _conv3x3(up, k.astype(np.float64)).transpose(0, 2, 3, 1)
        np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)
        # The blur folded into the phases is NVIDIA's blur2d of the up-sampled output.
        got_blur = sg1.upsample_conv3x3(jnp.asarray(x), jnp.asarray(k), blur=True)
        want_blur = _blur(want.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
        np.testing.assert_allclose(np.asarray(got_blur), want_blur, atol=2e-5)
        # ... and NVIDIA's literal fused op is that with the flipped kernel (spec 3.5).
        fused = _fused_up_conv(x.transpose(0, 3, 1, 2).astype(np.float64), k)
        flipped = sg1.upsample_conv3x3(jnp.asarray(x), jnp.asarray(k[::-1, ::-1]))
        np.testing.assert_allclose(np.asarray(flipped), fused.transpose(0, 2, 3, 1), atol=2e-5)


def test_instance_norm_one_pass_keeps_precision():
    # Offset far above the spread and heavy tails: the cases that break E[x^2] - E[x]^2.
    rng = np.random.default_rng(0)
    x = 300.0 + rng.standard_t(3, size=(2, 128, 64, 3)) * np.array([0.01, 1.0, 50.0])
    x[0, 0, 0, 0] += 40.0  # an outlier where a naive first-pixel shift would sit
    x64 = x - x.mean(axis=(1, 2), keepdims=True)
    want = x64 / np.sqrt((x64**2).mean(axis=(1, 2), keepdims=True) + 1e-8)
    got = sg1._instance_norm(jnp.asarray(x, jnp.float32))
    # fp32 input rounding alone is ~300 * 6e-8 / std, ~2e-3 for the std-0.01 channel (NVIDIA's
    # two-pass form in fp32 is off by 1.6e-3 there; a first-pixel shift by 1.1e-2).
    np.testing.assert_allclose(np.asarray(got)[..., 1:], want[..., 1:], atol=2e-4)
    np.testing.assert_allclose(np.asarray(got)[..., 0], want[..., 0], atol=5e-3)


# ----------------------------------------------------------------------------- API behaviour


@functools.lru_cache(maxsize=None)
def _tiny():
    cfg = sg1.GeneratorConfig(z_dim=16, w_dim=16, img_resolution=16, img_channels=1,
                              mapping_layers=2, mapping_fmaps=16, fmap_base=32, fmap_max=8)
    gs, _ = _random_gs(dict(resolution=16, num_channels=1, latent_size=16, dlatent_size=16,
                            mapping_layers=2, mapping_fmaps=16, fmap_base=32, fmap_max=8))
    conv = convert_g_style("tiny.pkl", gs)
    assert conv.cfg == cfg
    return cfg, conv.variables


def test_random_noise_needs_key_and_varies():
    cfg, v = _tiny()
    ws = _jitted(cfg)[0](v, jax.random.normal(jax.random.key(0), (3, cfg.z_dim)), 1.0, None)
    with pytest.raises(ValueError, match="explicit PRNG key"):
        sg1.synthesize(cfg, v, ws, noise_mode="random")
    rand = jax.jit(lambda v, ws, key: sg1.synthesize(cfg, v, ws, noise_mode="random", key=key))
    a = rand(v, ws, jax.random.key(1))
    b = rand(v, ws, jax.random.key(1))
    c = rand(v, ws, jax.random.key(2))
    const = _jitted(cfg)[1](v, ws, "const")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(jnp.max(jnp.abs(a - c))) > 1e-3
    assert float(jnp.max(jnp.abs(a - const))) > 1e-3
    with pytest.raises(ValueError, match="noise_mode"):
        sg1.synthesize(cfg, v, ws, noise_mode="bogus")


def test_jit_traces_once_per_batch_shape():
    cfg, v = _tiny()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def gen(variables, z):
        return sg1.generate(cfg, variables, z, truncation_psi=0.7, truncation_cutoff=8)

    for seed in range(3):
        img = gen(v, jax.random.normal(jax.random.key(seed), (4, cfg.z_dim)))
        chex.assert_shape(img, (4, 1, 16, 16))
    chex.clear_trace_counter()


def test_layer_names_and_aliases():
    cfg, v = _tiny()
    names = sg1.synthesis_layer_names(cfg)
    assert names[:4] == ["synthesis.b4.conv0.style", "synthesis.b4.conv0",
                         "synthesis.b4.conv1.style", "synthesis.b4.conv1"]
    assert names[-1] == "synthesis.b16.torgb"
    for alias, want in (("4x4/Const", "synthesis.b4.conv0"), ("4x4/Conv", "synthesis.b4.conv1"),
                        ("8x8/Conv0_up", "synthesis.b8.conv0"), ("16x16/Conv1",
                                                                 "synthesis.b16.conv1"),
                        ("ToRGB_lod0", "synthesis.b16.torgb"), ("b8.conv1", "synthesis.b8.conv1"),
                        ("8x8/Conv1/StyleMod", "synthesis.b8.conv1.style"),
                        ("Dense1", "mapping.fc1")):
        assert sg1.canonical_layer_name(cfg, alias) == want
    with pytest.raises(ValueError, match="synthesis.b8.conv0"):
        sg1.canonical_layer_name(cfg, "b32.conv1")
    ws = sg1.map_latents(cfg, v, jnp.ones((2, cfg.z_dim)))
    img, acts = _synth_layers(cfg, ("8x8/Conv1", "b4.conv0.style", "ToRGB_lod0"))(v, ws)
    chex.assert_shape(acts["synthesis.b8.conv1"], (2, 8, 8, 8))
    chex.assert_shape(acts["synthesis.b4.conv0.style"], (2, 16))
    np.testing.assert_array_equal(np.asarray(acts["synthesis.b16.torgb"]), np.asarray(img))
    early = _synth_layers(cfg, ("b8.conv1",), return_image=False)(v, ws)
    assert set(early) == {"synthesis.b8.conv1"}
    np.testing.assert_allclose(np.asarray(early["synthesis.b8.conv1"]),
                               np.asarray(acts["synthesis.b8.conv1"]), atol=1e-5)
    _, macts = sg1.map_latents(cfg, v, jnp.ones((2, cfg.z_dim)), layers=["mapping.fc0"])
    chex.assert_shape(macts["mapping.fc0"], (2, 16))


def test_truncation_convention():
    cfg, v = _tiny()
    ws = sg1.map_latents(cfg, v, jax.random.normal(jax.random.key(0), (2, cfg.z_dim)))
    avg = v["buffers"]["mapping"]["w_avg"]
    every = sg1.truncate(cfg, v, ws, 0.5)  # cutoff None = every slot (project convention)
    np.testing.assert_allclose(np.asarray(every), np.asarray(avg + 0.5 * (ws - avg)), atol=1e-6)
    part = sg1.truncate(cfg, v, ws, 0.5, 3)
    np.testing.assert_allclose(np.asarray(part[:, 3:]), np.asarray(ws[:, 3:]))
    np.testing.assert_allclose(np.asarray(part[:, :3]), np.asarray(every[:, :3]))
    # NVIDIA's cutoff None means no truncation: the recorded default says psi 1 then.
    kw = resolve_kwargs("x", _bare_gs({"truncation_cutoff": None}))
    assert default_truncation(kw) == {"truncation_psi": 1.0, "truncation_cutoff": None}


def test_style_affines_for_sefa():
    from sparse_jax.decompose import sefa
    cfg, v = _tiny()
    aff = sg1.style_affines(cfg, v)
    assert [n for n, _ in aff] == [n for n in sg1.synthesis_layer_names(cfg)
                                   if n.endswith(("conv0", "conv1"))]
    assert len(aff) == cfg.num_ws
    for (_, w), (r, conv) in zip(aff, [(r, c) for r in cfg.block_resolutions
                                       for c in ("conv0", "conv1")], strict=True):
        chex.assert_shape(w, (2 * cfg.channels(r), cfg.w_dim))
        stored = v["params"]["synthesis"][f"b{r}"][conv]["style"]["weight"]
        np.testing.assert_array_equal(np.asarray(w), np.asarray(stored).T)
    comps, lam = sefa.sefa_from_weights(jnp.concatenate([w for _, w in aff]), k=3)
    chex.assert_shape(comps, (3, cfg.w_dim))
    assert np.all(np.diff(np.asarray(lam)) <= 1e-5)


def test_stylegan2_style_affines_in_ws_slot_order():
    from sparse_jax.models import stylegan2 as sg2
    cfg = sg2.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=16, img_channels=1,
                              mapping_layers=1, channel_base=64, channel_max=8)
    v = jax.eval_shape(lambda k: sg2.init_generator(k, cfg), jax.random.key(0))
    aff = sg2.style_affines(cfg, v)
    names = ["synthesis.b4.conv1", "synthesis.b8.conv0", "synthesis.b8.conv1",
             "synthesis.b16.conv0", "synthesis.b16.conv1", "synthesis.b16.torgb"]
    assert [n for n, _ in aff] == names and len(aff) == cfg.num_ws
    for n, w in aff:
        assert sg2.ws_slot(cfg, int(n.split(".")[1][1:]), n.split(".")[2]) == names.index(n)
        layer = v["params"]["synthesis"][n.split(".")[1]][n.split(".")[2]]
        assert w is layer["affine"]["weight"] and w.shape[1] == cfg.w_dim


def test_config_roundtrip_and_validation():
    cfg = sg1.GeneratorConfig(img_resolution=128, fused_scale=False, blur=False)
    assert sg1.GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.num_ws == 12 and cfg.block_resolutions == (4, 8, 16, 32, 64, 128)
    assert sg1.GeneratorConfig().channels(1024) == 16 and sg1.GeneratorConfig().channels(32) == 512
    assert [sg1.GeneratorConfig(img_resolution=256).fused(r) for r in (64, 128, 256)] == \
        [False, True, True]
    with pytest.raises(ValueError, match="unknown generator config keys"):
        sg1.GeneratorConfig.from_dict({**cfg.to_dict(), "channel_base": 1})
    for bad in (dict(c_dim=3), dict(fused_scale="yes"), dict(nonlinearity="tanh"),
                dict(img_resolution=48), dict(fmap_base=1, fmap_max=1, img_resolution=16)):
        with pytest.raises(ValueError):
            sg1.GeneratorConfig(**bad)


# ----------------------------------------------------------------------------- refusals


def _set_kw(g, key, value):
    """Sets a kwarg on Gs and its components, as NVIDIA's G_style passes them on."""
    for net in (g, *g.components.values()):
        net.static_kwargs[key] = value


def _mutated(fn):
    gs, _ = _random_gs(RANDOM_CONFIGS["r16_gray_fused_relu"])
    fn(gs)
    return gs


REFUSALS = {
    "lod": (lambda g: g.variables.__setitem__("lod", np.asarray(np.float32(1.5))), "lod"),
    "synthesis lod": (lambda g: g.components["synthesis"].variables.__setitem__(
        "lod", np.asarray(np.float32(2))), "lod"),
    "labels": (lambda g: _set_kw(g, "label_size", 10), "label_size"),
    "structure": (lambda g: _set_kw(g, "structure", "spiral"), "structure"),
    "blur": (lambda g: _set_kw(g, "blur_filter", [1, 3, 3, 1]), "blur_filter"),
    "unknown kwarg": (lambda g: g.static_kwargs.__setitem__("use_magic", 3), "use_magic"),
    "ablation": (lambda g: _set_kw(g, "use_styles", False), "use_styles"),
    "fp16": (lambda g: _set_kw(g, "dtype", "float16"), "dtype"),
    "build func": (lambda g: setattr(g, "build_func_name", "G_paper"), "build_func_name"),
    "synthesis func": (lambda g: setattr(g.components["synthesis"], "build_func_name",
                                         "G_synthesis_stylegan2"), "build_func_name"),
    "component kwargs": (lambda g: g.components["mapping"].static_kwargs.__setitem__(
        "mapping_layers", 7), "mapping_layers"),
    "resolution": (lambda g: _set_kw(g, "resolution", 32), "resolution"),
    "blur type": (lambda g: _set_kw(g, "blur_filter", "abc"), "blur_filter"),
    "psi type": (lambda g: _set_kw(g, "truncation_psi", "0.7"), "truncation_psi"),
    "fmap_base type": (lambda g: _set_kw(g, "fmap_base", [512]), "fmap_base"),
    "mapping_fmaps": (lambda g: _set_kw(g, "mapping_fmaps", 99), "mapping_fmaps"),
    "rank": (lambda g: g.components["mapping"].variables.__setitem__(
        "Dense0/weight", np.zeros(4, np.float32)), "mapping/Dense0/weight"),
    "missing var": (lambda g: g.components["synthesis"].variables.pop("8x8/Conv1/bias"),
                    "8x8/Conv1/bias"),
    "bad shape": (lambda g: g.components["mapping"].variables.__setitem__(
        "Dense1/bias", np.zeros(5, np.float32)), "mapping/Dense1/bias"),
    "extra var": (lambda g: g.components["synthesis"].variables.__setitem__(
        "8x8/Extra/weight", np.zeros(3, np.float32)), "8x8/Extra/weight"),
}


@pytest.mark.parametrize("what", sorted(REFUSALS))
def test_refusals_name_file_and_field(what):
    mutate, field = REFUSALS[what]
    gs = _mutated(mutate)
    with pytest.raises(ConversionError) as e:
        convert_g_style("some/model.pkl", gs)
    msg = str(e.value)
    assert msg.startswith("some/model.pkl: ") and field in msg and "\n" not in msg, msg


def test_fixture_refusal_of_g_slot_is_not_silent():
    nets, conv, _, _ = _fixture("sg1_r32_rgb")
    # G (slot 0) converts too (same structure), but its weights differ from Gs's.
    g = convert_g_style("x.pkl", nets[0])
    w_gs = conv.variables["params"]["synthesis"]["b8"]["conv1"]["weight"]
    w_g = g.variables["params"]["synthesis"]["b8"]["conv1"]["weight"]
    assert float(jnp.max(jnp.abs(w_gs - w_g))) > 1e-3
    with pytest.raises(ConversionError, match="build_func_name"):
        convert_g_style("x.pkl", nets[1])  # D


def test_noise_slots_and_const_layout():
    _, conv, _, _ = _fixture("sg1_r32_rgb")
    nets = _fixture("sg1_r32_rgb")[0]
    syn = nets[2].components["synthesis"].variables
    buf = conv.variables["buffers"]["synthesis"]
    np.testing.assert_array_equal(np.asarray(buf["b16"]["conv0"]["noise_const"]),
                                  syn["noise4"][0, 0])
    np.testing.assert_array_equal(np.asarray(buf["b16"]["conv1"]["noise_const"]),
                                  syn["noise5"][0, 0])
    const = np.asarray(conv.variables["params"]["synthesis"]["b4"]["const"])
    np.testing.assert_array_equal(const[1, 2], syn["4x4/Const/const"][0, :, 1, 2])
    assert dataclasses.is_dataclass(conv)
