"""NVIDIA snapshot pickles (stylegan2-ada-pytorch, stylegan3 repo's networks_stylegan2) -> G_ema.

The pickle is a dict (`G`, `D`, `G_ema`, `augment_pipe`, `training_set_kwargs`) whose modules are
persistent objects (`safe_pickle.PersistentObject`): a class name and the module `__dict__`
(`_parameters`, `_buffers`, `_modules`, `_init_kwargs` and resolved attributes such as
`conv_clamp`). Hyper-parameters come from `G_ema`'s `_init_kwargs` (spec section 1) and are
cross-checked against every module's resolved attributes, so a misread flavour default cannot
pass silently.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from converters.errors import ConversionError
from converters.safe_pickle import PersistentObject, short_repr
from converters.stylegan2_names import (
    Converted,
    check_fir,
    check_resample_kwarg,
    state_to_variables,
)
from converters.torch_storage import to_numpy
from sparse_jax.models import stylegan2 as sg

ADA = "stylegan2-ada-pytorch"
SG3_REPO = "stylegan3-repo"
_TOP_KWARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
# Constructor defaults that matter when a kwarg is absent (spec section 1).
_SYNTHESIS_DEFAULTS = {
    ADA: {"channel_base": 32768, "channel_max": 512, "conv_clamp": None},
    SG3_REPO: {"channel_base": 32768, "channel_max": 512, "conv_clamp": 256},
}
# Synthesis kwargs that do not change fp32 inference results.
_IGNORED_SYNTHESIS_KWARGS = {"num_fp16_res", "fp16_channels_last", "channels_last",
                             "fused_modconv_default", "use_fp16"}
_HANDLED_SYNTHESIS_KWARGS = {"channel_base", "channel_max", "conv_clamp", "architecture",
                             "resample_filter", "use_noise", "activation", "kernel_size"}
_HANDLED_MAPPING_KWARGS = {"num_layers", "lr_multiplier", "embed_features", "layer_features",
                           "activation", "w_avg_beta"}
_SG3_LAYER = re.compile(r"^L\d+_\d+_\d+$")
_SG3_MESSAGE = "StyleGAN3 (alias-free) generator detected; only StyleGAN2 is supported"


def _walk(source: str, obj: PersistentObject, prefix: str,
          modules: dict[str, PersistentObject], tensors: dict[str, Any]) -> None:
    """Collects every module (by dotted path) and tensor (by official state-dict name)."""
    modules[prefix.rstrip(".")] = obj
    for group in ("_parameters", "_buffers"):
        entries = obj.state.get(group) or {}
        if not isinstance(entries, dict):
            raise ConversionError(f"{source}: {prefix or 'G_ema.'}{group} is not a dict")
        for name, t in entries.items():
            if t is not None:
                tensors[prefix + name] = t
    children = obj.state.get("_modules") or {}
    if not isinstance(children, dict):
        raise ConversionError(f"{source}: {prefix or 'G_ema.'}_modules is not a dict")
    for name, child in children.items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise ConversionError(f"{source}: module {prefix}{name} is a {type(child).__name__}, "
                                  "expected a persistent StyleGAN module")
        _walk(source, child, f"{prefix}{name}.", modules, tensors)


def _children(obj: PersistentObject) -> list[str]:
    return [k for k, v in (obj.state.get("_modules") or {}).items() if v is not None]


def _init_kwargs(source: str, obj: PersistentObject, what: str) -> dict:
    for key in ("_init_kwargs", "init_kwargs"):
        kw = obj.state.get(key)
        if isinstance(kw, dict):
            return dict(kw)
    raise ConversionError(f"{source}: {what} has no constructor kwargs (_init_kwargs); "
                          "cannot read its hyper-parameters")


def _same(a: Any, b: Any) -> bool:
    try:
        return _same_value(a, b)
    except (TypeError, ValueError, OverflowError, RecursionError):  # not a value of that kind
        return False


def _same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (str, bool)) or isinstance(b, (str, bool)):
        return a == b
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)


class _AttrChecker:
    """Collects every disagreement between a module's resolved attributes and the config."""

    def __init__(self, source: str, modules: dict[str, PersistentObject]):
        self.source, self.modules, self.bad = source, modules, []

    def expect(self, path: str, **expected: Any) -> None:
        state = self.modules[path].state
        for attr, want in expected.items():
            if attr in state and not _same(state[attr], want):
                self.bad.append(f"{path or 'G_ema'}.{attr} = {short_repr(state[attr])}, "
                                f"expected {want!r}")

    def raise_if_bad(self, what: str) -> None:
        if self.bad:
            raise ConversionError(f"{self.source}: {what}:\n  " + "\n  ".join(self.bad))


