"""StyleGAN v1 generator (NVIDIA's `G_style`) in Flax Linen, with the numerics of NVIDIA's TF graph.

Same functional shape as `sparse_jax.models.stylegan2`: pure functions over `variables`, the
(hashable) config first. The written semantics are `../shared/docs/stylegan-tf-spec.md` section 3.

Parameter tree (TF layouts, which are already Flax's: Dense [in, out], conv HWIO):

  params/mapping/fc{i}/{weight [in, out], bias [out]}          TF mapping/Dense{i}
  params/synthesis/b4/const [4, 4, C4]                          TF 4x4/Const/const [1,C,4,4]
  params/synthesis/b{r}/conv{0,1}/{weight [3,3,I,O] (not b4.conv0), bias [O],
                                   noise_strength [O], style/{weight [w_dim, 2O], bias [2O]}}
  params/synthesis/b{R}/torgb/{weight [1,1,C,img_channels], bias [img_channels]}
  buffers/mapping/w_avg [w_dim]                                 TF dlatent_avg
  buffers/synthesis/b{r}/conv{0,1}/noise_const [r, r]           TF noise{i} [1,1,r,r]

Layer names (the project's scheme; NVIDIA's scope names are accepted as aliases):

  synthesis.b4.conv0   <- 4x4/Const        (ws slot 0)
  synthesis.b4.conv1   <- 4x4/Conv         (ws slot 1)
  synthesis.b{r}.conv0 <- {r}x{r}/Conv0_up (ws slot 2 log2(r) - 4)
  synthesis.b{r}.conv1 <- {r}x{r}/Conv1    (ws slot 2 log2(r) - 3)
  synthesis.b{R}.torgb <- ToRGB_lod0       (no style, no ws slot)
  synthesis.b{r}.conv{k}.style <- .../StyleMod (the [N, 2C] style: scales then shifts)
  mapping.fc{i}        <- mapping/Dense{i}

Numerics that differ from StyleGAN2 (spec 3.1-3.5):
  * equalized lr with the activation gain sqrt(2) folded into the conv/dense weight, BEFORE the
    bias; nothing multiplies after the activation;
  * every synthesis layer ends with noise, bias, activation, instance norm, then the style
    modulation x * (1 + s[:C]) + s[C:];
  * Conv0_up = nearest x2 up-sampling + 3x3 conv, then the [1,2,1] blur. When the layer is
    "fused" (NVIDIA's fused_scale, 'auto' = output >= 128 px) the stored kernel belongs to a
    transposed conv and acts as nearest + conv with the spatially FLIPPED kernel. The kernel is
    stored as in the TF file; the flip happens at run time from `cfg.fused_scale`.
  * ToRGB is a linear 1x1 conv of the last block only (lod 0), without style.

Computation runs NHWC; images and captured activations are returned NCHW like the TF graph.
Truncation follows the project's convention (truncation_cutoff None = every slot), not
NVIDIA's (where None disables it); a converted checkpoint records its own default call
(psi 0.7 on the first 8 slots) separately.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.models import conv_ops, style_common

ARCH = "stylegan1"
NOISE_MODES = style_common.NOISE_MODES
NONLINEARITIES = ("lrelu", "relu")
_SQRT2 = math.sqrt(2.0)
# NVIDIA's blur [1,2,1] (x) [1,2,1] / 16 is separable: [1,2,1]/4 along each axis.
_BLUR_TAPS = (0.25, 0.5, 0.25)
# The fused up-sampling conv is NVIDIA's choice for outputs of at least this size ('auto').
FUSED_AUTO_MIN_RES = 128


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a StyleGAN v1 generator (NVIDIA's G_style kwargs, renamed where the project
    has a name: z_dim = latent_size, w_dim = dlatent_size, c_dim = label_size,
    img_resolution = resolution, img_channels = num_channels). Defaults are NVIDIA's."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    mapping_fmaps: int = 512
    mapping_lrmul: float = 0.01
    mapping_nonlinearity: str = "lrelu"
    normalize_latents: bool = True
    nonlinearity: str = "lrelu"
    use_wscale: bool = True
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    fused_scale: str | bool = "auto"
    blur: bool = True  # blur_filter [1,2,1]; False = blur_filter None

    def __post_init__(self):
        res = self.img_resolution
        if not isinstance(res, int) or res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res!r}")
        if self.img_channels < 1:
            raise ValueError(f"img_channels must be >= 1, got {self.img_channels}")
        if self.z_dim < 1 or self.w_dim < 1:
            raise ValueError(f"bad dims: z_dim={self.z_dim} w_dim={self.w_dim}")
        if self.c_dim != 0:
            raise ValueError(f"conditional StyleGAN v1 generators are not supported "
                             f"(c_dim={self.c_dim}; expected 0)")
        if self.mapping_layers < 1 or self.mapping_fmaps < 1:
            raise ValueError(f"bad mapping: mapping_layers={self.mapping_layers} "
                             f"mapping_fmaps={self.mapping_fmaps}")
        for field in ("nonlinearity", "mapping_nonlinearity"):
            if getattr(self, field) not in NONLINEARITIES:
                raise ValueError(f"{field} must be one of {NONLINEARITIES}, "
                                 f"got {getattr(self, field)!r}")
        if not (self.fused_scale == "auto" or isinstance(self.fused_scale, bool)):
            raise ValueError(f"fused_scale must be 'auto', True or False, got "
                             f"{self.fused_scale!r}")
        if not self.mapping_lrmul > 0:
            raise ValueError(f"mapping_lrmul must be > 0, got {self.mapping_lrmul}")
        for r in self.block_resolutions:
            if self.channels(r) < 1:
                raise ValueError(f"fmap_base={self.fmap_base} gives 0 channels at resolution {r}")

    @property
    def log2_res(self) -> int:
        return int(round(math.log2(self.img_resolution)))

    @property
    def num_ws(self) -> int:
        return 2 * self.log2_res - 2

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        return tuple(2**i for i in range(2, self.log2_res + 1))

    def channels(self, res: int) -> int:
        """NVIDIA's nf(log2(res) - 1) = min(int(fmap_base / 2^(stage * fmap_decay)), fmap_max)."""
        stage = int(round(math.log2(res))) - 1
        return min(int(self.fmap_base / (2.0 ** (stage * self.fmap_decay))), self.fmap_max)

    def fused(self, res: int) -> bool:
        """Whether block `res`'s Conv0_up is NVIDIA's fused (transposed, flipped-kernel) conv."""
        if self.fused_scale == "auto":
            return res >= FUSED_AUTO_MIN_RES
        return bool(self.fused_scale)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GeneratorConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys {unknown}; expected a subset of "
                             f"{sorted(known)}")
        return cls(**dict(d))


