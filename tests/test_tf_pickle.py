"""NVIDIA TensorFlow StyleGAN pickles: safe reading, StyleGAN2 TF / ADA TF conversion, refusals."""
import functools
import io
import os
import pickle
import resource
import struct

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tf_pickle_writer as tw
from conftest import SHARED

import converters
from converters import safe_pickle, tf_pickle
from sparse_jax.core.images import to_uint8
from sparse_jax.io import model_dirs
from sparse_jax.models import stylegan2 as sg

TF_DIR = os.path.join(SHARED, "reference", "stylegan-tf")
SG2 = os.path.join(TF_DIR, "sg2_r32_rgb_nosrc.pkl")
SG2_CFG = sg.GeneratorConfig(z_dim=128, w_dim=128, img_resolution=32, img_channels=3,
                             mapping_layers=8, channel_base=2048, channel_max=128)

_map = jax.jit(sg.map_latents, static_argnums=0,
               static_argnames=("truncation_psi", "truncation_cutoff"))
_synth = jax.jit(sg.synthesize, static_argnums=0, static_argnames=("noise_mode",))
_generate = jax.jit(functools.partial(sg.generate, truncation_psi=0.5), static_argnums=0)


@functools.lru_cache(maxsize=None)
def _ref():
    return dict(np.load(os.path.join(TF_DIR, "sg2_r32_rgb_ref.npz")))


@functools.lru_cache(maxsize=None)
def _fixture_bytes(path=SG2):
    with open(path, "rb") as f:
        return f.read()


def _err(got, ref):
    return float(np.abs(np.asarray(got, np.float64) - ref).max())


def _close(got, ref, what):
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    assert np.shape(got) == ref.shape, what
    assert _err(got, ref) <= tol, f"{what}: max |diff| {_err(got, ref)} > {tol}"


def _write(tmp_path, name, data):
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _truncation(key):
    """'psi07_cut4' -> (0.7, 4); 'psi05_cutnone' -> (0.5, None); 'psi1' -> (1.0, None)."""
    psi, _, cut = key.partition("_cut")
    value = float(psi[3:]) if psi == "psi1" else float("0." + psi[4:])
    return value, None if cut in ("", "none") else int(cut)


def assert_reproduces_sg2_reference(cfg, variables, defaults):
    """Every float32 ws_* / img_* of sg2_r32_rgb_ref.npz, from z and from ws."""
    ref = _ref()
    checked = set()
    with jax.default_matmul_precision("highest"):
        z, z2 = jnp.asarray(ref["z"]), jnp.asarray(ref["z2"])
        for key in sorted(k for k in ref if k.startswith("ws_psi")):  # ws from z
            psi, cut = _truncation(key[3:])
            _close(_map(cfg, variables, z, truncation_psi=psi, truncation_cutoff=cut),
                   ref[key], key)
            checked.add(key)
        _close(_map(cfg, variables, z2), ref["ws2_psi1"], "ws2_psi1")
        checked.add("ws2_psi1")
        for key in sorted(ref):
            if not key.startswith("img_psi") or ref[key].dtype != np.float32:
                continue
            trunc = key[4:].split("_synth")[0].split("_noise0")[0].split("_fusedmodconv")[0]
            psi, cut = _truncation(trunc)
            if key.endswith("_synth"):  # synthesis fed the stored ws
                ws = jnp.asarray(ref["ws_" + trunc])
            else:  # the whole generator from z
                ws = _map(cfg, variables, z, truncation_psi=psi, truncation_cutoff=cut)
            mode = "none" if key.endswith("_noise0") else "const"
            _close(_synth(cfg, variables, ws, noise_mode=mode), ref[key], key)
            checked.add(key)
        _close(_synth(cfg, variables, jnp.asarray(ref["ws_mix"])), ref["img_mix"], "img_mix")
        ws_d = _map(cfg, variables, z, truncation_psi=defaults["truncation_psi"],
                    truncation_cutoff=defaults["truncation_cutoff"])
        img_d = _synth(cfg, variables, ws_d)
        _close(img_d, ref["img_default_trunc"], "img_default_trunc")
        checked |= {"ws_mix", "img_mix", "img_default_trunc"}
        img1 = np.asarray(_synth(cfg, variables, _map(cfg, variables, z)))
    u8 = to_uint8(img1).astype(np.int32)
    assert np.abs(u8 - ref["img_psi1_uint8_nhwc"].astype(np.int32)).max() <= 1
    # G (slot 0) is a different network: a converter reading it would fail the checks above.
    assert _err(img1, ref["G_img_psi1"]) > 100 * 1e-4 * max(1.0, np.abs(ref["G_img_psi1"]).max())
    want = {k for k in ref if (k.startswith("ws") or k.startswith("img_"))
            and ref[k].dtype == np.float32}
    assert want <= checked, sorted(want - checked)