def convert_official(source: str, top: Any) -> Converted:
    """Converts the `G_ema` of an NVIDIA snapshot pickle (already safely unpickled)."""
    if not isinstance(top, dict):
        raise ConversionError(f"{source}: the pickle holds a {type(top).__name__}; expected a "
                              "snapshot dict with a 'G_ema' generator")
    if "G_ema" not in top:
        raise ConversionError(f"{source}: no generator found: expected a 'G_ema' entry in the "
                              f"snapshot dict, found keys {sorted(map(str, top))}")
    g = top["G_ema"]
    if not isinstance(g, PersistentObject):
        raise ConversionError(f"{source}: 'G_ema' is a {type(g).__name__}, expected a persistent "
                              "StyleGAN2 Generator module")
    modules: dict[str, PersistentObject] = {}
    tensors: dict[str, Any] = {}
    _walk(source, g, "", modules, tensors)
    if "synthesis" not in modules or "mapping" not in modules:
        raise ConversionError(f"{source}: G_ema ({g.class_name}) has no synthesis/mapping "
                              f"networks (children {_children(g)}); expected a StyleGAN2 Generator")
    synthesis = modules["synthesis"]
    syn_children = _children(synthesis)
    if ("input" in syn_children or any(_SG3_LAYER.match(c) for c in syn_children)
            or synthesis.class_name != "SynthesisNetwork" and "b4" not in syn_children):
        raise ConversionError(f"{source}: {_SG3_MESSAGE} (synthesis holds {syn_children[:4]}...)")

    kw = _init_kwargs(source, g, "G_ema")
    flavour = ADA if "synthesis_kwargs" in kw else SG3_REPO
    missing = [k for k in _TOP_KWARGS[:5] if k not in kw]
    if missing:
        raise ConversionError(f"{source}: G_ema kwargs lack {missing}; found {sorted(kw)}")
    mk = dict(kw.get("mapping_kwargs") or {})
    if flavour == ADA:
        sk = dict(kw["synthesis_kwargs"] or {})
    else:
        sk = {k: v for k, v in kw.items() if k not in _TOP_KWARGS}
    notes = []
    unknown = sorted(set(sk) - _HANDLED_SYNTHESIS_KWARGS - _IGNORED_SYNTHESIS_KWARGS)
    unknown += sorted(set(mk) - _HANDLED_MAPPING_KWARGS)
    if unknown:
        notes.append(f"unrecognised generator kwargs (checked through shapes only): {unknown}")

    # Unsupported variants, each with its own message.
    architecture = sk.get("architecture", "skip")
    block_archs = {m.state.get("architecture") for p, m in modules.items()
                   if re.fullmatch(r"synthesis\.b\d+", p)} - {None}
    for arch in sorted({architecture} | block_archs):
        if arch != "skip":
            raise ConversionError(f"{source}: generator architecture {arch!r} is not supported; "
                                  "only StyleGAN2's default 'skip' generator is")
    check_resample_kwarg(source, "synthesis kwargs", sk.get("resample_filter"))
    for path, m in modules.items():
        check_resample_kwarg(source, f"{path} kwargs",
                             (m.state.get("_init_kwargs") or {}).get("resample_filter"))
    if sk.get("use_noise", True) is not True or any(
            m.state.get("use_noise") is False for m in modules.values()):
        raise ConversionError(f"{source}: use_noise=False generators are not supported "
                              "(the sparse-jax generator always has noise inputs)")
    for name, value in (("mapping activation", mk.get("activation", "lrelu")),
                        ("synthesis activation", sk.get("activation", "lrelu"))):
        if value != "lrelu":
            raise ConversionError(f"{source}: {name} {value!r} is not supported (only 'lrelu')")

    # Hyper-parameters: kwargs first, then the flavour's constructor defaults.
    defaults = _SYNTHESIS_DEFAULTS[flavour]
    conv_clamp = sk.get("conv_clamp", defaults["conv_clamp"])
    w_dim = int(kw["w_dim"])
    embed = mk.get("embed_features")
    layer = mk.get("layer_features")
    try:
        cfg = sg.GeneratorConfig(
            z_dim=int(kw["z_dim"]), w_dim=w_dim, c_dim=int(kw["c_dim"]),
            img_resolution=int(kw["img_resolution"]), img_channels=int(kw["img_channels"]),
            mapping_layers=int(mk.get("num_layers", 8)),
            channel_base=int(sk.get("channel_base", defaults["channel_base"])),
            channel_max=int(sk.get("channel_max", defaults["channel_max"])),
            conv_clamp=None if conv_clamp is None else float(conv_clamp),
            mapping_lr_multiplier=float(mk.get("lr_multiplier", 0.01)),
            embed_features=None if embed in (None, w_dim) else int(embed),
            layer_features=None if layer in (None, w_dim) else int(layer))
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{source}: unusable generator kwargs {short_repr(kw)}: {e}") from e
    if cfg.mapping_layers > 64 or cfg.img_resolution > 1 << 14:  # before any per-layer list
        raise ConversionError(f"{source}: implausible generator kwargs (mapping layers "
                              f"{cfg.mapping_layers}, resolution {cfg.img_resolution})")

    _check_structure(source, cfg, modules)
    _check_attributes(source, cfg, modules, tensors)

    state = {}
    for name, t in tensors.items():
        arr = to_numpy(t, f"{source}: {name}")
        if name.endswith("resample_filter"):
            check_fir(source, name, arr)
            continue
        if not np.issubdtype(arr.dtype, np.floating):
            raise ConversionError(f"{source}: {name} has dtype {arr.dtype}, expected float")
        state[name] = arr
    if "mapping.w_avg" not in state:
        state["mapping.w_avg"] = np.zeros([cfg.w_dim], np.float32)
        notes.append("no mapping.w_avg in the pickle: set to zeros (truncation unusable)")
    variables = state_to_variables(source, state, cfg)
    return Converted(cfg, variables, flavour, source, notes)