# ----------------------------------------------------------------------------- layer naming


def ws_slot(res: int, conv: str) -> int:
    """ws slot (= NVIDIA layer index = noise index) of 'conv0' / 'conv1' of block b{res}."""
    k = int(round(math.log2(res)))
    return {"conv0": 2 * k - 4, "conv1": 2 * k - 3}[conv]


def _conv_layers(cfg: GeneratorConfig) -> list[tuple[int, str]]:
    """[(res, 'conv0' | 'conv1')] in ws-slot order."""
    return [(r, c) for r in cfg.block_resolutions for c in ("conv0", "conv1")]


def synthesis_layer_names(cfg: GeneratorConfig) -> list[str]:
    """Every capturable synthesis layer: each conv layer's style and output, then the torgb."""
    names = []
    for r, conv in _conv_layers(cfg):
        names += [f"synthesis.b{r}.{conv}.style", f"synthesis.b{r}.{conv}"]
    names.append(f"synthesis.b{cfg.img_resolution}.torgb")
    return names


def layer_names(cfg: GeneratorConfig) -> list[str]:
    """Every name accepted by `layers=`: mapping layers, then the synthesis layers."""
    return [f"mapping.fc{i}" for i in range(cfg.mapping_layers)] + synthesis_layer_names(cfg)