# ----------------------------------------------------------------------------- the fixture


def test_sg2_fixture_converts_and_reproduces_every_reference():
    conv = converters.load_converted(SG2)
    assert conv.flavour == "stylegan2-tf"
    assert conv.cfg == SG2_CFG
    assert conv.defaults == {"truncation_psi": 0.5, "truncation_cutoff": None}
    assert_reproduces_sg2_reference(conv.cfg, conv.variables, conv.defaults)
    cfg, variables = converters.convert_file(SG2)
    assert cfg == SG2_CFG
    chex.assert_trees_all_equal(variables, conv.variables)


def test_convert_writes_a_directory_with_the_checkpoint_defaults(tmp_path):
    out = os.path.join(tmp_path, "gen")
    converters.convert(SG2, out)
    cfg, variables = model_dirs.load_generator(out)
    assert cfg == SG2_CFG
    defaults = model_dirs.generator_defaults(out)
    assert defaults == {"truncation_psi": 0.5, "truncation_cutoff": None}
    assert model_dirs.generator_meta(out)["info"]["flavour"] == "stylegan2-tf"
    ref = _ref()
    with jax.default_matmul_precision("highest"):
        ws = _map(cfg, variables, jnp.asarray(ref["z"]), truncation_psi=0.5)
        _close(_synth(cfg, variables, ws), ref["img_default_trunc"], "img_default_trunc")


def test_reader_api_on_the_fixture():
    nets = tf_pickle.load_tf_pickle(_fixture_bytes(), SG2)
    assert [n.name for n in nets] == ["G", "D", "Gs"]
    gs = nets[2]
    assert (gs.version, gs.build_func_name) == (4, "G_main")
    assert list(gs.components) == ["synthesis", "mapping"]
    assert gs.components["mapping"].static_kwargs["dlatent_broadcast"] == 8
    assert gs.input_shapes is None  # state v4
    flat = gs.flat_variables()
    assert list(flat)[:3] == ["lod", "dlatent_avg", "synthesis/noise0"]
    assert flat["lod"].shape == () and float(flat["lod"]) == 0.0
    assert flat["synthesis/4x4/Const/const"].shape == (1, 128, 4, 4)
    assert flat["mapping/Dense0/weight"].shape == (128, 128)
    assert all(v.dtype == np.float32 for v in flat.values())
    np.testing.assert_array_equal(flat["dlatent_avg"], _ref()["dlatent_avg"])
    g_flat = nets[0].flat_variables()
    assert sorted(g_flat) == sorted(flat)
    assert not np.array_equal(g_flat["synthesis/4x4/Conv/weight"],
                              flat["synthesis/4x4/Conv/weight"])


def _rewrite(nets, **kw):
    """Re-pickles decoded networks with the test writer."""
    def back(n):
        return tw.network(n.name, n.build_func_name, n.static_kwargs, list(n.variables.items()),
                          {k: back(c) for k, c in n.components.items()}, version=n.version,
                          src=n.build_module_src)
    return tw.dumps(tuple(back(n) for n in nets), **kw)


@pytest.mark.parametrize("protocol,numpy_names,own", [
    (2, "1", False), (3, "1", False), (4, "2", False), (5, "2", True)])
def test_protocols_and_numpy_spellings_read_the_same(tmp_path, protocol, numpy_names, own):
    nets = tf_pickle.load_tf_pickle(_fixture_bytes(), SG2)
    data = _rewrite(nets, protocol=protocol, numpy_names=numpy_names, numpy_own_reduce=own)
    assert (b"_codecs" in data) == (protocol == 2)
    assert (b"_frombuffer" in data) == own
    again = tf_pickle.load_tf_pickle(data, "rewritten")
    for a, b in zip(nets, again, strict=True):
        assert a.static_kwargs == b.static_kwargs
        fa, fb = a.flat_variables(), b.flat_variables()
        assert list(fa) == list(fb)
        for k in fa:
            np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
    if protocol == 2:  # and the whole conversion through the re-written file
        conv = converters.load_converted(_write(tmp_path, "p2.pkl", data))
        assert_reproduces_sg2_reference(conv.cfg, conv.variables, conv.defaults)


