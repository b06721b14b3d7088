"""rosinality/stylegan2-pytorch checkpoints (`.pt`) -> official names (spec section 4 table).

rosinality's generator computes the same function as the official one: its `EqualLinear` stores
weights divided by `lr_mul` and applies `lr_mul / sqrt(fan_in)` at run time (as the official
`FullyConnectedLayer`), its modulation layers are `EqualLinear(bias_init=1)` (as the official
affine), its `ModulatedConv2d` scales the stored weight by 1/sqrt(fan_in) before demodulation,
which demodulation cancels (only the 1e-8 eps moves, ~1e-6), and its to_rgb's 1/sqrt(in) scale
on the weight equals the official ToRGB weight gain on the styles. So every tensor maps over
unchanged up to a reshape: no flips, no bias offsets, no rescaling.

Hyper-parameters are inferred from the shapes (resolution from the number of `to_rgbs`, channel
table from the conv weights) and cross-checked against `args` of training checkpoints. lr_mlp is
not stored anywhere; rosinality's default 0.01 is used unless `args.lr_mlp` says otherwise.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from converters.errors import ConversionError
from converters.safe_pickle import Namespace
from converters.stylegan2_names import (
    Converted,
    check_fir,
    infer_channel_table,
    state_to_variables,
)
from converters.torch_storage import TensorRef, to_numpy
from sparse_jax.models import stylegan2 as sg

FLAVOUR = "rosinality"
DEFAULT_LR_MLP = 0.01
W_AVG_SAMPLES = 4096


def find_state_dict(top: Any) -> dict | None:
    """The `g_ema` state dict of a rosinality checkpoint (or the dict itself if it is one)."""
    if isinstance(top, dict) and isinstance(top.get("g_ema"), dict):
        return top["g_ema"]
    if isinstance(top, dict) and "style.1.weight" in top and "input.input" in top:
        return top
    return None


def _shape(sd: dict, key: str, source: str) -> tuple:
    t = sd.get(key)
    if not isinstance(t, (TensorRef, np.ndarray)):
        raise ConversionError(f"{source}: g_ema has no tensor {key!r}; expected a rosinality "
                              "StyleGAN2 generator state dict")
    return tuple(t.shape)


def _squeeze0(shape: tuple) -> Callable[[np.ndarray], np.ndarray]:
    def f(a):
        if a.shape[:1] != (1,) or a.shape[1:] != shape:
            raise ValueError(f"shape {a.shape}, expected {(1, *shape)}")
        return a[0]
    return f


def _reshape(shape: tuple) -> Callable[[np.ndarray], np.ndarray]:
    def f(a):
        if a.size != math.prod(shape):
            raise ValueError(f"shape {a.shape}, expected {math.prod(shape)} elements {shape}")
        return a.reshape(shape)
    return f


def _ident(a: np.ndarray) -> np.ndarray:
    return a


def _rename_table(cfg: sg.GeneratorConfig) -> dict[str, tuple[str, Callable]]:
    """rosinality key -> (official name, layout fix), following spec section 4."""
    table: dict[str, tuple[str, Callable]] = {}
    for i in range(cfg.mapping_layers):  # style.0 is PixelNorm
        table[f"style.{i + 1}.weight"] = (f"mapping.fc{i}.weight", _ident)
        table[f"style.{i + 1}.bias"] = (f"mapping.fc{i}.bias", _ident)
    c4 = cfg.channels(4)
    table["input.input"] = ("synthesis.b4.const", _squeeze0((c4, 4, 4)))

    def styled_conv(ros: str, off: str, c_in: int, c_out: int, res: int, noise: int) -> None:
        table[f"{ros}.conv.weight"] = (f"{off}.weight", _squeeze0((c_out, c_in, 3, 3)))
        table[f"{ros}.conv.modulation.weight"] = (f"{off}.affine.weight", _ident)
        table[f"{ros}.conv.modulation.bias"] = (f"{off}.affine.bias", _ident)
        table[f"{ros}.noise.weight"] = (f"{off}.noise_strength", _reshape(()))
        table[f"{ros}.activate.bias"] = (f"{off}.bias", _ident)
        table[f"noises.noise_{noise}"] = (f"{off}.noise_const", _reshape((res, res)))

    def to_rgb(ros: str, off: str, c_in: int) -> None:
        ch = cfg.img_channels
        table[f"{ros}.conv.weight"] = (f"{off}.weight", _squeeze0((ch, c_in, 1, 1)))
        table[f"{ros}.conv.modulation.weight"] = (f"{off}.affine.weight", _ident)
        table[f"{ros}.conv.modulation.bias"] = (f"{off}.affine.bias", _ident)
        table[f"{ros}.bias"] = (f"{off}.bias", _reshape((ch,)))  # [1,C,1,1] -> [C]

    styled_conv("conv1", "synthesis.b4.conv1", c4, c4, 4, 0)
    to_rgb("to_rgb1", "synthesis.b4.torgb", c4)
    for j, res in enumerate(cfg.block_resolutions[1:]):
        c_in, c_out = cfg.channels(res // 2), cfg.channels(res)
        b = f"synthesis.b{res}"
        styled_conv(f"convs.{2 * j}", f"{b}.conv0", c_in, c_out, res, 2 * j + 1)
        styled_conv(f"convs.{2 * j + 1}", f"{b}.conv1", c_out, c_out, res, 2 * j + 2)
        to_rgb(f"to_rgbs.{j}", f"{b}.torgb", c_out)
    return table


def _infer_config(source: str, sd: dict, args: Namespace | None,
                  notes: list[str]) -> sg.GeneratorConfig:
    styles = sorted(int(m.group(1)) for k in sd
                    if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    if not styles or styles != list(range(1, len(styles) + 1)):
        raise ConversionError(f"{source}: g_ema has mapping layers style.{styles}.weight; "
                              "expected style.1 .. style.n_mlp")
    w_dim, z_dim = _shape(sd, "style.1.weight", source)
    n_rgbs = len({m.group(1) for k in sd if (m := re.fullmatch(r"to_rgbs\.(\d+)\..*", k))})
    res = 4 * 2 ** n_rgbs
    channels = {4: _shape(sd, "input.input", source)[1]}
    for j in range(n_rgbs):
        channels[8 * 2 ** j] = _shape(sd, f"convs.{2 * j}.conv.weight", source)[1]
    channel_base, channel_max = infer_channel_table(source, channels)
    img_channels = _shape(sd, "to_rgb1.conv.weight", source)[1]
    lr_mlp = float(getattr(args, "lr_mlp", DEFAULT_LR_MLP))
    if not hasattr(args, "lr_mlp"):
        notes.append(f"lr_mlp is not stored in rosinality checkpoints: assumed {lr_mlp}")
    if res >= 64:
        notes.append(f"channel_multiplier={channels[64] / 256:g} (inferred from the shapes)")
    if args is not None:
        want = {"size": res, "latent": w_dim, "n_mlp": len(styles)}
        if res >= 64:
            want["channel_multiplier"] = channels[64] / 256
        bad = [f"args.{k}={getattr(args, k)!r} but the weights say {v!r}"
               for k, v in want.items() if hasattr(args, k) and float(getattr(args, k)) != v]
        if bad:
            raise ConversionError(f"{source}: training args disagree with g_ema: " + "; ".join(bad))
    try:
        return sg.GeneratorConfig(
            z_dim=z_dim, w_dim=w_dim, c_dim=0, img_resolution=res, img_channels=img_channels,
            mapping_layers=len(styles), channel_base=channel_base, channel_max=channel_max,
            conv_clamp=None, mapping_lr_multiplier=lr_mlp)
    except ValueError as e:
        raise ConversionError(f"{source}: inferred an unusable config: {e}") from e


def convert_rosinality(source: str, top: Any, *, w_avg_seed: int = 0) -> Converted:
    """Converts a rosinality checkpoint (convert_weight.py output or a training checkpoint).

    Args:
      top: the safely unpickled checkpoint: {'g_ema', 'latent_avg', ...} or {'g_ema', 'args', ...}.
      w_avg_seed: seed of the 4096 z used to estimate w_avg when the file has no `latent_avg`
        (training checkpoints), as rosinality's `mean_latent` does.
    """
    sd = find_state_dict(top)
    if sd is None:
        keys = sorted(map(str, top)) if isinstance(top, dict) else type(top).__name__
        raise ConversionError(f"{source}: no generator found: expected a rosinality checkpoint "
                              f"with a 'g_ema' state dict, found {keys}")
    args = top.get("args") if isinstance(top, dict) else None
    if args is not None and not isinstance(args, Namespace):
        args = None
    notes: list[str] = []
    cfg = _infer_config(source, sd, args, notes)
    table = _rename_table(cfg)
    state, bad = {}, []
    for key, t in sd.items():
        if key in table:
            name, fix = table[key]
            try:
                state[name] = fix(to_numpy(t, f"{source}: g_ema.{key}"))
            except ValueError as e:
                bad.append(f"{key}: {e}")
        elif re.fullmatch(r"convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel", key):
            check_fir(source, f"g_ema.{key}", to_numpy(t, key), gain=4.0)  # up-sampling gain 2**2
        else:
            bad.append(f"unexpected key {key}")
    bad += [f"missing key {k}" for k in table if k not in sd]
    if bad:
        raise ConversionError(f"{source}: g_ema does not match a rosinality StyleGAN2 generator "
                              f"with {cfg}:\n  " + "\n  ".join(sorted(bad)))
    latent_avg = top.get("latent_avg") if isinstance(top, dict) and top is not sd else None
    if latent_avg is not None:
        state["mapping.w_avg"] = _reshape((cfg.w_dim,))(to_numpy(latent_avg, "latent_avg"))
    else:
        state["mapping.w_avg"] = np.zeros([cfg.w_dim], np.float32)
    variables = state_to_variables(source, state, cfg)
    if latent_avg is None:
        variables["buffers"]["mapping"]["w_avg"] = estimate_w_avg(cfg, variables, w_avg_seed)
        notes.append(f"no latent_avg: w_avg estimated from {W_AVG_SAMPLES} z (seed {w_avg_seed})")
    return Converted(cfg, variables, FLAVOUR, source, notes)


def estimate_w_avg(cfg: sg.GeneratorConfig, variables: dict, seed: int,
                   num: int = W_AVG_SAMPLES) -> jax.Array:
    """Mean of the mapping output over `num` z ~ N(0, I) drawn from `jax.random.key(seed)`.

    Returns:
      [w_dim] float32.
    """
    z = jax.random.normal(jax.random.key(seed), (num, cfg.z_dim), jnp.float32)
    ws = jax.jit(sg.map_latents, static_argnums=0)(cfg, variables, z)
    return jnp.mean(ws[:, 0], axis=0)