def _nvidia_aliases(cfg: GeneratorConfig) -> dict[str, str]:
    table = {}
    for r, conv in _conv_layers(cfg):
        if r == 4:
            scope = "4x4/Const" if conv == "conv0" else "4x4/Conv"
        else:
            scope = f"{r}x{r}/" + ("Conv0_up" if conv == "conv0" else "Conv1")
        table[scope] = f"synthesis.b{r}.{conv}"
        table[f"{scope}/StyleMod"] = f"synthesis.b{r}.{conv}.style"
    table["ToRGB_lod0"] = f"synthesis.b{cfg.img_resolution}.torgb"
    for i in range(cfg.mapping_layers):
        table[f"Dense{i}"] = table[f"mapping/Dense{i}"] = f"mapping.fc{i}"
    return table


def canonical_layer_name(cfg: GeneratorConfig, name: str) -> str:
    """'synthesis.b64.conv1', 'b64.conv1' or NVIDIA's '64x64/Conv1' -> 'synthesis.b64.conv1'.

    Raises:
      ValueError: unknown name; the message lists the valid names.
    """
    valid = layer_names(cfg)
    for cand in (name, f"synthesis.{name}"):
        if cand in valid:
            return cand
    aliases = _nvidia_aliases(cfg)
    bare = name.removeprefix("G_synthesis/").removeprefix("synthesis/")
    if bare in aliases:
        return aliases[bare]
    raise ValueError(f"unknown layer name {name!r} for a {cfg.img_resolution}x{cfg.img_resolution} "
                     f"StyleGAN v1 generator; valid names: {', '.join(valid)} (NVIDIA's scope "
                     f"names such as '4x4/Const', '{cfg.img_resolution}x{cfg.img_resolution}/"
                     f"Conv1' and 'ToRGB_lod0' are accepted too)")


# ----------------------------------------------------------------------------- primitives


def _act(x, kind: str):
    return jax.nn.leaky_relu(x, 0.2) if kind == "lrelu" else jax.nn.relu(x)


def _wscale(fan_in: int, gain: float, lrmul: float, use_wscale: bool) -> tuple[float, float]:
    """NVIDIA's get_weight: (init std of the stored weight, run-time coefficient)."""
    he_std = gain / math.sqrt(fan_in)
    if use_wscale:
        return 1.0 / lrmul, he_std * lrmul
    return he_std / lrmul, lrmul


def _pixel_norm(x, eps=1e-8):
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=1, keepdims=True) + eps)