def _check_structure(source: str, cfg: sg.GeneratorConfig,
                     modules: dict[str, PersistentObject]) -> None:
    want = [f"b{r}" for r in cfg.block_resolutions]
    got = _children(modules["synthesis"])
    if sorted(got) != sorted(want):
        raise ConversionError(f"{source}: synthesis blocks {got} do not match img_resolution "
                              f"{cfg.img_resolution} (expected {want})")
    for r in cfg.block_resolutions:
        expect = ["conv1", "torgb"] if r == 4 else ["conv0", "conv1", "torgb"]
        got = _children(modules[f"synthesis.b{r}"])
        if sorted(got) != sorted(expect):
            raise ConversionError(f"{source}: synthesis.b{r} holds {got}, expected {expect} "
                                  "(StyleGAN2 'skip' block)")
    want_map = [f"fc{i}" for i in range(cfg.mapping_layers)] + (["embed"] if cfg.c_dim else [])
    got = _children(modules["mapping"])
    if sorted(got) != sorted(want_map):
        raise ConversionError(f"{source}: mapping holds {got}, expected {want_map}")


def _check_attributes(source: str, cfg: sg.GeneratorConfig, modules: dict[str, PersistentObject],
                      tensors: dict[str, Any]) -> None:
    """Cross-checks the resolved attributes that every official module stores."""
    chk = _AttrChecker(source, modules)
    chk.expect("", z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim,
               img_resolution=cfg.img_resolution, img_channels=cfg.img_channels,
               num_ws=cfg.num_ws)
    chk.expect("mapping", z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, num_ws=cfg.num_ws,
               num_layers=cfg.mapping_layers)
    lrm = cfg.mapping_lr_multiplier
    for i in range(cfg.mapping_layers):
        w = tensors.get(f"mapping.fc{i}.weight")
        fan_in = w.shape[1] if w is not None else 1
        chk.expect(f"mapping.fc{i}", activation="lrelu", weight_gain=lrm / math.sqrt(fan_in),
                   bias_gain=lrm)
    if cfg.c_dim:
        chk.expect("mapping.embed", activation="linear", weight_gain=1 / math.sqrt(cfg.c_dim),
                   bias_gain=1.0)
    chk.expect("synthesis", w_dim=cfg.w_dim, img_resolution=cfg.img_resolution,
               img_channels=cfg.img_channels, num_ws=cfg.num_ws,
               block_resolutions=list(cfg.block_resolutions))
    for r in cfg.block_resolutions:
        b = f"synthesis.b{r}"
        chk.expect(b, resolution=r, img_channels=cfg.img_channels, architecture="skip",
                   is_last=(r == cfg.img_resolution), num_conv=1 if r == 4 else 2, num_torgb=1,
                   in_channels=0 if r == 4 else cfg.channels(r // 2))
        for conv in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            chk.expect(f"{b}.{conv}", resolution=r, up=2 if conv == "conv0" else 1,
                       use_noise=True, activation="lrelu", conv_clamp=cfg.conv_clamp,
                       act_gain=math.sqrt(2), padding=1, kernel_size=3)
            chk.expect(f"{b}.{conv}.affine", activation="linear",
                       weight_gain=1 / math.sqrt(cfg.w_dim), bias_gain=1.0)
            for leaf in ("noise_const", "noise_strength"):
                if f"{b}.{conv}.{leaf}" not in tensors:
                    raise ConversionError(f"{source}: {b}.{conv} has no {leaf}: use_noise=False "
                                          "generators are not supported")
        chk.expect(f"{b}.torgb", conv_clamp=cfg.conv_clamp,
                   weight_gain=1 / math.sqrt(cfg.channels(r)), kernel_size=1)
        chk.expect(f"{b}.torgb.affine", activation="linear", weight_gain=1 / math.sqrt(cfg.w_dim),
                   bias_gain=1.0)
    chk.raise_if_bad("module attributes disagree with the hyper-parameters read from G_ema's "
                     "kwargs")
