"""NVIDIA TensorFlow StyleGAN v1 (`G_style`) network -> `sparse_jax.models.stylegan1` variables.

    conv = convert_g_style(path, gs)     # gs: the `Gs` TFNetwork of `tf_pickle.load_tf_pickle`

Spec: `../shared/docs/stylegan-tf-spec.md` sections 2 and 3. The pickle's `static_kwargs` hold
only what the training config passed, so every other hyper-parameter is NVIDIA's code default
(the tables below, copied from the build functions' signatures as facts, never read from the
file's embedded source). Sizes are taken from the variable shapes and checked against the
kwargs. Refused, each with its own message naming the file and the field: a build function other
than G_style / G_mapping / G_synthesis, `lod` != 0, labels, the paper's ablations
(use_styles, const_input_layer, use_noise, use_instance_norm, use_pixel_norm), a blur filter
other than [1,2,1] / None, dtype other than float32, an unknown `structure`, and kwargs that the
build functions do not know (they might change the numerics).

Variable mapping (TF flat name -> sparse-jax path; TF layouts are kept, see stylegan1.py):

  dlatent_avg                       -> buffers/mapping/w_avg
  mapping/Dense{i}/{weight,bias}    -> params/mapping/fc{i}/{weight,bias}
  synthesis/4x4/Const/const         -> params/synthesis/b4/const ([0].transpose(1, 2, 0))
  synthesis/{scope}/{weight,bias}   -> params/synthesis/b{r}/conv{k}/{weight,bias}
  synthesis/{scope}/Noise/weight    -> params/synthesis/b{r}/conv{k}/noise_strength
  synthesis/{scope}/StyleMod/*      -> params/synthesis/b{r}/conv{k}/style/*
  synthesis/noise{i}                -> buffers/synthesis/b{r}/conv{k}/noise_const ([0, 0])
  synthesis/ToRGB_lod0/*            -> params/synthesis/b{R}/torgb/*
  lod, synthesis/lod, ToRGB_lod{k>0} (progressive-growing leftovers): checked, dropped

The fused Conv0_up kernels are stored unchanged: the model flips them at run time from the
recorded `fused_scale`.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from converters.errors import ConversionError
from converters.stylegan2_names import Converted
from sparse_jax.models import stylegan1 as sg1

FLAVOUR = "stylegan1-tf"

# NVlabs/stylegan training/networks_stylegan.py: the build functions' keyword defaults.
G_STYLE_DEFAULTS: dict[str, Any] = dict(
    truncation_psi=0.7, truncation_cutoff=8, truncation_psi_val=None, truncation_cutoff_val=None,
    dlatent_avg_beta=0.995, style_mixing_prob=0.9, is_training=False, is_validation=False,
    is_template_graph=False)
G_MAPPING_DEFAULTS: dict[str, Any] = dict(
    latent_size=512, label_size=0, dlatent_size=512, dlatent_broadcast=None, mapping_layers=8,
    mapping_fmaps=512, mapping_lrmul=0.01, mapping_nonlinearity="lrelu", use_wscale=True,
    normalize_latents=True, dtype="float32")
G_SYNTHESIS_DEFAULTS: dict[str, Any] = dict(
    dlatent_size=512, num_channels=3, resolution=1024, fmap_base=8192, fmap_decay=1.0,
    fmap_max=512, use_styles=True, const_input_layer=True, use_noise=True, randomize_noise=True,
    nonlinearity="lrelu", use_wscale=True, use_pixel_norm=False, use_instance_norm=True,
    dtype="float32", fused_scale="auto", blur_filter=[1, 2, 1], structure="auto",
    is_template_graph=False, force_clean_graph=False)
# Values the port implements only in NVIDIA's default form (paper ablations and training knobs
# that would change the graph).
_REQUIRED = dict(use_styles=True, const_input_layer=True, use_noise=True,
                 use_instance_norm=True, use_pixel_norm=False, dtype="float32")
_STRUCTURES = ("auto", "fixed", "linear", "recursive")  # identical at lod 0 (spec 3.6)
# Keys of the training loop's config that reach static_kwargs without being build kwargs.
_IGNORED = {"func_name"}


def _fail(source: str, msg: str) -> ConversionError:
    return ConversionError(f"{source}: {msg}")


def resolve_kwargs(source: str, gs) -> dict[str, Any]:
    """Gs.static_kwargs over NVIDIA's defaults, with the components' kwargs checked against it.

    Returns:
      One dict with every G_style, G_mapping and G_synthesis kwarg.
    """
    given = dict(gs.static_kwargs)
    known = set(G_STYLE_DEFAULTS) | set(G_MAPPING_DEFAULTS) | set(G_SYNTHESIS_DEFAULTS)
    unknown = sorted(set(given) - known - _IGNORED)
    if unknown:
        raise _fail(source, f"Gs.static_kwargs has keys the StyleGAN v1 build functions do not "
                            f"know: {unknown} (they may change the numerics; not supported)")
    kw = {**G_STYLE_DEFAULTS, **G_MAPPING_DEFAULTS, **G_SYNTHESIS_DEFAULTS, **given}
    for key, comp in gs.components.items():
        for k, v in comp.static_kwargs.items():
            if k == "dlatent_broadcast" or k in _IGNORED:
                continue
            if k not in given or given[k] != v:
                raise _fail(source, f"Gs.{key}.static_kwargs[{k!r}] = {v!r} differs from Gs's "
                                    f"({given.get(k, '<unset>')!r}); expected the components "
                                    "to be built with G's kwargs")
    return kw


_INT_KWARGS = ("latent_size", "label_size", "dlatent_size", "mapping_layers", "mapping_fmaps",
               "num_channels", "resolution", "fmap_base", "fmap_max")
_FLOAT_KWARGS = ("mapping_lrmul", "fmap_decay")


def _check_kwargs(source: str, kw: Mapping[str, Any]) -> None:
    for k in _INT_KWARGS + _FLOAT_KWARGS:
        v = kw[k]
        ok = isinstance(v, int) if k in _INT_KWARGS else isinstance(v, (int, float))
        if not ok or isinstance(v, bool) or not math.isfinite(v):
            raise _fail(source, f"Gs.static_kwargs[{k!r}] = {v!r}; expected "
                                f"{'an int' if k in _INT_KWARGS else 'a number'}")
    for k, want in _REQUIRED.items():
        if kw[k] != want:
            raise _fail(source, f"Gs.static_kwargs[{k!r}] = {kw[k]!r} is not supported (only "
                                f"NVIDIA's default {want!r})")
    if kw["label_size"]:
        raise _fail(source, f"Gs.static_kwargs['label_size'] = {kw['label_size']!r}: conditional "
                            "StyleGAN v1 generators (mapping/LabelConcat) are not supported")
    for k in ("nonlinearity", "mapping_nonlinearity"):
        if kw[k] not in sg1.NONLINEARITIES:
            raise _fail(source, f"Gs.static_kwargs[{k!r}] = {kw[k]!r}; expected one of "
                                f"{list(sg1.NONLINEARITIES)}")
    blur = kw["blur_filter"]
    if blur is not None and not (isinstance(blur, (list, tuple)) and
                                 (len(blur) == 0 or list(blur) == [1, 2, 1])):
        raise _fail(source, f"Gs.static_kwargs['blur_filter'] = {blur!r}; only [1, 2, 1] or None "
                            "is supported")
    if kw["structure"] not in _STRUCTURES:
        raise _fail(source, f"Gs.static_kwargs['structure'] = {kw['structure']!r}; expected one "
                            f"of {list(_STRUCTURES)}")
    fs = kw["fused_scale"]
    if not (fs == "auto" or isinstance(fs, bool)):
        raise _fail(source, f"Gs.static_kwargs['fused_scale'] = {fs!r}; expected 'auto', True "
                            "or False")
    if not isinstance(kw["use_wscale"], bool) or not isinstance(kw["normalize_latents"], bool):
        raise _fail(source, "Gs.static_kwargs 'use_wscale' / 'normalize_latents' must be bools")
    if not kw["mapping_lrmul"] > 0:
        raise _fail(source, f"Gs.static_kwargs['mapping_lrmul'] = {kw['mapping_lrmul']!r}; "
                            "expected a positive number")


def default_truncation(kw: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """The checkpoint's default call (`Gs.run(z, None)`) in the project's convention.

    NVIDIA truncates only when psi and cutoff are both set, psi != 1 and cutoff > 0; its
    `truncation_cutoff=None` means *no* truncation. Returns {'truncation_psi': float,
    'truncation_cutoff': int | None (None = every slot)}; psi 1.0 when there is none.
    """
    psi, cutoff = kw["truncation_psi"], kw["truncation_cutoff"]
    if kw["is_validation"]:
        psi, cutoff = kw["truncation_psi_val"], kw["truncation_cutoff_val"]
    if not (psi is None or isinstance(psi, (int, float)) and not isinstance(psi, bool)
            and math.isfinite(psi)) or not (
            cutoff is None or isinstance(cutoff, int) and not isinstance(cutoff, bool)):
        raise _fail(source, f"Gs.static_kwargs truncation_psi={psi!r} / truncation_cutoff="
                            f"{cutoff!r}: expected a number / an int or None")
    if kw["is_training"] or psi is None or cutoff is None or psi == 1 or cutoff <= 0:
        return {"truncation_psi": 1.0, "truncation_cutoff": None}
    return {"truncation_psi": float(psi), "truncation_cutoff": int(cutoff)}


def _get(source: str, flat: Mapping[str, np.ndarray], name: str, shape: tuple) -> np.ndarray:
    if name not in flat:
        raise _fail(source, f"Gs has no variable {name!r} (expected shape {list(shape)})")
    arr = np.asarray(flat[name], np.float32)
    if arr.shape != tuple(shape):
        raise _fail(source, f"Gs variable {name!r} has shape {list(arr.shape)}, expected "
                            f"{list(shape)}")
    return arr


def config_from(source: str, kw: Mapping[str, Any], flat: Mapping[str, np.ndarray]
                ) -> sg1.GeneratorConfig:
    """The model config: sizes from the shapes, checked against the resolved kwargs."""
    blocks = sorted({int(m.group(1)) for n in flat
                     if (m := re.fullmatch(r"synthesis/(\d+)x\1/.*", n))})
    if not blocks or blocks[0] != 4:
        raise _fail(source, "Gs.synthesis has no 4x4 block: not a StyleGAN v1 synthesis network")
    res = blocks[-1]
    if res != kw["resolution"] or blocks != [2**i for i in range(2, len(blocks) + 2)]:
        raise _fail(source, f"Gs.synthesis blocks {blocks} do not match static_kwargs "
                            f"resolution={kw['resolution']!r}")
    for name, ndim in (("mapping/Dense0/weight", 2), ("synthesis/ToRGB_lod0/bias", 1)):
        if name not in flat or np.ndim(flat[name]) != ndim:
            raise _fail(source, f"Gs has no {name!r} variable of rank {ndim}")
    z_dim = int(np.shape(flat["mapping/Dense0/weight"])[0])
    n_map = 0
    while f"mapping/Dense{n_map}/weight" in flat:
        n_map += 1
    if "dlatent_avg" not in flat or np.ndim(flat["dlatent_avg"]) != 1:
        raise _fail(source, "Gs has no 'dlatent_avg' [dlatent_size] variable")
    w_dim = int(np.shape(flat["dlatent_avg"])[0])
    nc = int(np.shape(flat["synthesis/ToRGB_lod0/bias"])[0])
    fmaps = (int(np.shape(flat["mapping/Dense0/weight"])[1]) if n_map > 1 else
             kw["mapping_fmaps"])
    checks = {"latent_size": z_dim, "dlatent_size": w_dim, "mapping_layers": n_map,
              "num_channels": nc, "mapping_fmaps": fmaps}
    for k, found in checks.items():
        if kw[k] != found:
            raise _fail(source, f"Gs.static_kwargs[{k!r}] = {kw[k]!r} but the variables say "
                                f"{found}")
    try:
        cfg = sg1.GeneratorConfig(
            z_dim=z_dim, w_dim=w_dim, c_dim=0, img_resolution=res, img_channels=nc,
            mapping_layers=n_map, mapping_fmaps=fmaps, mapping_lrmul=float(kw["mapping_lrmul"]),
            mapping_nonlinearity=kw["mapping_nonlinearity"],
            normalize_latents=kw["normalize_latents"], nonlinearity=kw["nonlinearity"],
            use_wscale=kw["use_wscale"], fmap_base=int(kw["fmap_base"]),
            fmap_decay=float(kw["fmap_decay"]), fmap_max=int(kw["fmap_max"]),
            fused_scale=kw["fused_scale"], blur=bool(kw["blur_filter"]))
    except (TypeError, ValueError) as e:
        raise _fail(source, f"Gs.static_kwargs describe no valid StyleGAN v1 generator: {e}") from e
    return cfg


def _scope(res: int, conv: str) -> str:
    if res == 4:
        return "4x4/Const" if conv == "conv0" else "4x4/Conv"
    return f"{res}x{res}/" + ("Conv0_up" if conv == "conv0" else "Conv1")


def variables_from(source: str, cfg: sg1.GeneratorConfig, flat: Mapping[str, np.ndarray]
                   ) -> dict:
    """TF flat variables -> {'params': ..., 'buffers': ...} (float32 jax arrays), shape-checked.

    Every variable of the file must be used or be a known progressive-growing leftover.
    """
    used: set[str] = set()

    def get(name, shape):
        used.add(name)
        return jnp.asarray(_get(source, flat, name, shape))

    d = cfg.w_dim
    feats = [cfg.z_dim] + [cfg.mapping_fmaps] * (cfg.mapping_layers - 1) + [d]
    mapping = {f"fc{i}": {"weight": get(f"mapping/Dense{i}/weight", (feats[i], feats[i + 1])),
                          "bias": get(f"mapping/Dense{i}/bias", (feats[i + 1],))}
               for i in range(cfg.mapping_layers)}
    syn: dict = {}
    noise: dict = {}
    for r, conv in sg1._conv_layers(cfg):
        c, s = cfg.channels(r), f"synthesis/{_scope(r, conv)}"
        layer = {"bias": get(f"{s}/bias", (c,)), "noise_strength": get(f"{s}/Noise/weight", (c,)),
                 "style": {"weight": get(f"{s}/StyleMod/weight", (d, 2 * c)),
                           "bias": get(f"{s}/StyleMod/bias", (2 * c,))}}
        if r == 4 and conv == "conv0":
            syn.setdefault("b4", {})["const"] = get(f"{s}/const", (1, c, 4, 4))[0].transpose(
                1, 2, 0)
        else:
            c_in = c if conv == "conv1" or r == 4 else cfg.channels(r // 2)
            layer["weight"] = get(f"{s}/weight", (3, 3, c_in, c))
        syn.setdefault(f"b{r}", {})[conv] = layer
        i = sg1.ws_slot(r, conv)
        noise.setdefault(f"b{r}", {})[conv] = {
            "noise_const": get(f"synthesis/noise{i}", (1, 1, r, r))[0, 0]}
    c_last = cfg.channels(cfg.img_resolution)
    syn[f"b{cfg.img_resolution}"]["torgb"] = {
        "weight": get("synthesis/ToRGB_lod0/weight", (1, 1, c_last, cfg.img_channels)),
        "bias": get("synthesis/ToRGB_lod0/bias", (cfg.img_channels,))}
    variables = {"params": {"mapping": mapping, "synthesis": syn},
                 "buffers": {"mapping": {"w_avg": get("dlatent_avg", (d,))},
                             "synthesis": noise}}
    for name in ("lod", "synthesis/lod"):
        if name in flat:
            lod = np.asarray(flat[name])
            if lod.shape != () or float(lod) != 0.0:
                raise _fail(source, f"Gs variable {name!r} = {lod.tolist()!r}: a snapshot taken "
                                    "during progressive growing (lod != 0) is not supported")
            used.add(name)
    if "lod" not in flat:
        raise _fail(source, "Gs has no 'lod' variable: not a StyleGAN v1 G_style network")
    for name in flat:
        m = re.fullmatch(r"synthesis/ToRGB_lod(\d+)/(weight|bias)", name)
        if m and 1 <= int(m.group(1)) <= cfg.log2_res - 2:
            used.add(name)  # growing leftovers: unused at lod 0
    extra = [n for n in flat if n not in used]
    if extra:
        raise _fail(source, f"Gs holds variables a StyleGAN v1 generator of this config does not "
                            f"have: {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    _check_tree(source, cfg, variables)
    return variables


def _check_tree(source: str, cfg: sg1.GeneratorConfig, variables: Mapping) -> None:
    """The converted tree must have exactly the paths and shapes of `init_generator(cfg)`."""
    want = jax.eval_shape(lambda k: sg1.init_generator(k, cfg), jax.random.key(0))
    got_paths = {jax.tree_util.keystr(p): v.shape
                 for p, v in jax.tree_util.tree_leaves_with_path(variables)}
    want_paths = {jax.tree_util.keystr(p): v.shape
                  for p, v in jax.tree_util.tree_leaves_with_path(want)}
    if got_paths != want_paths:
        diff = sorted(set(got_paths.items()) ^ set(want_paths.items()))
        raise _fail(source, f"converted tree does not match the StyleGAN v1 model: {diff[:6]}")


def convert_g_style(source: str, gs) -> Converted:
    """Converts the `Gs` network (G_style) of a TF StyleGAN v1 pickle.

    Args:
      source: the file name, for messages.
      gs: a `converters.tf_pickle.TFNetwork` (slot 2 of the pickle).
    Returns:
      Converted(cfg: stylegan1.GeneratorConfig, variables, flavour 'stylegan1-tf', notes, and
      `defaults`, the checkpoint's default truncation: {'truncation_psi', 'truncation_cutoff'}).
    """
    if gs.build_func_name != "G_style":
        raise _fail(source, f"Gs.build_func_name is {gs.build_func_name!r}, expected 'G_style'")
    comps = gs.components
    want = {"synthesis": "G_synthesis", "mapping": "G_mapping"}
    if set(comps) != set(want):
        raise _fail(source, f"Gs.components are {sorted(comps)}, expected ['mapping', "
                            "'synthesis']")
    for key, func in want.items():
        if comps[key].build_func_name != func:
            raise _fail(source, f"Gs.{key}.build_func_name is {comps[key].build_func_name!r}, "
                                f"expected {func!r}")
    kw = resolve_kwargs(source, gs)
    _check_kwargs(source, kw)
    flat = gs.flat_variables()
    cfg = config_from(source, kw, flat)
    broadcast = comps["mapping"].static_kwargs.get("dlatent_broadcast")
    if broadcast is not None and broadcast != cfg.num_ws:
        raise _fail(source, f"Gs.mapping.static_kwargs['dlatent_broadcast'] = {broadcast!r}, "
                            f"expected num_ws = {cfg.num_ws}")
    variables = variables_from(source, cfg, flat)
    defaults = default_truncation(kw, source)
    fused = [r for r in cfg.block_resolutions[1:] if cfg.fused(r)]
    notes = [f"NVIDIA TF StyleGAN v1 (G_style, Network state version {gs.version}); Gs (slot 2) "
             "converted",
             f"checkpoint default call: truncation_psi={defaults['truncation_psi']} on the first "
             f"{defaults['truncation_cutoff']} ws slots (None = every slot); "
             f"randomize_noise={kw['randomize_noise']} (noise mode "
             f"{'random' if kw['randomize_noise'] else 'const'})",
             f"fused up-sampling convs: blocks {fused} (fused_scale={kw['fused_scale']!r})"]
    return Converted(cfg=cfg, variables=variables, flavour=FLAVOUR, source=source, notes=notes,
                     defaults=dict(defaults))