def _instance_norm(x, eps=1e-8):
    """Per sample and channel over H, W of NHWC x; biased variance, eps inside the rsqrt.

    NVIDIA's graph centres first, then takes the mean square: two reads of x before the write.
    Here both moments come from one read of x - k, k the mean of a <= 16x16 sub-grid of x: k
    lies within a fraction of a standard deviation of the mean, so E[(x-k)^2] - E[x-k]^2 does
    not cancel, and the full-resolution layers (memory bound at 1024 px) read x once less.
    """
    h, w = x.shape[1:3]
    k = jnp.mean(x[:, ::max(1, h // 16), ::max(1, w // 16)], axis=(1, 2), keepdims=True)
    d = x - k
    m = jnp.mean(d, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(d), axis=(1, 2), keepdims=True) - jnp.square(m)
    return (d - m) * jax.lax.rsqrt(jnp.maximum(var, 0.0) + eps)


def _hwio_to_oihw(w):
    return jnp.transpose(w, (3, 2, 0, 1))


# Nearest x2 then a 3x3 correlation (zero padding 1), per output row phase a: phase 0 reads input
# rows (i-1, i) with taps (k0, k1 + k2), phase 1 rows (i, i+1) with (k0 + k1, k2).
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)  # [a,p,u]


def _shift(x, axis: int, by: int):
    """x shifted by `by` (+1: element i takes i-1) along `axis`, zero filled."""
    n = x.shape[axis]
    pad = [(0, 0)] * x.ndim
    pad[axis] = (max(by, 0), max(-by, 0))
    return jax.lax.slice_in_dim(jnp.pad(x, pad), max(-by, 0), max(-by, 0) + n, axis=axis)


def _blur_phases(even, odd, axis: int):
    """The [1,2,1]/4 blur (zero padding) of the interleaved signal y[2i] = even[i],
    y[2i+1] = odd[i], returned as its (even, odd) phases: the blur after an up-sampling conv
    costs no pass of its own over the full-resolution output."""
    t0, t1, t2 = _BLUR_TAPS
    new_even = t0 * _shift(odd, axis, 1) + t1 * even + t2 * odd
    new_odd = t0 * even + t1 * odd + t2 * _shift(even, axis, -1)
    return new_even, new_odd


def upsample_conv3x3(x, w_hwio, conv_impl: str = "xla", blur: bool = False):
    """Nearest x2 up-sampling, a 3x3 'SAME' correlation, then optionally NVIDIA's blur2d.

    Polyphase form: the four output phases are 2x2 correlations of the padded low-resolution
    input, run as one 2x2 conv with 4*O outputs (16 instead of 36 multiply-adds per channel
    pair and output pixel); borders are those of convolving the up-sampled image. The blur is
    applied to the phases before they are interleaved.

    Args:
      x: [N, H, W, I] NHWC.
      w_hwio: [3, 3, I, O] effective kernel.
      blur: apply the [1,2,1] blur (zero padding 1) to the up-sampled result.
    Returns:
      [N, 2H, 2W, O].
    """
    n, h, w, _ = x.shape
    o = w_hwio.shape[-1]
    taps = jnp.asarray(_PHASE_TAPS, w_hwio.dtype)
    k = jnp.einsum("apu,bqv,uvio->pqiabo", taps, taps, w_hwio)  # [2,2,I,2,2,O]
    k = k.reshape(2, 2, w_hwio.shape[2], 4 * o)
    y = conv_ops.conv2d(x, _hwio_to_oihw(k), pad=1, conv_impl=conv_impl)  # [N,H+1,W+1,4O]
    y = y.reshape(n, h + 1, w + 1, 2, 2, o)
    ph = [[y[:, a:a + h, b:b + w, a, b] for b in (0, 1)] for a in (0, 1)]  # ph[a][b] [N,H,W,O]
    if blur:
        for b in (0, 1):
            ph[0][b], ph[1][b] = _blur_phases(ph[0][b], ph[1][b], axis=1)
        for a in (0, 1):
            ph[a][0], ph[a][1] = _blur_phases(ph[a][0], ph[a][1], axis=2)
    rows = [jnp.stack(ph[a], axis=3) for a in (0, 1)]  # [N,H,W,2,O]
    return jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, o)


# ----------------------------------------------------------------------------- Flax modules


class Dense(nn.Module):
    """NVIDIA's dense + apply_bias (+ activation): weight [in, out], equalized lr."""

    in_features: int
    out_features: int
    gain: float = 1.0
    lrmul: float = 1.0
    use_wscale: bool = True
    activation: str | None = None

    @nn.compact
    def __call__(self, x):
        init_std, coef = _wscale(self.in_features, self.gain, self.lrmul, self.use_wscale)
        weight = self.param("weight", style_common.normal_init(init_std),
                            (self.in_features, self.out_features))
        bias = self.param("bias", style_common.const_init(0.0), (self.out_features,))
        y = x @ (weight * coef) + bias * self.lrmul
        return y if self.activation is None else _act(y, self.activation)


class MappingNetwork(nn.Module):
    cfg: GeneratorConfig

    @nn.compact
    def __call__(self, z, layers: tuple[str, ...] = ()):
        """z [N, z_dim] -> (w [N, w_dim], {name: [N, features]})."""
        cfg = self.cfg
        w_avg = self.variable("buffers", "w_avg", lambda: jnp.zeros((cfg.w_dim,), jnp.float32))
        del w_avg  # created so that init() lays out the buffer; read by `truncate`
        x = z.astype(jnp.float32)
        if cfg.normalize_latents:
            x = _pixel_norm(x)
        features = [cfg.z_dim] + [cfg.mapping_fmaps] * (cfg.mapping_layers - 1) + [cfg.w_dim]
        acts = {}
        for i in range(cfg.mapping_layers):
            x = Dense(features[i], features[i + 1], _SQRT2, cfg.mapping_lrmul, cfg.use_wscale,
                      cfg.mapping_nonlinearity, name=f"fc{i}")(x)
            if f"mapping.fc{i}" in layers:
                acts[f"mapping.fc{i}"] = x
        return x, acts


class SynthesisLayer(nn.Module):
    """[conv or up-conv + blur,] then NVIDIA's layer_epilogue: noise, bias, act, IN, StyleMod."""

    in_channels: int  # 0 for the 4x4 const layer (no conv)
    out_channels: int
    cfg: GeneratorConfig
    resolution: int
    up: bool = False
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x, w, noise_mode: str):
        """x [N,H,W,I] NHWC (the tiled const for b4.conv0), w [N, w_dim]
        -> (y [N,R,R,O], style [N, 2O])."""
        cfg, c = self.cfg, self.out_channels
        if self.in_channels:
            init_std, coef = _wscale(9 * self.in_channels, _SQRT2, 1.0, cfg.use_wscale)
            weight = self.param("weight", style_common.normal_init(init_std),
                                (3, 3, self.in_channels, c))
            w_eff = weight * coef
            if self.up:
                if cfg.fused(self.resolution):
                    # TF's transposed conv flips the kernel: as nearest + conv it is W[::-1, ::-1].
                    w_eff = w_eff[::-1, ::-1]
                x = upsample_conv3x3(x, w_eff, self.conv_impl, blur=cfg.blur)
            else:
                x = conv_ops.conv2d(x, _hwio_to_oihw(w_eff), pad=1, conv_impl=self.conv_impl)
        noise_strength = self.param("noise_strength", style_common.const_init(0.0), (c,))
        bias = self.param("bias", style_common.const_init(0.0), (c,))
        noise_const = self.variable(
            "buffers", "noise_const",
            lambda: jax.random.normal(self.make_rng("params"), (self.resolution,) * 2))
        if noise_mode == "const":
            x = x + noise_const.value[None, :, :, None] * noise_strength
        elif noise_mode == "random":
            noise = jax.random.normal(self.make_rng("noise"),
                                      (x.shape[0], self.resolution, self.resolution, 1), x.dtype)
            x = x + noise * noise_strength
        x = _instance_norm(_act(x + bias, cfg.nonlinearity))
        style = Dense(cfg.w_dim, 2 * c, 1.0, 1.0, cfg.use_wscale, name="style")(w)
        x = x * (1.0 + style[:, None, None, :c]) + style[:, None, None, c:]
        return x, style


