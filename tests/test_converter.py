"""Checkpoint converter: official .pkl and rosinality .pt -> sparse-jax generator (CPU, tiny)."""
import dataclasses
import functools
import io
import os
import pickle
import subprocess
import sys
from collections import OrderedDict

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch_fixtures as tf
from conftest import ROOT, SHARED

import converters
from converters import torch_storage
from converters.rosinality_pt import estimate_w_avg
from sparse_jax.io import model_dirs
from sparse_jax.models import stylegan2 as sg

REF_DIR = os.path.join(SHARED, "reference", "stylegan2")
REF_PKL = os.path.join(REF_DIR, "s_res32_small_nosrc.pkl")
REF_CFG = dict(z_dim=128, w_dim=128, c_dim=0, img_resolution=32, img_channels=3, num_layers=4,
               channel_base=2048, channel_max=128, conv_clamp=256, lr_multiplier=0.01)
REF_SG_CFG = sg.GeneratorConfig(z_dim=128, w_dim=128, c_dim=0, img_resolution=32, img_channels=3,
                                mapping_layers=4, channel_base=2048, channel_max=128,
                                conv_clamp=256.0)


@functools.lru_cache(maxsize=None)
def _ref():
    return dict(np.load(os.path.join(REF_DIR, "s_res32_small_ref.npz")))


@functools.lru_cache(maxsize=None)
def _ref_state():
    return dict(np.load(os.path.join(REF_DIR, "s_res32_small_G_ema_state.npz")))


def _flat(variables):
    """{'params': {...}, 'buffers': {...}} -> official name -> array."""
    out = {}
    for coll in ("params", "buffers"):
        for path, v in jax.tree_util.tree_leaves_with_path(variables[coll]):
            keep = isinstance(v, jax.ShapeDtypeStruct)
            out[".".join(p.key for p in path)] = v if keep else np.asarray(v)
    return out


def _assert_tree_equals_state(variables, state):
    want = {k: v for k, v in state.items() if not k.endswith("resample_filter")}
    got = _flat(variables)
    assert sorted(got) == sorted(want)
    chex.assert_trees_all_equal(got, want)


_map = jax.jit(sg.map_latents, static_argnums=0, static_argnames=("truncation_psi",
                                                                   "truncation_cutoff"))
_synth = jax.jit(sg.synthesize, static_argnums=0, static_argnames=("noise_mode",))


def _close(got, ref):
    got = np.asarray(got)
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got - ref).max())
    assert got.shape == ref.shape and err <= tol, f"max |diff| {err} > {tol}"


def _assert_renders_reference(cfg, variables, *, truncated=True):
    ref = _ref()
    with jax.default_matmul_precision("highest"):
        ws = _map(cfg, variables, ref["z"])
        _close(ws, ref["ws_psi1"])
        _close(_synth(cfg, variables, ws, noise_mode="const"), ref["img_const_psi1"])
        _close(_synth(cfg, variables, jnp.asarray(ref["ws_mixed"]), noise_mode="none"),
               ref["img_mixed_none"])
        if truncated:
            ws07 = _map(cfg, variables, ref["z"], truncation_psi=0.7, truncation_cutoff=4)
            _close(_synth(cfg, variables, ws07, noise_mode="const"),
                   ref["img_const_psi07_cutoff4"])


def _write(tmp_path, name, data):
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ----------------------------------------------------------------------------- the real fixture


def test_reference_snapshot_pickle_converts_to_the_reference_generator():
    conv = converters.load_converted(REF_PKL)
    assert conv.flavour == "stylegan2-ada-pytorch"
    assert conv.cfg == REF_SG_CFG
    assert conv.num_params == 1083219  # s_res32_small_meta.json
    _assert_tree_equals_state(conv.variables, _ref_state())  # G_ema, not G
    _assert_renders_reference(conv.cfg, conv.variables)


def test_convert_file_returns_cfg_and_variables():
    cfg, variables = converters.convert_file(REF_PKL)
    assert cfg == REF_SG_CFG
    chex.assert_trees_all_equal_shapes_and_dtypes(variables,
                                                  model_dirs.abstract_generator(cfg))


# ----------------------------------------------------------------------------- torch-written files


