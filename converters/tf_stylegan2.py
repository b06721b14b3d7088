"""StyleGAN2 TF (`G_main` + `G_synthesis_stylegan2`) and StyleGAN2-ADA TF -> the Flax StyleGAN2.

Spec: shared/docs/stylegan-tf-spec.md sections 2, 4 and 5. The Flax generator's parameter tree
mirrors stylegan2-ada-pytorch's state dict, so the TF flat names are first renamed to that state
dict (the legacy.py table, spec section 4) and then nested by `stylegan2_names.state_to_variables`:

  mapping/Dense{i}/weight [in,out]        -> mapping.fc{i}.weight [out,in]   (.T)
  mapping/LabelEmbed/weight (ADA)         -> mapping.embed.weight            (.T)
  synthesis/4x4/Const/const [1,C,4,4]     -> synthesis.b4.const [C,4,4]
  {r}x{r}/Conv0_up/weight HWIO            -> b{r}.conv0.weight OIHW          (flip H, W; then OIHW)
  {r}x{r}/Conv1/weight, 4x4/Conv/weight   -> b{r}.conv1.weight OIHW
  */mod_weight [D,I], */mod_bias [I]      -> *.affine.weight [I,D], .bias + 1 (TF adds the 1 at
                                             run time)
  */noise_strength (0-d)                  -> *.noise_strength
  synthesis/noise{i} [1,1,H,W]            -> *.noise_const [H,W]
  dlatent_avg                             -> mapping.w_avg

Hyper-parameters are `Gs.static_kwargs` over the build functions' code defaults (the pickle keeps
only the kwargs the training config passed), and every size is read from the variable shapes and
checked against them. Unsupported variants are refused, each with its own message.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np

from converters.errors import ConversionError
from converters.official_pkl import check_resample_kwarg
from converters.safe_pickle import short_repr
from converters.stylegan2_names import Converted, infer_channel_table, state_to_variables
from converters.tf_pickle import TFNetwork
from sparse_jax.models import stylegan2 as sg

FLAVOUR_SG2 = "stylegan2-tf"
FLAVOUR_ADA = "stylegan2-ada-tf"

# Keyword defaults of NVlabs/stylegan2 training/networks_stylegan2.py (G_main, G_mapping,
# G_synthesis_stylegan2) and, where they differ, of NVlabs/stylegan2-ada training/networks.py.
_DEFAULTS_SG2: dict[str, Any] = {
    "truncation_psi": 0.5, "truncation_cutoff": None, "dlatent_avg_beta": 0.995,
    "style_mixing_prob": 0.9, "randomize_noise": True, "is_template_graph": False,
    "synthesis_func": "G_synthesis_stylegan2", "mapping_func": "G_mapping",
    "latent_size": 512, "label_size": 0, "dlatent_size": 512, "mapping_layers": 8,
    "mapping_fmaps": 512, "mapping_lrmul": 0.01, "mapping_nonlinearity": "lrelu",
    "normalize_latents": True, "num_channels": 3, "resolution": 1024, "fmap_base": 16 << 10,
    "fmap_decay": 1.0, "fmap_min": 1, "fmap_max": 512, "architecture": "skip",
    "nonlinearity": "lrelu", "resample_kernel": [1, 3, 3, 1], "fused_modconv": True,
    "use_noise": True, "conv_clamp": None, "num_fp16_res": 0, "fmap_const": None,
    "label_fmaps": None, "dtype": "float32",
}
_DEFAULTS_ADA = {**_DEFAULTS_SG2, "synthesis_func": "G_synthesis", "mapping_fmaps": None,
                 "fused_modconv": False}
# Kwargs that only matter for training, TF graph building or speed (fp16 / fused modconv are the
# same math in fp32): read and ignored.
_IGNORED = {"dlatent_avg_beta", "style_mixing_prob", "is_training", "is_validation",
            "is_template_graph", "return_dlatents", "structure", "num_fp16_res",
            "fused_modconv", "components", "dlatent_broadcast", "randomize_noise",
            "truncation_psi", "truncation_cutoff", "force_clean_graph", "conv_clip"}
_SYNTH_OK = {"G_synthesis_stylegan2": FLAVOUR_SG2, "G_synthesis": FLAVOUR_ADA}
_BLOCK = re.compile(r"^(\d+)x(\d+)$")


def _kwargs(source: str, gs: TFNetwork, flavour: str) -> dict:
    """Gs.static_kwargs over the code defaults, components' kwargs checked against them."""
    defaults = _DEFAULTS_ADA if flavour == FLAVOUR_ADA else _DEFAULTS_SG2
    merged: dict = {}
    for comp in gs.components.values():
        for name, value in comp.static_kwargs.items():
            other = gs.static_kwargs.get(name, merged.get(name, value))
            if other != value:
                raise ConversionError(
                    f"{source}: {comp.where}.static_kwargs[{name!r}] = {short_repr(value)} "
                    f"disagrees with the value {short_repr(other)} of Gs or another component")
            merged[name] = value
    return {**defaults, **merged, **gs.static_kwargs}