class ToRGB(nn.Module):
    in_channels: int
    cfg: GeneratorConfig

    @nn.compact
    def __call__(self, x):
        """x [N,H,W,C] -> [N,H,W,img_channels]: linear 1x1 conv, gain 1, no style."""
        init_std, coef = _wscale(self.in_channels, 1.0, 1.0, self.cfg.use_wscale)
        weight = self.param("weight", style_common.normal_init(init_std),
                            (1, 1, self.in_channels, self.cfg.img_channels))
        bias = self.param("bias", style_common.const_init(0.0), (self.cfg.img_channels,))
        return x @ (weight[0, 0] * coef) + bias


class SynthesisBlock(nn.Module):
    """One resolution: conv0 (const at 4x4, nearest-up conv + blur above), conv1[, torgb]."""

    cfg: GeneratorConfig
    res: int
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x, ws, noise_mode: str, layers: tuple[str, ...]):
        """x [N,R/2,R/2,C'] (None for b4), ws [N,num_ws,w_dim] -> (x [N,R,R,C], img or None,
        acts)."""
        cfg, res = self.cfg, self.res
        blk = f"synthesis.b{res}"
        c = cfg.channels(res)
        acts = {}
        if res == 4:
            const = self.param("const", style_common.const_init(1.0), (4, 4, c))
            x = jnp.broadcast_to(const[None], (ws.shape[0], 4, 4, c))
            c_in = 0
        else:
            c_in = x.shape[-1]
        for conv in ("conv0", "conv1"):
            layer = SynthesisLayer(c_in if conv == "conv0" else c, c, cfg, res,
                                   up=(conv == "conv0" and res > 4), conv_impl=self.conv_impl,
                                   name=conv)
            x, style = layer(x, ws[:, ws_slot(res, conv)], noise_mode)
            for name, value in ((f"{blk}.{conv}.style", style), (f"{blk}.{conv}", x)):
                if name in layers:
                    acts[name] = value
        img = None
        if res == cfg.img_resolution:
            img = ToRGB(c, cfg, name="torgb")(x)
            if f"{blk}.torgb" in layers:
                acts[f"{blk}.torgb"] = img
        return x, img, acts