@pytest.mark.parametrize("flavour,numpy_names,omit", [
    ("ada", "2", ()),
    ("sg3", "1", ("conv_clamp",)),  # stylegan3-repo default conv_clamp=256 must be applied
])
def test_official_structure_written_by_torch_round_trips(tmp_path, flavour, numpy_names, omit):
    data = tf.official_snapshot_bytes(_ref_state(), REF_CFG, numpy_names=numpy_names,
                                      flavour=flavour, omit_kwargs=omit)
    old_np = b"numpy.core.multiarray" in data
    assert old_np == (numpy_names == "1")
    conv = converters.load_converted(_write(tmp_path, "snap.pkl", data))
    assert conv.flavour == {"ada": "stylegan2-ada-pytorch", "sg3": "stylegan3-repo"}[flavour]
    assert conv.cfg == REF_SG_CFG
    _assert_tree_equals_state(conv.variables, _ref_state())
    _assert_renders_reference(conv.cfg, conv.variables, truncated=flavour == "ada")


def _tiny_state(cfg, seed):
    """Official-named state of a random generator (shapes from the model) with no zero term."""
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape).astype(np.float32)
            for k, v in _flat(model_dirs.abstract_generator(cfg)).items()}


def test_tiny_different_config_round_trips(tmp_path):
    cfg = sg.GeneratorConfig(z_dim=8, w_dim=16, c_dim=3, img_resolution=16, img_channels=1,
                             mapping_layers=2, channel_base=64, channel_max=16, conv_clamp=None,
                             mapping_lr_multiplier=0.05)
    state = _tiny_state(cfg, seed=3)
    fx_cfg = dict(z_dim=8, w_dim=16, c_dim=3, img_resolution=16, img_channels=1, num_layers=2,
                  channel_base=64, channel_max=16, conv_clamp=None, lr_multiplier=0.05)
    data = tf.official_snapshot_bytes(state, fx_cfg, omit_kwargs=("conv_clamp",))
    conv = converters.load_converted(_write(tmp_path, "tiny.pkl", data))
    assert conv.cfg == cfg
    _assert_tree_equals_state(conv.variables, state)
    z = jax.random.normal(jax.random.key(0), (3, 8))
    c = jax.nn.one_hot(jnp.arange(3), 3)
    gen = jax.jit(sg.generate, static_argnums=0, static_argnames="truncation_psi")
    want = gen(cfg, _unflat(state), z, c, truncation_psi=0.5)
    got = gen(cfg, conv.variables, z, c, truncation_psi=0.5)
    chex.assert_shape(got, (3, 1, 16, 16))
    chex.assert_trees_all_close(got, want, atol=1e-6)


def _unflat(state):
    out = {"params": {}, "buffers": {}}
    for name, v in state.items():
        if name.endswith("resample_filter"):
            continue
        parts = name.split(".")
        node = out["buffers" if parts[-1] in ("w_avg", "noise_const") else "params"]
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


@pytest.mark.parametrize("style,legacy", [("convert", False), ("train", False),
                                          ("convert", True)])
def test_rosinality_checkpoint_round_trips(tmp_path, style, legacy):
    data = tf.rosinality_bytes(_ref_state(), REF_CFG, style=style, legacy_format=legacy)
    assert data[:4] == b"PK\x03\x04" or legacy
    conv = converters.load_converted(_write(tmp_path, "ckpt.pt", data), w_avg_seed=5)
    assert conv.flavour == "rosinality"
    assert conv.cfg == dataclasses.replace(REF_SG_CFG, conv_clamp=None)
    state = dict(_ref_state())
    if style == "train":  # no latent_avg: estimated like rosinality's mean_latent, seeded
        z = jax.random.normal(jax.random.key(5), (4096, 128))
        want = jnp.mean(sg.map_latents(conv.cfg, conv.variables, z)[:, 0], axis=0)
        chex.assert_trees_all_close(conv.variables["buffers"]["mapping"]["w_avg"], want,
                                    atol=1e-5)
        state["mapping.w_avg"] = np.asarray(conv.variables["buffers"]["mapping"]["w_avg"])
        assert any("estimated" in n for n in conv.notes)
    _assert_tree_equals_state(conv.variables, state)
    # No clamp in rosinality; the reference never reaches 256, so the images agree.
    _assert_renders_reference(conv.cfg, conv.variables, truncated=style == "convert")


def test_estimate_w_avg_is_seeded():
    cfg, variables = REF_SG_CFG, _unflat(_ref_state())
    a = estimate_w_avg(cfg, variables, seed=1, num=64)
    b = estimate_w_avg(cfg, variables, seed=1, num=64)
    c = estimate_w_avg(cfg, variables, seed=2, num=64)
    chex.assert_shape(a, (128,))
    chex.assert_trees_all_equal(a, b)
    assert float(jnp.abs(a - c).max()) > 0