def _int_kwarg(source: str, kw: Mapping, name: str) -> int:
    value = kw[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConversionError(f"{source}: Gs.static_kwargs[{name!r}] = {short_repr(value)}, "
                              "expected a non-negative int")
    return value


def _check_supported(source: str, kw: Mapping) -> list[str]:
    """Refuses kwargs values the Flax StyleGAN2 cannot express; returns notes."""
    def refuse(name: str, why: str) -> None:
        raise ConversionError(f"{source}: Gs.static_kwargs[{name!r}] = {short_repr(kw[name])}: "
                              f"{why}")

    if kw["architecture"] != "skip":
        refuse("architecture", "only StyleGAN2's 'skip' generator (configs E and F) is supported"
               " ('orig' and 'resnet' are not)")
    for name in ("nonlinearity", "mapping_nonlinearity"):
        if kw[name] != "lrelu":
            refuse(name, "only 'lrelu' is supported")
    if kw["normalize_latents"] is not True:
        refuse("normalize_latents", "only normalize_latents=True is supported")
    if kw["dtype"] != "float32":
        refuse("dtype", "only float32 generators are supported")
    try:
        check_resample_kwarg(source, "Gs.static_kwargs['resample_kernel']", kw["resample_kernel"])
    except RecursionError as e:  # a hostile, deeply nested list
        raise ConversionError(f"{source}: Gs.static_kwargs['resample_kernel'] is not a list of "
                              "numbers") from e
    if kw["use_noise"] not in (True, False):
        refuse("use_noise", "expected True or False")
    if kw["conv_clamp"] is not None and not (
            isinstance(kw["conv_clamp"], (int, float)) and not isinstance(kw["conv_clamp"], bool)
            and math.isfinite(kw["conv_clamp"]) and kw["conv_clamp"] > 0):
        refuse("conv_clamp", "expected None or a positive number")
    for name in ("fmap_base", "fmap_max", "fmap_min"):
        if not isinstance(kw[name], int) or isinstance(kw[name], bool) or kw[name] < 1:
            refuse(name, "expected a positive int")
    for name in ("fmap_decay", "mapping_lrmul"):
        v = kw[name]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or (
                v <= 0 and name == "mapping_lrmul"):
            refuse(name, "expected a (positive) number")
    notes = []
    if kw.get("num_fp16_res"):
        notes.append(f"num_fp16_res={kw['num_fp16_res']}: NVIDIA ran the top blocks in fp16; "
                     "this port computes in fp32 (outputs differ slightly)")
    known = set(_DEFAULTS_ADA) | _IGNORED
    unknown = sorted(k for k in kw if k not in known)
    if unknown:
        notes.append(f"unrecognised generator kwargs (checked through shapes only): {unknown}")
    return notes


def _truncation_defaults(source: str, kw: Mapping) -> dict:
    """G_main's default call: psi 0.5 on every slot unless static_kwargs override it."""
    psi, cutoff = kw["truncation_psi"], kw["truncation_cutoff"]
    if psi is None:
        psi = 1.0  # G_main: None means no truncation
    if not isinstance(psi, (int, float)) or isinstance(psi, bool) or not math.isfinite(psi):
        raise ConversionError(f"{source}: Gs.static_kwargs['truncation_psi'] = {short_repr(psi)}, "
                              "expected a number or None")
    if cutoff is not None and (not isinstance(cutoff, int) or isinstance(cutoff, bool)
                               or cutoff < 0):
        raise ConversionError(f"{source}: Gs.static_kwargs['truncation_cutoff'] = "
                              f"{short_repr(cutoff)}, expected None or a non-negative int")
    return {"truncation_psi": float(psi), "truncation_cutoff": cutoff}


class _Vars:
    """The flat TF variables, consumed by name, so that leftovers can be refused."""

    def __init__(self, source: str, flat: dict[str, np.ndarray]):
        self.source, self.flat, self.used = source, flat, set()

    def has(self, name: str) -> bool:
        return name in self.flat

    def get(self, name: str, shape: tuple | None = None) -> np.ndarray:
        if name not in self.flat:
            raise ConversionError(f"{self.source}: Gs has no variable {name!r}")
        value = self.flat[name]
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ConversionError(f"{self.source}: Gs variable {name!r} has shape "
                                  f"{tuple(value.shape)}, expected {tuple(shape)}")
        if not np.all(np.isfinite(value)):
            raise ConversionError(f"{self.source}: Gs variable {name!r} holds NaN or inf")
        self.used.add(name)
        return value

    def leftovers(self) -> list[str]:
        return [k for k in self.flat if k not in self.used]


def _architecture(source: str, gs: TFNetwork) -> str:
    """Which G_main flavour this is (spec section 1.4); refuses the others."""
    for key in ("synthesis", "mapping"):
        if key not in gs.components:
            raise ConversionError(f"{source}: Gs (G_main) has no '{key}' component (found "
                                  f"{sorted(gs.components)})")
    syn, mapping = gs.components["synthesis"], gs.components["mapping"]
    if mapping.build_func_name != "G_mapping":
        raise ConversionError(f"{source}: Gs.mapping.build_func_name = "
                              f"{mapping.build_func_name!r}; only 'G_mapping' is supported")
    func = syn.build_func_name
    if func == "G_synthesis_stylegan_revised":
        raise ConversionError(f"{source}: Gs.synthesis.build_func_name = {func!r} (StyleGAN2 "
                              "configs B-D, ToRGB_lod* outputs): not supported; only the 'skip' "
                              "generator of configs E/F and StyleGAN2-ADA is")
    if func not in _SYNTH_OK:
        raise ConversionError(f"{source}: Gs.synthesis.build_func_name = {func!r} is not a "
                              f"StyleGAN2 synthesis network (expected one of {sorted(_SYNTH_OK)})")
    flavour = _SYNTH_OK[func]
    if flavour == FLAVOUR_ADA and gs.version < 5:
        # StyleGAN v1's synthesis is also called G_synthesis, but under G_style; ADA writes v5.
        if any(k.endswith("/StyleMod/weight") for k in syn.variables):
            raise ConversionError(f"{source}: Gs is G_main but its synthesis holds StyleGAN v1 "
                                  "variables (*/StyleMod/weight)")
    for name, want in (("synthesis_func", func), ("mapping_func", "G_mapping")):
        got = gs.static_kwargs.get(name)
        if got is not None and got != want:
            raise ConversionError(f"{source}: Gs.static_kwargs[{name!r}] = {short_repr(got)} "
                                  f"disagrees with the component's build function {want!r}")
    return flavour


def _resolutions(source: str, syn: TFNetwork) -> list[int]:
    res = set()
    for name in syn.variables:
        head = name.split("/", 1)[0]
        m = _BLOCK.match(head)
        if m:
            if m.group(1) != m.group(2):
                raise ConversionError(f"{source}: Gs.synthesis variable {name!r}: non-square block")
            res.add(int(m.group(1)))
    if not res:
        raise ConversionError(f"{source}: Gs.synthesis has no '<res>x<res>/' blocks")
    top = max(res)
    want = [2 ** k for k in range(2, int(math.log2(top)) + 1)] if top >= 4 else []
    if top < 4 or 2 ** int(math.log2(top)) != top or sorted(res) != want:
        raise ConversionError(f"{source}: Gs.synthesis blocks {sorted(res)} are not 4x4 .. RxR "
                              "in powers of two")
    return want


def convert_g_main(source: str, gs: TFNetwork) -> Converted:
    """Converts `Gs` (slot 2) of a StyleGAN2 TF / StyleGAN2-ADA TF pickle.

    Returns:
      Converted(cfg: stylegan2.GeneratorConfig, variables, flavour 'stylegan2-tf' or
      'stylegan2-ada-tf', ..., defaults {'truncation_psi', 'truncation_cutoff'}).
    """
    flavour = _architecture(source, gs)
    kw = _kwargs(source, gs, flavour)
    notes = _check_supported(source, kw)
    defaults = _truncation_defaults(source, kw)
    v = _Vars(source, gs.flat_variables())
    syn = gs.components["synthesis"]

    # lod: StyleGAN2 TF's G_main keeps one (0 after training); ADA has none.
    for name in ("lod", "synthesis/lod"):
        if v.has(name):
            lod = v.get(name, ())
            if float(lod) != 0.0:
                raise ConversionError(f"{source}: Gs variable {name!r} = {float(lod)}; only "
                                      "finished networks (lod = 0) are supported")

    resolutions = _resolutions(source, syn)
    R = resolutions[-1]
    label_size = _int_kwarg(source, kw, "label_size")
    if v.has("mapping/LabelConcat/weight"):
        raise ConversionError(f"{source}: Gs.mapping has LabelConcat (a conditional StyleGAN2 TF "
                              "generator: labels concatenated before the joint normalisation); "
                              "not supported, only StyleGAN2-ADA's LabelEmbed conditioning is")
    if label_size and not v.has("mapping/LabelEmbed/weight"):
        raise ConversionError(f"{source}: Gs.static_kwargs['label_size'] = {label_size} but "
                              "Gs.mapping has no LabelEmbed/weight")
    if v.has("mapping/LabelEmbed/weight") and not label_size:
        raise ConversionError(f"{source}: Gs.mapping has LabelEmbed/weight but "
                              "Gs.static_kwargs['label_size'] is 0")

    # Sizes from the shapes, checked against the kwargs.
    avg = v.get("dlatent_avg")
    if avg.ndim != 1:
        raise ConversionError(f"{source}: Gs variable 'dlatent_avg' has shape {avg.shape}, "
                              "expected [dlatent_size]")
    w_dim = int(avg.shape[0])
    mapping_layers = 0
    while v.has(f"mapping/Dense{mapping_layers}/weight"):
        mapping_layers += 1
    if mapping_layers == 0:
        raise ConversionError(f"{source}: Gs.mapping has no Dense0/weight")
    d0 = v.flat["mapping/Dense0/weight"]
    if d0.ndim != 2:
        raise ConversionError(f"{source}: mapping/Dense0/weight has shape {d0.shape}")
    embed = None
    if label_size:
        e = v.flat["mapping/LabelEmbed/weight"]
        if e.ndim != 2 or e.shape[0] != label_size:
            raise ConversionError(f"{source}: mapping/LabelEmbed/weight has shape {e.shape}, "
                                  f"expected [label_size={label_size}, features]")
        embed = int(e.shape[1])
    z_dim = int(d0.shape[0]) - (embed or 0)
    layer_features = int(d0.shape[1]) if mapping_layers > 1 else None
    const = v.flat.get("synthesis/4x4/Const/const")
    rgb = v.flat.get(f"synthesis/{R}x{R}/ToRGB/bias")
    if const is None or const.ndim != 4 or rgb is None or rgb.ndim != 1:
        raise ConversionError(f"{source}: Gs.synthesis lacks 4x4/Const/const [1,C,4,4] or "
                              f"{R}x{R}/ToRGB/bias [num_channels]")
    checks = {"latent_size": z_dim, "dlatent_size": w_dim, "resolution": R,
              "num_channels": int(rgb.shape[0]), "mapping_layers": mapping_layers}
    if layer_features is not None and kw["mapping_fmaps"] is not None:
        checks["mapping_fmaps"] = layer_features
    if embed is not None and kw["label_fmaps"] is not None:
        checks["label_fmaps"] = embed
    for name, got in checks.items():
        want = _int_kwarg(source, kw, name)
        if want != got:
            raise ConversionError(f"{source}: Gs.static_kwargs[{name!r}] = {want} (or its "
                                  f"default) disagrees with the variables, which say {got}")
    if z_dim == 0:
        raise ConversionError(f"{source}: latent_size 0 generators are not supported")

    # Channel table: from the variables, checked against fmap_base / decay / min / max.
    channels = {4: int(const.shape[1])}
    for r in resolutions[1:]:
        w1 = v.flat.get(f"synthesis/{r}x{r}/Conv1/weight")
        if w1 is None or w1.ndim != 4:
            raise ConversionError(f"{source}: Gs has no synthesis/{r}x{r}/Conv1/weight")
        channels[r] = int(w1.shape[3])
    c4 = v.flat.get("synthesis/4x4/Conv/weight")
    if c4 is None or c4.ndim != 4 or c4.shape[3] != channels[4]:
        raise ConversionError(f"{source}: synthesis/4x4/Conv/weight must be [3,3,C,C] with C = "
                              f"const channels {channels[4]} (fmap_const differing from the 4x4 "
                              "width is not supported)")
    for r in resolutions:
        stage = int(math.log2(r)) - 1
        want = int(np.clip(int(kw["fmap_base"] / (2.0 ** (stage * kw["fmap_decay"]))),
                           kw["fmap_min"], kw["fmap_max"]))
        if channels[r] != want:
            raise ConversionError(
                f"{source}: block {r}x{r} has {channels[r]} channels but fmap_base="
                f"{kw['fmap_base']}, fmap_decay={kw['fmap_decay']}, fmap_min={kw['fmap_min']}, "
                f"fmap_max={kw['fmap_max']} give {want}")
    channel_base, channel_max = infer_channel_table(source, channels)
    conv_clamp = kw["conv_clamp"]
    try:
        cfg = sg.GeneratorConfig(
            z_dim=z_dim, w_dim=w_dim, c_dim=label_size, img_resolution=R,
            img_channels=int(rgb.shape[0]), mapping_layers=mapping_layers,
            channel_base=channel_base, channel_max=channel_max,
            conv_clamp=None if conv_clamp is None else float(conv_clamp),
            mapping_lr_multiplier=float(kw["mapping_lrmul"]),
            embed_features=None if embed in (None, w_dim) else embed,
            layer_features=None if layer_features in (None, w_dim) else layer_features)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{source}: unusable generator kwargs: {e}") from e
    broadcast = gs.components["mapping"].static_kwargs.get("dlatent_broadcast")
    if broadcast is not None and broadcast != cfg.num_ws:
        raise ConversionError(f"{source}: Gs.mapping.static_kwargs['dlatent_broadcast'] = "
                              f"{short_repr(broadcast)}, expected num_ws = {cfg.num_ws}")
    _check_io_shapes(source, gs, cfg)

    state, more = _state(source, cfg, v, use_noise=kw["use_noise"])
    notes += more
    left = v.leftovers()
    if left:
        raise ConversionError(f"{source}: Gs holds variables a StyleGAN2 'skip' generator does "
                              f"not have: {left[:8]}{' ...' if len(left) > 8 else ''}")
    variables = state_to_variables(source, state, cfg)
    label = "StyleGAN2-ADA TF" if flavour == FLAVOUR_ADA else "StyleGAN2 TF"
    cutoff = defaults["truncation_cutoff"]
    slots = "every ws slot" if cutoff is None else f"the first {cutoff} ws slots"
    notes = [f"NVIDIA {label} (G_main, Network state version {gs.version}); Gs (slot 2) "
             "converted",
             f"checkpoint default call: truncation_psi={defaults['truncation_psi']} on {slots}; "
             f"randomize_noise={kw['randomize_noise']}"] + notes
    return Converted(cfg=cfg, variables=variables, flavour=flavour, source=source, notes=notes,
                     defaults=defaults)


def _check_io_shapes(source: str, gs: TFNetwork, cfg: sg.GeneratorConfig) -> None:
    """State v5 records the input shapes: [[None, latent], [None, labels]]; check them."""
    if gs.input_shapes is None:
        return
    want = [[None, cfg.z_dim], [None, cfg.c_dim]]
    got = [list(s) if isinstance(s, (list, tuple)) else s for s in gs.input_shapes]
    if got != want:
        raise ConversionError(f"{source}: Gs.input_shapes = {short_repr(gs.input_shapes)}, "
                              f"expected {want}")


def _conv_weight(v: _Vars, name: str, cin: int, cout: int, k: int, flip: bool) -> np.ndarray:
    w = v.get(name, (k, k, cin, cout))
    if flip:  # TF's up-sampling conv: the stored kernel acts flipped (spec section 4)
        w = w[::-1, ::-1]
    return np.ascontiguousarray(w.transpose(3, 2, 0, 1))


def _state(source: str, cfg: sg.GeneratorConfig, v: _Vars,
           use_noise: bool) -> tuple[dict[str, np.ndarray], list[str]]:
    """TF flat variables -> stylegan2-ada-pytorch state dict (names and layouts)."""
    st: dict[str, np.ndarray] = {}
    notes: list[str] = []
    D = cfg.w_dim
    st["mapping.w_avg"] = v.get("dlatent_avg", (D,))
    features = ([cfg.z_dim + ((cfg.embed_features or D) if cfg.c_dim else 0)]
                + [cfg.layer_features or D] * (cfg.mapping_layers - 1) + [D])
    for i in range(cfg.mapping_layers):
        st[f"mapping.fc{i}.weight"] = v.get(f"mapping/Dense{i}/weight",
                                            (features[i], features[i + 1])).T
        st[f"mapping.fc{i}.bias"] = v.get(f"mapping/Dense{i}/bias", (features[i + 1],))
    if cfg.c_dim:
        e = cfg.embed_features or D
        st["mapping.embed.weight"] = v.get("mapping/LabelEmbed/weight", (cfg.c_dim, e)).T
        st["mapping.embed.bias"] = v.get("mapping/LabelEmbed/bias", (e,))

    if not use_noise:
        notes.append("use_noise=False: noise strengths set to 0 and noise inputs to zeros (the "
                     "same function in every noise mode)")

    def layer(prefix: str, tf: str, cin: int, cout: int, k: int, flip: bool,
              noise_idx: int | None) -> None:
        st[f"{prefix}.weight"] = _conv_weight(v, f"{tf}/weight", cin, cout, k, flip)
        st[f"{prefix}.bias"] = v.get(f"{tf}/bias", (cout,))
        st[f"{prefix}.affine.weight"] = v.get(f"{tf}/mod_weight", (D, cin)).T
        st[f"{prefix}.affine.bias"] = v.get(f"{tf}/mod_bias", (cin,)) + np.float32(1)
        if noise_idx is None:
            return
        side = 2 ** ((noise_idx + 5) // 2)
        if use_noise:
            st[f"{prefix}.noise_strength"] = v.get(f"{tf}/noise_strength", ())
            st[f"{prefix}.noise_const"] = v.get(f"synthesis/noise{noise_idx}",
                                                (1, 1, side, side))[0, 0]
        else:
            st[f"{prefix}.noise_strength"] = np.zeros((), np.float32)
            st[f"{prefix}.noise_const"] = np.zeros((side, side), np.float32)

    C = cfg.channels
    st["synthesis.b4.const"] = v.get("synthesis/4x4/Const/const", (1, C(4), 4, 4))[0]
    layer("synthesis.b4.conv1", "synthesis/4x4/Conv", C(4), C(4), 3, False, 0)
    layer("synthesis.b4.torgb", "synthesis/4x4/ToRGB", C(4), cfg.img_channels, 1, False, None)
    for r in cfg.block_resolutions[1:]:
        lr = int(math.log2(r))
        b, t = f"synthesis.b{r}", f"synthesis/{r}x{r}"
        layer(f"{b}.conv0", f"{t}/Conv0_up", C(r // 2), C(r), 3, True, 2 * lr - 5)
        layer(f"{b}.conv1", f"{t}/Conv1", C(r), C(r), 3, False, 2 * lr - 4)
        layer(f"{b}.torgb", f"{t}/ToRGB", C(r), cfg.img_channels, 1, False, None)
    return st, notes