class SynthesisNetwork(nn.Module):
    cfg: GeneratorConfig
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, ws, noise_mode: str = "const", layers: tuple[str, ...] = (),
                 stop_res: int | None = None):
        """ws [N,num_ws,w_dim] -> (img [N,R,R,img_channels] NHWC or None, activations)."""
        x = img = None
        acts = {}
        for res in self.cfg.block_resolutions:
            if stop_res is not None and res > stop_res:
                break
            x, img, block_acts = SynthesisBlock(self.cfg, res, self.conv_impl, name=f"b{res}")(
                x, ws, noise_mode, layers)
            acts.update(block_acts)
        return img, acts


class StyleGAN1Generator(nn.Module):
    """Mapping + synthesis. Use the module-level functions below rather than `apply` directly."""

    cfg: GeneratorConfig
    conv_impl: str = "xla"

    def setup(self):
        self.mapping = MappingNetwork(self.cfg)
        self.synthesis = SynthesisNetwork(self.cfg, self.conv_impl)

    def __call__(self, z):
        w, _ = self.mapping(z)
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.cfg.num_ws, self.cfg.w_dim))
        img, _ = self.synthesis(ws)
        return img

    def map(self, z, layers=()):
        return self.mapping(z, layers)

    def synth(self, ws, noise_mode="const", layers=(), stop_res=None):
        return self.synthesis(ws, noise_mode, layers, stop_res)


# ----------------------------------------------------------------------------- public API


def init_generator(key: jax.Array, cfg: GeneratorConfig) -> dict:
    """Fresh parameters with NVIDIA's init (unit-scale weights, zero biases, const = 1, noise
    strengths 0, N(0,1) noise inputs). Returns {'params': ..., 'buffers': ...}."""
    variables = StyleGAN1Generator(cfg).init({"params": key},
                                             jnp.zeros((1, cfg.z_dim), jnp.float32))
    return flax.core.unfreeze(variables)


def _check_c(cfg: GeneratorConfig, c) -> None:
    if c is not None and np.size(c):
        raise ValueError("this StyleGAN v1 generator is unconditional (c_dim=0): pass c=None")


def map_latents(cfg: GeneratorConfig, variables: Mapping, z: jax.Array, c: jax.Array | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                layers: Sequence[str] = ()):
    """Mapping network (pixel norm, equalized-lr dense layers), broadcast and truncation.

    Args:
      z: [N, z_dim] latents. c: must be None (unconditional).
      truncation_psi: lerp towards w_avg; truncation_cutoff: only the first `cutoff` ws slots
        (None = every slot, the project's convention).
      layers: optional 'mapping.fc{i}' names (or NVIDIA's 'Dense{i}') to capture.
    Returns:
      ws [N, num_ws, w_dim]; or (ws, {name: [N, features]}) when `layers` is given.
    """
    if z.ndim != 2 or z.shape[1] != cfg.z_dim:
        raise ValueError(f"z must have shape [N, {cfg.z_dim}], got {tuple(z.shape)}")
    _check_c(cfg, c)
    names = tuple(canonical_layer_name(cfg, n) for n in layers)
    for name in names:
        if not name.startswith("mapping."):
            raise ValueError(f"map_latents captures mapping layers only, got {name!r}")
    w, acts = StyleGAN1Generator(cfg).apply(variables, z, names, method=StyleGAN1Generator.map)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], cfg.num_ws, cfg.w_dim))
    ws = truncate(cfg, variables, ws, truncation_psi, truncation_cutoff)
    return (ws, acts) if names else ws