# ----------------------------------------------------------------------------- storage decoding


def _dtype_zoo():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    return OrderedDict(
        f32=base, f32_t=base.t(), f32_slice=base[1:3, ::2], f64=base.double()[::2],
        f16=base.half(), bf16=base.bfloat16().t(), i64=torch.arange(-5, 7).reshape(3, 4),
        i32=torch.arange(10, dtype=torch.int32)[3:], i16=torch.arange(6, dtype=torch.int16),
        i8=torch.arange(-3, 3, dtype=torch.int8), u8=torch.arange(250, 256, dtype=torch.uint8),
        b=torch.tensor([True, False, True]), scalar=torch.tensor(2.5), empty=torch.zeros(0, 3),
        expanded=torch.arange(3.0).reshape(3, 1).expand(3, 4), c64=torch.randn(3, 2).to(
            torch.complex64),
        param=torch.nn.Parameter(base[:, 1:].clone()))


def _as_numpy(t):
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


@pytest.mark.parametrize("container", ["zip", "legacy", "pickle"])
def test_storage_decoding_matches_torch(container):
    zoo = _dtype_zoo()
    if container == "pickle":  # NVIDIA style: torch.storage._load_from_bytes per storage
        data = pickle.dumps(dict(zoo), protocol=4)
    else:
        buf = io.BytesIO()
        torch.save(dict(zoo), buf, _use_new_zipfile_serialization=container == "zip")
        data = buf.getvalue()
    kind, obj = torch_storage.load_checkpoint(data, source="zoo", pickle_globals={},
                                              torch_globals={})
    assert kind == {"zip": "torch-zip", "legacy": "torch-legacy", "pickle": "pickle"}[container]
    for name, t in zoo.items():
        got = torch_storage.to_numpy(obj[name])
        want = _as_numpy(t)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


# ----------------------------------------------------------------------------- rejections


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _expect_error(path, *fragments, cls=converters.ConversionError):
    with pytest.raises(cls) as e:
        converters.convert_file(path)
    msg = str(e.value)
    assert path in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_refuses_os_system_without_executing_it(tmp_path):
    marker = os.path.join(tmp_path, "pwned")
    # A hand-written pickle naming `os.system` (as an attacker would write it) ...
    crafted = (b"\x80\x02cos\nsystem\nq\x00X" + len(f"touch {marker}").to_bytes(4, "little")
               + f"touch {marker}".encode() + b"\x85R.")
    path = _write(tmp_path, "evil.pkl", crafted)
    _expect_error(path, "os.system", cls=converters.UnsafePickleError)
    # ... and one pickled from the function object (on Linux it is named posix.system).
    path2 = _write(tmp_path, "evil2.pkl", pickle.dumps(
        {"G_ema": _Reduce(os.system, (f"touch {marker}",))}, protocol=4))
    _expect_error(path2, f"{os.system.__module__}.system", cls=converters.UnsafePickleError)
    assert not os.path.exists(marker)


def test_refuses_builtins_eval(tmp_path):
    marker = os.path.join(tmp_path, "pwned")
    code = f"open({marker!r}, 'w').close()"
    path = _write(tmp_path, "eval.pkl", pickle.dumps({"G_ema": _Reduce(eval, (code,))}))
    _expect_error(path, "builtins.eval", cls=converters.UnsafePickleError)
    assert not os.path.exists(marker)


def test_refuses_malicious_global_inside_embedded_storage_bytes(tmp_path):
    marker = os.path.join(tmp_path, "pwned")
    blob = b"".join(pickle.dumps(x, protocol=2) for x in (
        torch_storage.LEGACY_MAGIC, 1001, {"little_endian": True}))
    blob += pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=2)
    blob += pickle.dumps([], protocol=2)
    import torch.storage as ts_mod
    data = pickle.dumps({"x": _Reduce(ts_mod._load_from_bytes, (blob,))}, protocol=4)
    _expect_error(_write(tmp_path, "inner.pkl", data), "system", "embedded storage",
                  cls=converters.UnsafePickleError)
    assert not os.path.exists(marker)


