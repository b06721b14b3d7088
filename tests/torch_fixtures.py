"""Writes StyleGAN2 checkpoint fixtures with torch (tests only; the converters never import torch).

`official_snapshot` builds the dict that stylegan2-ada-pytorch / stylegan3 training loops pickle:
persistent modules (pickled as `torch_utils.persistence._reconstruct_persistent_obj(meta)`) whose
`meta['state']` is a real `torch.nn.Module.__dict__` (`_parameters` of Parameters, `_buffers`,
`_modules`, hooks, resolved attributes, `_init_kwargs` as EasyDicts). Fake
`torch_utils.persistence` and `dnnlib.util` modules are registered in `sys.modules` only while
pickling (`fake_nvidia_modules`).
`rosinality_state_dict` maps an official-named state to rosinality's `g_ema` names and layouts.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import pickle
import sys
import types
from collections import OrderedDict
from typing import Any, Iterator, Mapping

import numpy as np
import torch

FIR = [1, 3, 3, 1]
STD_FILTER = np.outer(FIR, FIR).astype(np.float32) / 64.0


@contextlib.contextmanager
def fake_nvidia_modules() -> Iterator[types.SimpleNamespace]:
    """Registers stand-ins for `torch_utils.persistence` and `dnnlib.util` so pickle can name them.

    Yields a namespace with `Persistent` (a class whose `__reduce__` returns
    `(_reconstruct_persistent_obj, (meta,))`, as NVIDIA's persistent classes do) and `EasyDict`.
    """
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}

    def _reconstruct_persistent_obj(meta):
        raise RuntimeError("fixture stand-in: never called by the converter")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    easy_dict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})

    class Persistent:
        def __init__(self, meta):
            self.meta = meta

        def __reduce__(self):
            return (_reconstruct_persistent_obj, (self.meta,))

    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods["torch_utils"].persistence = mods["torch_utils.persistence"]
    mods["dnnlib.util"].EasyDict = easy_dict
    mods["dnnlib"].util = mods["dnnlib.util"]
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(Persistent=Persistent, EasyDict=easy_dict)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _tensor(a: np.ndarray, layout: str = "plain") -> torch.Tensor:
    """A torch tensor with the values of `a`; 'strided' / 'offset' give non-trivial geometry."""
    a = np.asarray(a)
    if layout == "strided" and a.ndim >= 2:  # non-contiguous: a transposed view
        return torch.from_numpy(np.ascontiguousarray(np.swapaxes(a, 0, 1))).transpose(0, 1)
    if layout == "offset":  # a view into a larger storage, at a non-zero offset
        big = torch.cat([torch.full((7,), -5.0, dtype=torch.from_numpy(a.copy()).dtype),
                         torch.from_numpy(a.copy()).reshape(-1)])
        return big[7:].view(a.shape)
    return torch.from_numpy(a.copy())


def _module(ns, class_name: str, *, params=None, buffers=None, children=None, attrs=None,
            init_args=(), init_kwargs=None, layouts: Mapping[str, str] | None = None):
    layouts = layouts or {}
    state = dict(torch.nn.Module().__dict__)  # hooks dicts, _non_persistent_buffers_set, ...
    state["training"] = False
    state["_parameters"] = OrderedDict(
        (k, torch.nn.Parameter(_tensor(v, layouts.get(k, "plain")), requires_grad=False))
        for k, v in (params or {}).items())
    state["_buffers"] = OrderedDict((k, _tensor(v, layouts.get(k, "plain")))
                                    for k, v in (buffers or {}).items())
    state["_modules"] = OrderedDict(children or {})
    state.update(attrs or {})
    state["_init_args"] = tuple(init_args)
    state["_init_kwargs"] = ns.EasyDict(init_kwargs or {})
    return ns.Persistent(dict(type="class", version=6, module_src="# source omitted (fixture)\n",
                              class_name=class_name, state=state))


def _fc(ns, st, name, *, lr=1.0, activation="linear", bias_init=0.0):
    w = st[f"{name}.weight"]
    return _module(ns, "FullyConnectedLayer",
                   params={"weight": w, "bias": st[f"{name}.bias"]},
                   attrs={"activation": activation, "bias_gain": lr,
                          "weight_gain": np.float64(lr / np.sqrt(w.shape[1]))},
                   init_args=(w.shape[1], w.shape[0]),
                   init_kwargs={"activation": activation, "lr_multiplier": lr,
                                "bias_init": bias_init})


def official_generator(ns, st: Mapping[str, np.ndarray], cfg: dict, *, flavour: str = "ada",
                       architecture: str = "skip", filter_override: np.ndarray | None = None,
                       use_noise: bool = True, omit_kwargs: tuple[str, ...] = ()):
    """A persistent `Generator` whose state holds the official-named arrays `st`.

    Args:
      cfg: z_dim, w_dim, c_dim, img_resolution, img_channels, num_layers, channel_base,
        channel_max, conv_clamp, lr_multiplier.
      flavour: 'ada' (nested synthesis_kwargs) or 'sg3' (stylegan3 repo: flattened).
      omit_kwargs: synthesis kwargs left out (so that the flavour default applies).
    """
    res_log2 = int(math.log2(cfg["img_resolution"]))
    block_res = [2 ** i for i in range(2, res_log2 + 1)]
    num_ws = 2 * res_log2 - 2
    w_dim, clamp = cfg["w_dim"], cfg["conv_clamp"]

    def ch(r):
        return min(cfg["channel_base"] // r, cfg["channel_max"])

    blocks = OrderedDict()
    for r in block_res:
        b = f"synthesis.b{r}"
        children = OrderedDict()
        for conv in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            p = f"{b}.{conv}"
            params = {"weight": st[f"{p}.weight"], "bias": st[f"{p}.bias"]}
            buffers = {"resample_filter": STD_FILTER}
            if use_noise:
                params["noise_strength"] = st[f"{p}.noise_strength"]
                buffers["noise_const"] = st[f"{p}.noise_const"]
            if filter_override is not None and r == block_res[-1] and conv == "conv0":
                buffers["resample_filter"] = filter_override
            children[conv] = _module(
                ns, "SynthesisLayer", params=params, buffers=buffers,
                children={"affine": _fc(ns, st, f"{p}.affine", bias_init=1.0)},
                attrs={"resolution": r, "up": 2 if conv == "conv0" else 1, "use_noise": use_noise,
                       "activation": "lrelu", "conv_clamp": clamp, "padding": 1,
                       "act_gain": np.float64(np.sqrt(2))},
                init_args=(st[f"{p}.weight"].shape[1], st[f"{p}.weight"].shape[0]),
                init_kwargs={"w_dim": w_dim, "resolution": r, "up": 2 if conv == "conv0" else 1,
                             "resample_filter": FIR, "conv_clamp": clamp, "channels_last": False},
                layouts={"weight": "strided" if conv == "conv0" else "plain"})
        tw = st[f"{b}.torgb.weight"]
        children["torgb"] = _module(
            ns, "ToRGBLayer", params={"weight": tw, "bias": st[f"{b}.torgb.bias"]},
            children={"affine": _fc(ns, st, f"{b}.torgb.affine", bias_init=1.0)},
            attrs={"conv_clamp": clamp, "weight_gain": np.float64(1 / np.sqrt(tw.shape[1]))},
            init_args=(tw.shape[1], tw.shape[0]),
            init_kwargs={"w_dim": w_dim, "conv_clamp": clamp, "channels_last": False})
        if r == 4:
            children = OrderedDict([("conv1", children["conv1"]), ("torgb", children["torgb"])])
        block_params = {"const": st[f"{b}.const"]} if r == 4 else {}
        blocks[f"b{r}"] = _module(
            ns, "SynthesisBlock", params=block_params, buffers={"resample_filter": STD_FILTER},
            children=children,
            attrs={"in_channels": 0 if r == 4 else ch(r // 2), "w_dim": w_dim, "resolution": r,
                   "img_channels": cfg["img_channels"], "is_last": r == block_res[-1],
                   "architecture": architecture, "use_fp16": False, "channels_last": False,
                   "num_conv": 1 if r == 4 else 2, "num_torgb": 1},
            init_args=(0 if r == 4 else ch(r // 2), ch(r)),
            init_kwargs={"w_dim": w_dim, "resolution": r, "img_channels": cfg["img_channels"],
                         "is_last": r == block_res[-1], "use_fp16": False,
                         "architecture": architecture, "conv_clamp": clamp})
    syn_kwargs = {"channel_base": cfg["channel_base"], "channel_max": cfg["channel_max"],
                  "num_fp16_res": 0, "conv_clamp": clamp}
    if architecture != "skip":
        syn_kwargs["architecture"] = architecture
    if not use_noise:
        syn_kwargs["use_noise"] = False
    for k in omit_kwargs:
        syn_kwargs.pop(k)
    synthesis = _module(
        ns, "SynthesisNetwork", children=blocks,
        attrs={"w_dim": w_dim, "img_resolution": cfg["img_resolution"],
               "img_resolution_log2": res_log2, "img_channels": cfg["img_channels"],
               "block_resolutions": block_res, "num_ws": num_ws},
        init_kwargs={"w_dim": w_dim, "img_resolution": cfg["img_resolution"],
                     "img_channels": cfg["img_channels"], **syn_kwargs})
    lr = cfg["lr_multiplier"]
    fcs = OrderedDict()
    if cfg["c_dim"]:
        fcs["embed"] = _fc(ns, st, "mapping.embed")
    for i in range(cfg["num_layers"]):
        fcs[f"fc{i}"] = _fc(ns, st, f"mapping.fc{i}", lr=lr, activation="lrelu")
    map_kwargs = ns.EasyDict(num_layers=cfg["num_layers"])
    if lr != 0.01:
        map_kwargs["lr_multiplier"] = lr
    mapping = _module(
        ns, "MappingNetwork", buffers={"w_avg": st["mapping.w_avg"]}, children=fcs,
        attrs={"z_dim": cfg["z_dim"], "c_dim": cfg["c_dim"], "w_dim": w_dim, "num_ws": num_ws,
               "num_layers": cfg["num_layers"], "w_avg_beta": 0.995},
        init_kwargs={"z_dim": cfg["z_dim"], "c_dim": cfg["c_dim"], "w_dim": w_dim,
                     "num_ws": num_ws, **map_kwargs},
        layouts={"w_avg": "offset"})
    top = {k: cfg[k] for k in ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels")}
    if flavour == "ada":
        kwargs = {**top, "mapping_kwargs": map_kwargs, "synthesis_kwargs": ns.EasyDict(syn_kwargs)}
    else:
        kwargs = {**top, "mapping_kwargs": map_kwargs, **syn_kwargs,
                  "fused_modconv_default": "inference_only"}
    return _module(ns, "Generator", children=OrderedDict(synthesis=synthesis, mapping=mapping),
                   attrs={**top, "num_ws": num_ws}, init_kwargs=kwargs)


def stylegan3_generator(ns, st: Mapping[str, np.ndarray], cfg: dict):
    """An alias-free (StyleGAN3) generator: same mapping, synthesis `input` + `L{i}_{size}_{ch}`."""
    w_dim = cfg["w_dim"]
    rng = np.random.default_rng(0)
    aff = {"mapping.x.weight": rng.normal(size=(4, w_dim)).astype(np.float32),
           "mapping.x.bias": np.zeros(4, np.float32)}
    layers = OrderedDict()
    layers["input"] = _module(
        ns, "SynthesisInput", params={"weight": rng.normal(size=(8, 8)).astype(np.float32)},
        buffers={"transform": np.eye(3, dtype=np.float32),
                 "freqs": rng.normal(size=(8, 2)).astype(np.float32),
                 "phases": rng.normal(size=(8,)).astype(np.float32)},
        children={"affine": _fc(ns, aff, "mapping.x")})
    for i, name in enumerate(["L0_36_8", "L1_36_8", "L2_20_4"]):
        layers[name] = _module(
            ns, "SynthesisLayer",
            params={"weight": rng.normal(size=(8, 8, 3, 3)).astype(np.float32),
                    "bias": np.zeros(8, np.float32)},
            buffers={"magnitude_ema": np.ones((), np.float32),
                     "up_filter": np.ones(6, np.float32), "down_filter": np.ones(6, np.float32)},
            attrs={"layer_idx": i})
    synthesis = _module(ns, "SynthesisNetwork", children=layers,
                        attrs={"w_dim": w_dim, "num_ws": 16})
    fcs = OrderedDict((f"fc{i}", _fc(ns, st, f"mapping.fc{i}", lr=0.01, activation="lrelu"))
                      for i in range(cfg["num_layers"]))
    mapping = _module(ns, "MappingNetwork", buffers={"w_avg": st["mapping.w_avg"]}, children=fcs,
                      attrs={"num_layers": cfg["num_layers"]})
    kwargs = {k: cfg[k] for k in ("z_dim", "w_dim", "c_dim", "img_resolution", "img_channels")}
    kwargs.update(mapping_kwargs=ns.EasyDict(num_layers=cfg["num_layers"]), channel_base=32768,
                  channel_max=512, magnitude_ema_beta=0.999)
    return _module(ns, "Generator", children=OrderedDict(synthesis=synthesis, mapping=mapping),
                   init_kwargs=kwargs)


def official_snapshot_bytes(st: Mapping[str, np.ndarray], cfg: dict, *, numpy_names: str = "2",
                            with_g_ema: bool = True, stylegan3: bool = False,
                            **generator_kwargs: Any) -> bytes:
    """Pickled snapshot dict {training_set_kwargs, G, D, G_ema, augment_pipe}.

    Args:
      numpy_names: '2' pickles with protocol 4 (numpy >= 2 writes `numpy._core.multiarray`);
        '1' uses protocol 3 and renames the global to numpy < 2's `numpy.core.multiarray`.
    """
    with fake_nvidia_modules() as ns:
        if stylegan3:
            g_ema = stylegan3_generator(ns, st, cfg)
        else:
            g_ema = official_generator(ns, st, cfg, **generator_kwargs)
        g_train = official_generator(ns, {k: v * 0.5 for k, v in st.items()}, cfg) \
            if not stylegan3 else g_ema
        d = _module(ns, "Discriminator", params={"w": np.ones((3, 2), np.float32)},
                    attrs={"img_resolution": cfg["img_resolution"]})
        snap = {"training_set_kwargs": ns.EasyDict(class_name="training.dataset.ImageFolderDataset",
                                                   path="data.zip", resolution=8),
                "G": g_train, "D": d, "augment_pipe": None}
        if with_g_ema:
            snap["G_ema"] = g_ema
        if numpy_names == "2":
            return pickle.dumps(snap, protocol=4)
        data = pickle.dumps(snap, protocol=3)
        old, new = b"cnumpy._core.multiarray\nscalar\n", b"cnumpy.core.multiarray\nscalar\n"
        assert old in data
        return data.replace(old, new)


def rosinality_state_dict(st: Mapping[str, np.ndarray], cfg: dict) -> OrderedDict:
    """The official-named state in rosinality `g_ema` names and layouts (spec section 4 table)."""
    sd = OrderedDict()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    sd["input.input"] = t(st["synthesis.b4.const"][None])
    for i in range(cfg["num_layers"]):
        sd[f"style.{i + 1}.weight"] = _tensor(st[f"mapping.fc{i}.weight"], "strided")
        sd[f"style.{i + 1}.bias"] = t(st[f"mapping.fc{i}.bias"])

    def styled(ros, off, up):
        sd[f"{ros}.conv.weight"] = t(st[f"{off}.weight"][None])
        sd[f"{ros}.conv.modulation.weight"] = t(st[f"{off}.affine.weight"])
        sd[f"{ros}.conv.modulation.bias"] = t(st[f"{off}.affine.bias"])
        if up:
            sd[f"{ros}.conv.blur.kernel"] = t(STD_FILTER * 4)
        sd[f"{ros}.noise.weight"] = t(st[f"{off}.noise_strength"].reshape(1))
        sd[f"{ros}.activate.bias"] = t(st[f"{off}.bias"])

    def rgb(ros, off, up):
        if up:
            sd[f"{ros}.upsample.kernel"] = t(STD_FILTER * 4)
        sd[f"{ros}.conv.weight"] = t(st[f"{off}.weight"][None])
        sd[f"{ros}.conv.modulation.weight"] = t(st[f"{off}.affine.weight"])
        sd[f"{ros}.conv.modulation.bias"] = t(st[f"{off}.affine.bias"])
        sd[f"{ros}.bias"] = t(st[f"{off}.bias"].reshape(1, -1, 1, 1))

    styled("conv1", "synthesis.b4.conv1", False)
    rgb("to_rgb1", "synthesis.b4.torgb", False)
    res_log2 = int(math.log2(cfg["img_resolution"]))
    noises = [st["synthesis.b4.conv1.noise_const"]]
    for j, r in enumerate(2 ** k for k in range(3, res_log2 + 1)):
        styled(f"convs.{2 * j}", f"synthesis.b{r}.conv0", True)
        styled(f"convs.{2 * j + 1}", f"synthesis.b{r}.conv1", False)
        rgb(f"to_rgbs.{j}", f"synthesis.b{r}.torgb", True)
        noises += [st[f"synthesis.b{r}.conv0.noise_const"], st[f"synthesis.b{r}.conv1.noise_const"]]
    for i, n in enumerate(noises):
        sd[f"noises.noise_{i}"] = t(n[None, None])
    return sd


def rosinality_bytes(st: Mapping[str, np.ndarray], cfg: dict, *, style: str = "convert",
                     legacy_format: bool = False, args_overrides: Mapping | None = None) -> bytes:
    """A torch.save'd rosinality checkpoint.

    Args:
      style: 'convert' ({'g_ema', 'latent_avg'} as convert_weight.py writes) or 'train'
        ({'g', 'd', 'g_ema', 'g_optim', 'd_optim', 'args', 'ada_aug_p'}, no latent_avg).
      legacy_format: torch's pre-1.6 non-zip format instead of zip.
      args_overrides: replaced fields of the training `args` (style 'train').
    """
    sd = rosinality_state_dict(st, cfg)
    if style == "convert":
        ckpt = {"g_ema": sd, "latent_avg": torch.from_numpy(st["mapping.w_avg"].copy())}
    else:
        p = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.Adam([p], lr=0.002, betas=(0.0, 0.99))
        p.sum().backward()
        opt.step()
        args = argparse.Namespace(size=cfg["img_resolution"], latent=cfg["w_dim"],
                                  n_mlp=cfg["num_layers"], r1=10, path="lmdb", iter=800000)
        vars(args).update(args_overrides or {})
        ckpt = {"g": rosinality_state_dict({k: v * 0.5 for k, v in st.items()}, cfg),
                "d": OrderedDict(w=torch.ones(2, 2)), "g_ema": sd, "g_optim": opt.state_dict(),
                "d_optim": opt.state_dict(), "args": args, "ada_aug_p": 0.0}
    buf = io.BytesIO()
    torch.save(ckpt, buf, _use_new_zipfile_serialization=not legacy_format)
    return buf.getvalue()


# ----------------------------------------------------------------------------- rosinality forward
# An independent torch re-statement of rosinality's Generator.forward (randomize_noise=False,
# fused modulated conv), written from its semantics so the test can check that the spec's
# rosinality -> official table (no flips, no rescaling) gives the official images.


def _upfirdn(x: torch.Tensor, k: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    n, c, h, w = x.shape
    if up > 1:  # zero insertion, samples at even indices, trailing zeros (size up*H)
        y = x.new_zeros(n, c, h * up, w * up)
        y[:, :, ::up, ::up] = x
        x = y
    x = torch.nn.functional.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    kern = torch.flip(k, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return torch.nn.functional.conv2d(x, kern, groups=c)


def _modconv(sd, pre, x, w, *, demod=True, up=False):
    weight = sd[f"{pre}.weight"]  # [1,O,I,k,k]
    _, o, i, k, _ = weight.shape
    mw, mb = sd[f"{pre}.modulation.weight"], sd[f"{pre}.modulation.bias"]
    style = w @ (mw / math.sqrt(mw.shape[1])).t() + mb  # EqualLinear, lr_mul 1
    wt = weight / math.sqrt(i * k * k) * style[:, None, :, None, None]  # [N,O,I,k,k]
    if demod:
        wt = wt * torch.rsqrt(wt.pow(2).sum([2, 3, 4]) + 1e-8)[:, :, None, None, None]
    outs = []
    for n in range(x.shape[0]):
        if up:
            y = torch.nn.functional.conv_transpose2d(x[n:n + 1], wt[n].transpose(0, 1), stride=2)
            y = _upfirdn(y, sd[f"{pre}.blur.kernel"], 1, (1, 1))
        else:
            y = torch.nn.functional.conv2d(x[n:n + 1], wt[n], padding=k // 2)
        outs.append(y)
    return torch.cat(outs)


def rosinality_forward(sd: Mapping[str, torch.Tensor], ws: torch.Tensor) -> torch.Tensor:
    """rosinality Generator synthesis with the stored noises. ws [N, n_latent, w_dim] -> NCHW."""
    noises = [sd[f"noises.noise_{i}"] for i in range(ws.shape[1] - 1)]

    def styled(pre, x, w, noise, up=False):
        x = _modconv(sd, f"{pre}.conv", x, w, up=up)
        x = x + sd[f"{pre}.noise.weight"] * noise
        return torch.nn.functional.leaky_relu(x + sd[f"{pre}.activate.bias"][None, :, None, None],
                                              0.2) * math.sqrt(2)

    def to_rgb(pre, x, w, skip):
        out = _modconv(sd, f"{pre}.conv", x, w, demod=False) + sd[f"{pre}.bias"]
        if skip is not None:
            out = out + _upfirdn(skip, sd[f"{pre}.upsample.kernel"], 2, (2, 1))
        return out

    x = sd["input.input"].repeat(ws.shape[0], 1, 1, 1)
    x = styled("conv1", x, ws[:, 0], noises[0])
    skip = to_rgb("to_rgb1", x, ws[:, 1], None)
    i = 1
    for j in range((ws.shape[1] - 2) // 2):
        x = styled(f"convs.{2 * j}", x, ws[:, i], noises[2 * j + 1], up=True)
        x = styled(f"convs.{2 * j + 1}", x, ws[:, i + 1], noises[2 * j + 2])
        skip = to_rgb(f"to_rgbs.{j}", x, ws[:, i + 2], skip)
        i += 2
    return skip


def rosinality_mapping(sd: Mapping[str, torch.Tensor], z: torch.Tensor,
                       lr_mlp: float = 0.01) -> torch.Tensor:
    """rosinality `style` network: PixelNorm, then EqualLinear(lr_mul=lr_mlp, fused_lrelu)."""
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in sd:
        wgt, b = sd[f"style.{i}.weight"], sd[f"style.{i}.bias"]
        x = x @ (wgt * lr_mlp / math.sqrt(wgt.shape[1])).t()
        x = torch.nn.functional.leaky_relu(x + b * lr_mlp, 0.2) * math.sqrt(2)
        i += 1
    return x