def test_fortran_ordered_and_big_endian_arrays_decode():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    net = tw.network("X", "G_main", {}, [("f", np.asfortranarray(a)), ("b", a.astype(">f4")),
                                         ("s", np.float32(2.5))], version=3)
    for protocol in (2, 3, 4):
        (x,) = tf_pickle.load_tf_pickle(tw.dumps((net,), protocol=protocol), "x")
        for name, want in (("f", a), ("b", a), ("s", np.float32(2.5))):
            got = x.variables[name]
            assert got.dtype == np.float32 and got.dtype.isnative, name  # native float32
            np.testing.assert_array_equal(got, want, err_msg=name)
    net = tw.network("X", "G_main", {}, [("i", np.arange(3, dtype=np.int32))], version=3)
    with pytest.raises(converters.ConversionError, match="'i' has dtype int32, expected float32"):
        tf_pickle.load_tf_pickle(tw.dumps((net,)), "x")


# ----------------------------------------------------------------------------- synthetic files


def _official_shapes(cfg):
    flat = {}
    for coll in ("params", "buffers"):
        tree = model_dirs.abstract_generator(cfg)[coll]
        for path, v in jax.tree_util.tree_leaves_with_path(tree):
            flat[".".join(p.key for p in path)] = v.shape
    return flat


def _flat_tree(variables):
    out = {}
    for coll in ("params", "buffers"):
        for path, v in jax.tree_util.tree_leaves_with_path(variables[coll]):
            out[".".join(p.key for p in path)] = np.asarray(v)
    return out


SYNTHETIC = {
    # StyleGAN2 TF (v4) 64x64 grayscale; mapping_fmaps / latent sizes left at the code
    # defaults (512), as NVIDIA's config-f passes none of them.
    "sg2_r64_gray_defaults": dict(
        cfg=sg.GeneratorConfig(z_dim=512, w_dim=512, img_resolution=64, img_channels=1,
                               mapping_layers=2, channel_base=512, channel_max=32),
        kwargs=dict(num_channels=1, resolution=64, label_size=0, mapping_layers=2,
                    fmap_base=256, fmap_max=32), ada=False),
    # StyleGAN2-ADA TF (v5) 16x16 RGB, conditional (LabelEmbed), conv_clamp, 2 mapping layers
    # of a width other than w_dim.
    "ada_r16_labels_clamp": dict(
        cfg=sg.GeneratorConfig(z_dim=24, w_dim=16, c_dim=3, img_resolution=16, img_channels=3,
                               mapping_layers=2, channel_base=128, channel_max=16,
                               conv_clamp=256.0, layer_features=20),
        kwargs=dict(num_channels=3, resolution=16, label_size=3, latent_size=24,
                    dlatent_size=16, mapping_layers=2, mapping_fmaps=20, fmap_base=64,
                    fmap_max=16, num_fp16_res=4, conv_clamp=256), ada=True),
    # 256 px, to reach the deep blocks (tiny widths keep it cheap).
    "sg2_r256_tiny": dict(
        cfg=sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=256, img_channels=3,
                               mapping_layers=3, channel_base=256, channel_max=8),
        kwargs=dict(num_channels=3, resolution=256, label_size=0, latent_size=8,
                    dlatent_size=8, mapping_fmaps=8, mapping_layers=3, fmap_base=128,
                    fmap_max=8, truncation_psi=0.7, truncation_cutoff=6), ada=False),
}