def test_refuses_truncated_and_corrupt_files(tmp_path):
    with open(REF_PKL, "rb") as f:
        data = f.read()
    _expect_error(_write(tmp_path, "half.pkl", data[: len(data) // 2]), "truncated or corrupt")
    pt = tf.rosinality_bytes(_ref_state(), REF_CFG)
    _expect_error(_write(tmp_path, "half.pt", pt[: len(pt) // 2]), "truncated or corrupt")
    rnd = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    _expect_error(_write(tmp_path, "random.bin", b"\x13" + rnd), "unknown file format")
    _expect_error(_write(tmp_path, "empty.pkl", b""), "empty file")
    _expect_error(os.path.join(tmp_path, "missing.pkl"), "cannot read")


def test_refuses_snapshot_without_g_ema(tmp_path):
    data = tf.official_snapshot_bytes(_ref_state(), REF_CFG, with_g_ema=False)
    _expect_error(_write(tmp_path, "nog.pkl", data), "no generator", "'G_ema'")
    data = pickle.dumps({"weights": [1, 2, 3]})
    _expect_error(_write(tmp_path, "other.pkl", data), "no generator")


@pytest.mark.parametrize("variant,fragments", [
    (dict(stylegan3=True), ("StyleGAN3 (alias-free) generator detected; only StyleGAN2 is "
                            "supported",)),
    (dict(architecture="resnet"), ("architecture 'resnet'", "only", "'skip'")),
    (dict(architecture="orig"), ("architecture 'orig'",)),
    (dict(filter_override=np.outer([1, 1, 1, 1], [1, 1, 1, 1]).astype(np.float32) / 16),
     ("non-standard resample filter", "synthesis.b32.conv0.resample_filter")),
    (dict(use_noise=False), ("use_noise=False",)),
])
def test_refuses_unsupported_generators(tmp_path, variant, fragments):
    data = tf.official_snapshot_bytes(_ref_state(), REF_CFG, **variant)
    _expect_error(_write(tmp_path, "bad.pkl", data), *fragments)


def test_lists_every_mismatch_against_the_model(tmp_path):
    state = dict(_ref_state())
    state["mapping.w_avg"] = np.zeros(129, np.float32)
    state["synthesis.b8.torgb.bias"] = np.zeros(4, np.float32)
    data = tf.official_snapshot_bytes(state, REF_CFG)
    msg = _expect_error(_write(tmp_path, "shapes.pkl", data), "does not match")
    assert "w_avg" in msg and "b8']['torgb']['bias" in msg


def test_refuses_rosinality_args_that_disagree_with_weights(tmp_path):
    data = tf.rosinality_bytes(_ref_state(), REF_CFG, style="train",
                               args_overrides={"size": 64, "channel_multiplier": 2})
    _expect_error(_write(tmp_path, "bad.pt", data), "args.size=64", "training args disagree")


# ----------------------------------------------------------------------------- binary


def test_bin_convert_writes_a_loadable_directory(tmp_path):
    out = os.path.join(tmp_path, "gen")
    cmd = [sys.executable, os.path.join(ROOT, "bin", "convert.py"), "--src", REF_PKL,
           "--out", out]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "stylegan2-ada-pytorch" in res.stdout and "32x32" in res.stdout
    assert "1083219 params" in res.stdout
    cfg, variables = model_dirs.load_generator(out)
    assert cfg == REF_SG_CFG
    _assert_tree_equals_state(variables, _ref_state())
    assert model_dirs.generator_meta(out)["info"]["flavour"] == "stylegan2-ada-pytorch"
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    with pytest.raises(FileExistsError, match="--overwrite"):
        converters.convert(REF_PKL, out)
    converters.convert(REF_PKL, out, overwrite=True)
    assert model_dirs.load_generator(out)[0] == REF_SG_CFG


def test_rosinality_layout_reproduces_official_images_in_rosinality_semantics():
    """The spec-4 table, read through a torch re-statement of rosinality's forward pass."""
    sd = tf.rosinality_state_dict(_ref_state(), REF_CFG)
    ref = _ref()
    with torch.no_grad():
        w = tf.rosinality_mapping(sd, torch.from_numpy(ref["z"]))
        _close(w.numpy(), ref["ws_psi1"][:, 0])
        img = tf.rosinality_forward(sd, torch.from_numpy(ref["ws_mixed"][:2]))
    _close(img.numpy(), ref["img_mixed_const"][:2])


def test_refuses_legacy_tensorflow_pickles_with_a_hint(tmp_path):
    data = b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01."
    _expect_error(_write(tmp_path, "tf.pkl", data), "TensorFlow Network without a state dict")