def truncate(cfg: GeneratorConfig, variables: Mapping, ws: jax.Array, truncation_psi: float = 1.0,
             truncation_cutoff: int | None = None) -> jax.Array:
    """ws [N,num_ws,w_dim] -> w_avg + psi (ws - w_avg) on the first `cutoff` slots (None: all)."""
    return style_common.truncate(cfg, variables, ws, truncation_psi, truncation_cutoff)


def synthesize(cfg: GeneratorConfig, variables: Mapping, ws: jax.Array, noise_mode: str = "const",
               key: jax.Array | None = None, layers: Sequence[str] = (),
               return_image: bool = True, conv_impl: str = "xla"):
    """Synthesis network (never truncates).

    Args:
      ws: [N, num_ws, w_dim] per-layer latents (slot i drives layer i).
      noise_mode: 'const' (the stored noise inputs: NVIDIA's randomize_noise=False), 'none'
        (zero noise) or 'random' (fresh N(0,1) per sample; needs `key`).
      layers: synthesis layer names to capture ('synthesis.b16.conv1', 'b16.conv1' or NVIDIA's
        '16x16/Conv1'); see `synthesis_layer_names`.
      return_image: with False, stops after the deepest requested layer's block and returns only
        the activations.
      conv_impl: "xla" or "matmul" (`sparse_jax.models.conv_ops`); same function.
    Returns:
      img [N, img_channels, R, R] NCHW float32; or (img, {name: NCHW or [N, 2C] array}) when
      `layers` is given; or the activation dict alone when return_image is False.
    """
    names, stop_res, rngs = style_common.synthesis_plan(
        cfg, ws, noise_mode, key, layers, return_image, conv_impl, canonical_layer_name)
    img, acts = StyleGAN1Generator(cfg, conv_impl).apply(
        variables, ws.astype(jnp.float32), noise_mode, names, stop_res,
        method=StyleGAN1Generator.synth, rngs=rngs)
    return style_common.synthesis_result(img, acts, names, return_image)


def generate(cfg: GeneratorConfig, variables: Mapping, z: jax.Array, c: jax.Array | None = None,
             truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
             noise_mode: str = "const", key: jax.Array | None = None) -> jax.Array:
    """z [N,z_dim] -> images [N, img_channels, R, R] (mapping, truncation, synthesis)."""
    ws = map_latents(cfg, variables, z, c, truncation_psi, truncation_cutoff)
    return synthesize(cfg, variables, ws, noise_mode=noise_mode, key=key)


def style_affines(cfg: GeneratorConfig, variables: Mapping) -> list[tuple[str, jax.Array]]:
    """The StyleMod dense weight of every synthesis layer, in ws-slot order (for SeFa).

    Returns:
      [('synthesis.b{r}.conv{k}', weight [2C, w_dim])]: one row per style output, the C scales
      then the C shifts, as the stored [w_dim, 2C] weight transposed (SeFa's own StyleGAN v1
      recipe factorises all 2C rows; the equalized-lr coefficient is one scalar per layer and
      SeFa's row normalisation removes it, so the stored weight is returned). ToRGB has no style.
    """
    syn = variables["params"]["synthesis"]
    return [(f"synthesis.b{r}.{conv}", jnp.asarray(syn[f"b{r}"][conv]["style"]["weight"]).T)
            for r, conv in _conv_layers(cfg)]


def num_params(variables: Mapping) -> int:
    return style_common.num_params(variables)