def _synthetic(name, *, seed=0, **over):
    case = SYNTHETIC[name]
    cfg = case["cfg"]
    st = tw.random_official_state(_official_shapes(cfg), seed)
    args = dict(img_resolution=cfg.img_resolution, mapping_layers=cfg.mapping_layers,
                num_ws=cfg.num_ws, c_dim=cfg.c_dim, ada=case["ada"])
    args.update(over)
    kwargs = dict(case["kwargs"], **args.pop("kwargs", {}))
    return cfg, st, tw.stylegan2_networks(st, kwargs, **args)


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_pickles_round_trip(tmp_path, name):
    cfg, st, nets = _synthetic(name, seed=1)
    protocol = 3 if SYNTHETIC[name]["ada"] else 4  # as each training loop writes
    path = _write(tmp_path, f"{name}.pkl", tw.dumps(nets, protocol=protocol))
    conv = converters.load_converted(path)
    assert conv.cfg == cfg
    assert conv.flavour == ("stylegan2-ada-tf" if SYNTHETIC[name]["ada"] else "stylegan2-tf")
    got = _flat_tree(conv.variables)
    assert sorted(got) == sorted(st)
    for k in st:  # every TF variable landed where the table says (Gs, not the jittered G)
        if k.endswith("affine.bias"):  # stored as bias - 1 in TF: exact only to an ulp
            np.testing.assert_allclose(got[k], st[k], rtol=0, atol=1e-6, err_msg=k)
        else:
            np.testing.assert_array_equal(got[k], st[k], err_msg=k)
    kw = SYNTHETIC[name]["kwargs"]
    assert conv.defaults == {"truncation_psi": kw.get("truncation_psi", 0.5),
                             "truncation_cutoff": kw.get("truncation_cutoff")}
    z = jax.random.normal(jax.random.key(0), (2, cfg.z_dim))
    c = jax.nn.one_hot(jnp.arange(2), cfg.c_dim) if cfg.c_dim else None
    img = _generate(cfg, conv.variables, z, c)
    chex.assert_shape(img, (2, cfg.img_channels, cfg.img_resolution, cfg.img_resolution))
    assert np.all(np.isfinite(np.asarray(img)))
    if cfg.conv_clamp:
        assert float(jnp.abs(img).max()) <= cfg.conv_clamp


def test_ada_without_noise_converts_to_zero_noise(tmp_path):
    cfg, st, nets = _synthetic("ada_r16_labels_clamp", use_noise=False,
                               kwargs=dict(use_noise=False))
    conv = converters.load_converted(_write(tmp_path, "nonoise.pkl", tw.dumps(nets, protocol=3)))
    assert any("use_noise=False" in n for n in conv.notes)
    z = jax.random.normal(jax.random.key(1), (2, cfg.z_dim))
    ws = _map(cfg, conv.variables, z, jax.nn.one_hot(jnp.arange(2), 3))
    a = _synth(cfg, conv.variables, ws, noise_mode="random", key=jax.random.key(2))
    b = _synth(cfg, conv.variables, ws, noise_mode="none")
    chex.assert_trees_all_close(a, b, atol=1e-5, rtol=1e-5)  # jit: same math, other order


def test_embedded_source_is_never_executed(tmp_path):
    marker = os.path.join(tmp_path, "executed")
    cfg, st, nets = _synthetic("sg2_r64_gray_defaults", src=tw.file_writing_source(marker))
    data = tw.dumps(nets, protocol=4)
    assert marker.encode() in data
    conv = converters.load_converted(_write(tmp_path, "src.pkl", data))
    assert conv.cfg == cfg
    gs = tf_pickle.load_tf_pickle(data, "src")[2]
    assert "os.system" in gs.build_module_src and marker in gs.components["synthesis"] \
        .build_module_src
    assert not os.path.exists(marker)


# ----------------------------------------------------------------------------- refusals


def _expect(path, *fragments, cls=converters.ConversionError):
    with pytest.raises(cls) as e:
        converters.convert_file(path)
    msg = str(e.value)
    assert path in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


@pytest.mark.parametrize("over,fragments", [
    (dict(kwargs=dict(architecture="resnet")), ("'architecture'", "'resnet'", "'skip'")),
    (dict(kwargs=dict(architecture="orig")), ("'architecture'", "'orig'")),
    (dict(synthesis_func="G_synthesis_stylegan_revised"),
     ("Gs.synthesis.build_func_name", "configs B-D")),
    (dict(synthesis_func="G_synthesis_mystery"), ("Gs.synthesis.build_func_name",
                                                  "G_synthesis_mystery")),
    (dict(lod=1.5), ("'lod'", "1.5", "lod = 0")),
    (dict(kwargs=dict(resolution=128)), ("'resolution'", "128", "64")),
    (dict(kwargs=dict(fmap_base=128)), ("fmap_base=128",)),
    (dict(kwargs=dict(nonlinearity="relu")), ("'nonlinearity'", "'relu'")),
    (dict(kwargs=dict(resample_kernel=[1, 1])), ("resample_kernel", "[1, 1]")),
    (dict(extra_synthesis_vars=[("64x64/Skip/weight", np.ones((1, 1, 32, 32), np.float32))]),
     ("64x64/Skip/weight",)),
    (dict(kwargs=dict(truncation_psi="half")), ("'truncation_psi'", "'half'")),
])
def test_refuses_unsupported_stylegan2_variants(tmp_path, over, fragments):
    _, _, nets = _synthetic("sg2_r64_gray_defaults", **over)
    _expect(_write(tmp_path, "bad.pkl", tw.dumps(nets)), *fragments)


def _gs_variant(nets, **state_changes):
    g, d, gs = nets
    gs._state.update(state_changes)
    return g, d, gs


def test_refuses_other_build_functions_and_versions(tmp_path):
    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    cases = [
        (dict(build_func_name="G_paper"), ("'G_paper'", "ProGAN")),
        (dict(build_func_name="G_mystery"), ("Gs.build_func_name", "'G_mystery'")),
        (dict(build_func_name="D_basic"), ("'D_basic'", "discriminator")),
        (dict(version=6), ("Gs has Network state version 6", "[2, 3, 4, 5]")),
        (dict(version=2), ("version 2", "ProGAN")),
    ]
    for i, (change, fragments) in enumerate(cases):
        _, _, nets = _synthetic("sg2_r64_gray_defaults")
        path = _write(tmp_path, f"v{i}.pkl", tw.dumps(_gs_variant(nets, **change)))
        _expect(path, *fragments)


def test_refuses_broken_states_naming_the_field(tmp_path):
    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    nets[2]._state["components"]["mapping"]._state.pop("variables")
    _expect(_write(tmp_path, "novars.pkl", tw.dumps(nets)), "Gs.mapping", "'variables'")
    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    syn = nets[2]._state["components"]["synthesis"]._state
    syn["variables"][3] = (syn["variables"][3][0], syn["variables"][3][1].astype(np.float64))
    _expect(_write(tmp_path, "f64.pkl", tw.dumps(nets)), "Gs.synthesis variable", "float64",
            "expected float32")
    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    path = _write(tmp_path, "pair.pkl", tw.dumps(nets[:2]))
    _expect(path, "(G, D, Gs)", "holds 2")
    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    mapping = nets[2]._state["components"]["mapping"]._state
    mapping["variables"].insert(0, ("LabelConcat/weight", np.ones((2, 512), np.float32)))
    _expect(_write(tmp_path, "concat.pkl", tw.dumps(nets)), "LabelConcat")


def test_refuses_progan_pickles(tmp_path):
    data = b"\x80\x02ctfutil\nNetwork\nq\x00)\x81q\x01}q\x02b."
    _expect(_write(tmp_path, "progan.pkl", data), "tfutil.Network", "ProGAN")


def test_refuses_os_system_in_a_tf_pickle_without_running_it(tmp_path):
    marker = os.path.join(tmp_path, "pwned")

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    nets[2]._state["static_kwargs"]["resolution"] = Evil()
    path = _write(tmp_path, "evil.pkl", tw.dumps(nets))
    _expect(path, f"{os.system.__module__}.system", "nothing from this file was executed",
            cls=converters.UnsafePickleError)
    with pytest.raises(converters.UnsafePickleError):
        tf_pickle.load_tf_pickle(_fixture_bytes(path), path)
    assert not os.path.exists(marker)


def test_refuses_object_dtypes_and_build_on_allowed_globals(tmp_path):
    data = _fixture_bytes()
    obj = data.replace(b"\x8c\x02f4\x94", b"\x8c\x02O8\x94", 1)  # the first dtype('f4')
    assert obj != data
    _expect(_write(tmp_path, "obj.pkl", obj), "numpy dtype", "object",
            cls=converters.UnsafePickleError)
    # BUILD with slot state on the allowed Network class itself (it would change how later
    # files are read in this process).
    poison = (b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00N}q\x01X\x0c\x00\x00\x00__setstate__"
              b"q\x02cnumpy\nndarray\nq\x03s\x86q\x04b.")
    _expect(_write(tmp_path, "poison.pkl", poison), "refusing BUILD",
            cls=converters.UnsafePickleError)
    assert tf_pickle.NetworkState.__setstate__ is not safe_pickle.NDARRAY
    tf_pickle.load_tf_pickle(data, SG2)  # still reads normally


def test_refuses_a_huge_claimed_shape_without_allocating(tmp_path):
    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    syn = nets[2]._state["components"]["synthesis"]._state
    syn["variables"][0] = ("noise0", tw.ClaimedArray((10**6, 10**6), b"\0" * 64))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _expect(_write(tmp_path, "huge.pkl", tw.dumps(nets)), "1000000000000 elements",
            "refused without allocating")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 200_000  # kB: nothing near the claimed 4 TB was touched
    syn["variables"][0] = ("noise0", tw.ClaimedArray((1, 1, 4, 4), b"\0" * 60))
    _expect(_write(tmp_path, "short.pkl", tw.dumps(nets)), "needs 64 bytes", "holds 60")
    # A claimed byte-string length far beyond the file is refused too (truncated).
    trunc = b"\x80\x04\x8e" + struct.pack("<Q", 10**12) + b"abc"
    _expect(_write(tmp_path, "bytes.pkl", trunc), "truncated or corrupt")


def test_stylegan3_with_numpy_attributes_is_still_named(tmp_path, monkeypatch):
    import torch_fixtures as tf

    real = tf.stylegan3_generator

    def with_numpy(ns, st, cfg):
        g = real(ns, st, cfg)
        for layer in g.meta["state"]["_modules"]["synthesis"].meta["state"]["_modules"].values():
            layer.meta["state"].update(in_size=np.array([36, 36], np.int64),
                                       in_sampling_rate=np.float64(16.0))
        return g

    monkeypatch.setattr(tf, "stylegan3_generator", with_numpy)
    st = dict(np.load(os.path.join(SHARED, "reference", "stylegan2",
                                   "s_res32_small_G_ema_state.npz")))
    cfg = dict(z_dim=128, w_dim=128, c_dim=0, img_resolution=32, img_channels=3, num_layers=4,
               channel_base=2048, channel_max=128, conv_clamp=256, lr_multiplier=0.01)
    data = tf.official_snapshot_bytes(st, cfg, stylegan3=True, numpy_names="1")
    assert b"_reconstruct" in data
    _expect(_write(tmp_path, "sg3.pkl", data), "StyleGAN3 (alias-free) generator detected")


def test_deeply_nested_kwargs_and_cyclic_components_are_refused():
    deep = []
    for _ in range(100000):
        deep = [deep]
    assert len(safe_pickle.short_repr(deep)) < 100
    _, _, nets = _synthetic("sg2_r64_gray_defaults", kwargs=dict(resample_kernel=deep))
    with pytest.raises(converters.ConversionError, match="nested too deeply"):
        tf_pickle.networks_from_object(tuple(_stub(n) for n in nets), "deep")
    _, _, nets = _synthetic("sg2_r64_gray_defaults")
    gs = _stub(nets[2])
    gs.state["components"] = {"synthesis": gs}
    with pytest.raises(converters.ConversionError, match="refers back"):
        tf_pickle.networks_from_object((_stub(nets[0]), _stub(nets[1]), gs), "cycle")


def _stub(net):
    """A writer Network as the reader's stand-in would hold it (components stubbed too)."""
    s = tf_pickle.NetworkState()
    s.state = dict(net._state)
    if "components" in s.state:
        s.state["components"] = {k: _stub(c) for k, c in s.state["components"].items()}
    return s


def test_a_byte_array_claiming_more_than_the_file_is_refused_before_allocating(tmp_path):
    # Found by bench/fuzz_converter.py: one flipped bit turns MEMOIZE into BYTEARRAY8, whose
    # pure-Python loader would zero-fill the claimed length (here 2^40 bytes) before reading.
    data = b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b"abc."
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _expect(_write(tmp_path, "ba8.pkl", data), "claims 1099511627776 bytes")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000
    ok = pickle.dumps([bytearray(b"x" * 100_000)], protocol=5)  # in-frame arrays still load
    assert len(safe_pickle.restricted_load(io.BytesIO(ok), allowed={}, source="ok")[0]) == 100_000
