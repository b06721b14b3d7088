"""StyleGAN2 generator (config-f 'skip' architecture) in Flax Linen, matching the official numerics.

The parameter tree mirrors the official PyTorch state dict, names and layouts included, so a
checkpoint converts by re-nesting only (see `converters/`):

  params/mapping/fc{i}/{weight [out,in], bias [out]}         (+ embed/... when c_dim > 0)
  params/synthesis/b4/const [C,4,4]
  params/synthesis/b{r}/conv{0,1}/{weight [O,I,3,3], bias [O], noise_strength [],
                                   affine/{weight [I,w_dim], bias [I]}}
  params/synthesis/b{r}/torgb/{weight [img_channels,C,1,1], bias, affine/{weight, bias}}
  buffers/mapping/w_avg [w_dim]
  buffers/synthesis/b{r}/conv{0,1}/noise_const [r,r]

Equalized learning rate: weights are stored unscaled (init N(0,1), divided by the lr multiplier)
and the gains are applied at run time, exactly as the official code does, so Adam on the stored
parameters reproduces the official training dynamics.

Computation runs in NHWC (the fast layout for XLA convolutions); images and captured activations
are returned in the official NCHW layout. The modulated convolution uses the "non-fused" form
(scale the input, shared-weight conv, scale the output), which the official code uses in training
and which agrees with the fused form to ~1e-5 while avoiding a grouped conv per sample.

Public functions are pure and take the (hashable) config first, so they jit with
`jax.jit(f, static_argnums=0)` or through `functools.partial`.
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

ARCH = "stylegan2"
NOISE_MODES = style_common.NOISE_MODES
_SQRT2 = math.sqrt(2.0)
# The standard StyleGAN2 resample filter [1,3,3,1] (separable; see _FIR_TAPS_UP).
_FIR_1D = np.array([1.0, 3.0, 3.0, 1.0], np.float32)


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a StyleGAN2 generator (the official constructor kwargs, flattened)."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_resolution: int = 1024
    img_channels: int = 3
    mapping_layers: int = 8
    channel_base: int = 32768
    channel_max: int = 512
    conv_clamp: float | None = None
    mapping_lr_multiplier: float = 0.01
    embed_features: int | None = None  # None: w_dim (official default)
    layer_features: int | None = None  # None: w_dim (official default)

    def __post_init__(self):
        res = self.img_resolution
        if not isinstance(res, int) or res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {res!r}")
        if self.img_channels < 1:
            raise ValueError(f"img_channels must be >= 1, got {self.img_channels}")
        if self.w_dim < 1 or self.z_dim < 0 or self.c_dim < 0:
            raise ValueError(f"bad dims: z_dim={self.z_dim} w_dim={self.w_dim} c_dim={self.c_dim}")
        if self.z_dim == 0 and self.c_dim == 0:
            raise ValueError("z_dim and c_dim cannot both be 0")
        if self.mapping_layers < 1:
            raise ValueError(f"mapping_layers must be >= 1, got {self.mapping_layers}")
        for r in self.block_resolutions:
            if self.channels(r) < 1:
                raise ValueError(
                    f"channel_base={self.channel_base} gives 0 channels at resolution {r}")

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
        return min(self.channel_base // res, self.channel_max)

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


def layer_names(cfg: GeneratorConfig) -> list[str]:
    """Every name accepted by `layers=`: official module paths of mapping and synthesis."""
    names = [f"mapping.fc{i}" for i in range(cfg.mapping_layers)]
    names += synthesis_layer_names(cfg)
    return names


def synthesis_layer_names(cfg: GeneratorConfig) -> list[str]:
    names = []
    for r in cfg.block_resolutions:
        convs = ("conv1",) if r == 4 else ("conv0", "conv1")
        for conv in convs:
            names += [f"synthesis.b{r}.{conv}.affine", f"synthesis.b{r}.{conv}"]
        names += [f"synthesis.b{r}.torgb.affine", f"synthesis.b{r}.torgb",
                  f"synthesis.b{r}.x", f"synthesis.b{r}.img"]
    return names


def canonical_layer_name(cfg: GeneratorConfig, name: str) -> str:
    """Accepts 'synthesis.b16.conv1' or the short 'b16.conv1'; raises with the valid names."""
    valid = layer_names(cfg)
    for cand in (name, f"synthesis.{name}"):
        if cand in valid:
            return cand
    raise ValueError(f"unknown layer name {name!r} for a {cfg.img_resolution}x{cfg.img_resolution} "
                     f"generator; valid names: {', '.join(valid)}")


def ws_slot(cfg: GeneratorConfig, res: int, layer: str) -> int:
    """Index into ws used by a synthesis layer ('conv0', 'conv1' or 'torgb') of block b{res}."""
    if res == 4:
        return {"conv1": 0, "torgb": 1}[layer]
    k = int(round(math.log2(res)))
    return {"conv0": 2 * k - 5, "conv1": 2 * k - 4, "torgb": 2 * k - 3}[layer]


# ----------------------------------------------------------------------------- primitives


def _lrelu_gain(x, gain=_SQRT2):
    return jax.nn.leaky_relu(x, 0.2) * gain


def _clamp(x, clamp):
    return x if clamp is None else jnp.clip(x, -clamp, clamp)


def _normalize_2nd_moment(x, eps=1e-8):
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=1, keepdims=True) + eps)


# The FIR [1,3,3,1] is separable; per axis (gain 2 of the total up-sampling gain 4) its taps are
# [1,3,3,1]/4.
_FIR_TAPS_UP = tuple(float(t) for t in _FIR_1D * 2.0 / np.sum(_FIR_1D))


def _interleave(even, odd, axis: int):
    """even/odd samples along `axis` -> one array twice as long (even first)."""
    stacked = jnp.stack([even, odd], axis=axis + 1)
    shape = list(even.shape)
    shape[axis] *= 2
    return stacked.reshape(shape)


def _upsample_axis(x, axis: int):
    # Zero insertion + FIR, evaluated per output phase: y[2m] = (x[m-1] + 3 x[m]) / 4 and
    # y[2m+1] = (3 x[m] + x[m+1]) / 4.
    g0, g1, g2, g3 = _FIR_TAPS_UP
    even = conv_ops.correlate_axis(x, axis, (g0, g2), (1, 0))
    odd = conv_ops.correlate_axis(x, axis, (g1, g3), (0, 1))
    return _interleave(even, odd, axis)


def upsample2d(x):
    """Official upfirdn2d.upsample2d with [1,3,3,1]: NHWC [N,H,W,C] -> [N,2H,2W,C]."""
    return _upsample_axis(_upsample_axis(x, 1), 2)


def _fir_pad1(x):
    """upfirdn2d.filter with the up-sampling gain and padding 1: [N,L,L,C] -> [N,L-1,L-1,C]."""
    x = conv_ops.correlate_axis(x, 1, _FIR_TAPS_UP, (1, 1))
    return conv_ops.correlate_axis(x, 2, _FIR_TAPS_UP, (1, 1))


def _modulated_conv(x, weight, styles, *, up: bool, demodulate: bool = True,
                    conv_impl: str = "xla"):
    """Non-fused modulated 3x3 conv. x [N,H,W,I] NHWC, weight [O,I,3,3], styles [N,I]."""
    x = x * styles[:, None, None, :].astype(x.dtype)
    if up:
        # Transposed conv (stride 2) -> 2H+1, then the FIR with padding 1 -> 2H.
        x = _fir_pad1(conv_ops.transposed_conv3x3_stride2(x, weight, conv_impl))
    else:
        x = conv_ops.conv2d(x, weight, pad=1, conv_impl=conv_impl)
    if demodulate:
        wsq = jnp.sum(jnp.square(weight), axis=(2, 3))  # [O,I]
        dcoefs = jax.lax.rsqrt(jnp.square(styles) @ wsq.T + 1e-8)  # [N,O]
        x = x * dcoefs[:, None, None, :].astype(x.dtype)
    return x


# ----------------------------------------------------------------------------- Flax modules


class FullyConnected(nn.Module):
    """Official FullyConnectedLayer: weight [out,in] stored / lr_multiplier."""

    in_features: int
    out_features: int
    lr_multiplier: float = 1.0
    bias_init: float = 0.0
    activation: bool = False

    @nn.compact
    def __call__(self, x):
        weight = self.param("weight", style_common.normal_init(1.0 / self.lr_multiplier),
                            (self.out_features, self.in_features))
        bias = self.param("bias", style_common.const_init(self.bias_init / self.lr_multiplier),
                          (self.out_features,))
        y = x @ (weight * (self.lr_multiplier / math.sqrt(self.in_features))).T
        y = y + bias * self.lr_multiplier
        return _lrelu_gain(y) if self.activation else y


class MappingNetwork(nn.Module):
    cfg: GeneratorConfig

    @nn.compact
    def __call__(self, z, c, layers: tuple[str, ...] = ()):
        """z [N,z_dim], c [N,c_dim] or None -> (w [N,w_dim], activations dict)."""
        cfg = self.cfg
        embed_features = cfg.embed_features or cfg.w_dim
        layer_features = cfg.layer_features or cfg.w_dim
        w_avg = self.variable("buffers", "w_avg", lambda: jnp.zeros((cfg.w_dim,), jnp.float32))
        del w_avg  # created here so that init() lays out the buffer; read by the caller
        parts = []
        if cfg.z_dim > 0:
            parts.append(_normalize_2nd_moment(z.astype(jnp.float32)))
        if cfg.c_dim > 0:
            y = FullyConnected(cfg.c_dim, embed_features, name="embed")(c.astype(jnp.float32))
            parts.append(_normalize_2nd_moment(y))
        x = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)
        features = [x.shape[1]] + [layer_features] * (cfg.mapping_layers - 1) + [cfg.w_dim]
        acts = {}
        for i in range(cfg.mapping_layers):
            x = FullyConnected(features[i], features[i + 1], cfg.mapping_lr_multiplier,
                               activation=True, name=f"fc{i}")(x)
            if f"mapping.fc{i}" in layers:
                acts[f"mapping.fc{i}"] = x
        return x, acts


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional up-sampling), noise, bias, lrelu, clamp."""

    in_channels: int
    out_channels: int
    w_dim: int
    resolution: int
    up: bool
    conv_clamp: float | None
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x, w, noise_mode: str):
        """x [N,H,W,I] NHWC, w [N,w_dim] -> (y [N,R,R,O], styles [N,I])."""
        styles = FullyConnected(self.w_dim, self.in_channels, bias_init=1.0, name="affine")(w)
        weight = self.param("weight", style_common.normal_init(),
                            (self.out_channels, self.in_channels, 3, 3))
        bias = self.param("bias", style_common.const_init(0.0), (self.out_channels,))
        noise_strength = self.param("noise_strength", style_common.const_init(0.0), ())
        noise_const = self.variable(
            "buffers", "noise_const",
            lambda: jax.random.normal(self.make_rng("params"), (self.resolution,) * 2))
        x = _modulated_conv(x, weight, styles, up=self.up, conv_impl=self.conv_impl)
        if noise_mode == "const":
            x = x + (noise_const.value * noise_strength)[None, :, :, None]
        elif noise_mode == "random":
            n = x.shape[0]
            noise = jax.random.normal(self.make_rng("noise"), (n, self.resolution,
                                                               self.resolution, 1), x.dtype)
            x = x + noise * noise_strength
        x = _lrelu_gain(x + bias)
        return _clamp(x, self.conv_clamp), styles


class ToRGB(nn.Module):
    in_channels: int
    img_channels: int
    w_dim: int
    conv_clamp: float | None

    @nn.compact
    def __call__(self, x, w):
        """x [N,H,W,C] -> (rgb [N,H,W,img_channels], styles [N,C] before the weight gain)."""
        styles = FullyConnected(self.w_dim, self.in_channels, bias_init=1.0, name="affine")(w)
        weight = self.param("weight", style_common.normal_init(),
                            (self.img_channels, self.in_channels, 1, 1))
        bias = self.param("bias", style_common.const_init(0.0), (self.img_channels,))
        s = styles * (1.0 / math.sqrt(self.in_channels))
        y = (x * s[:, None, None, :]) @ weight[:, :, 0, 0].T + bias
        return _clamp(y, self.conv_clamp), styles


class SynthesisBlock(nn.Module):
    """One resolution: [const,] conv0 (up), conv1, torgb, and the skip image."""

    cfg: GeneratorConfig
    res: int
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x, img, ws, noise_mode: str, layers: tuple[str, ...]):
        """x [N,R/2,R/2,C] (None for b4), img NHWC or None, ws [N,num_ws,w_dim]."""
        cfg, res = self.cfg, self.res
        blk = f"synthesis.b{res}"
        c_out = cfg.channels(res)
        acts = {}

        def keep(name, value):
            if name in layers:
                acts[name] = value

        if res == 4:
            const = self.param("const", style_common.normal_init(), (c_out, 4, 4))
            x = jnp.broadcast_to(jnp.transpose(const, (1, 2, 0))[None],
                                 (ws.shape[0], 4, 4, c_out))
        for conv in (("conv1",) if res == 4 else ("conv0", "conv1")):
            layer = SynthesisLayer(x.shape[-1], c_out, cfg.w_dim, res, up=(conv == "conv0"),
                                   conv_clamp=cfg.conv_clamp, conv_impl=self.conv_impl,
                                   name=conv)
            x, styles = layer(x, ws[:, ws_slot(cfg, res, conv)], noise_mode)
            keep(f"{blk}.{conv}.affine", styles)
            keep(f"{blk}.{conv}", x)
        y, styles = ToRGB(c_out, cfg.img_channels, cfg.w_dim, cfg.conv_clamp,
                          name="torgb")(x, ws[:, ws_slot(cfg, res, "torgb")])
        keep(f"{blk}.torgb.affine", styles)
        keep(f"{blk}.torgb", y)
        img = y if img is None else upsample2d(img) + y
        keep(f"{blk}.x", x)
        keep(f"{blk}.img", img)
        return x, img, acts


class SynthesisNetwork(nn.Module):
    cfg: GeneratorConfig
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, ws, noise_mode: str = "const", layers: tuple[str, ...] = (),
                 stop_res: int | None = None):
        """ws [N,num_ws,w_dim] -> (img [N,H,W,img_channels] NHWC, activations dict)."""
        x = img = None
        acts = {}
        for res in self.cfg.block_resolutions:
            if stop_res is not None and res > stop_res:
                break
            x, img, block_acts = SynthesisBlock(self.cfg, res, self.conv_impl, name=f"b{res}")(
                x, img, ws, noise_mode, layers)
            acts.update(block_acts)
        return img, acts


class StyleGAN2Generator(nn.Module):
    """Mapping + synthesis. Use the module-level functions below rather than `apply` directly."""

    cfg: GeneratorConfig
    conv_impl: str = "xla"  # see `conv_ops`; not part of the parameters

    def setup(self):
        self.mapping = MappingNetwork(self.cfg)
        self.synthesis = SynthesisNetwork(self.cfg, self.conv_impl)

    def __call__(self, z, c=None):
        w, _ = self.mapping(z, c)
        ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.cfg.num_ws, self.cfg.w_dim))
        img, _ = self.synthesis(ws)
        return img

    def map(self, z, c, layers=()):
        return self.mapping(z, c, layers)

    def synth(self, ws, noise_mode="const", layers=(), stop_res=None):
        return self.synthesis(ws, noise_mode, layers, stop_res)


# ----------------------------------------------------------------------------- public API


def init_generator(key: jax.Array, cfg: GeneratorConfig) -> dict:
    """Fresh parameters with the official init. Returns {'params': ..., 'buffers': ...}."""
    model = StyleGAN2Generator(cfg)
    z = jnp.zeros((1, cfg.z_dim), jnp.float32)
    c = jnp.zeros((1, cfg.c_dim), jnp.float32) if cfg.c_dim else None
    variables = model.init({"params": key}, z, c)
    return flax.core.unfreeze(variables)


def _check_c(cfg, c, n):
    if cfg.c_dim == 0:
        return None
    if c is None:
        raise ValueError(f"this generator is conditional (c_dim={cfg.c_dim}): pass c [N, c_dim]")
    if c.shape != (n, cfg.c_dim):
        raise ValueError(f"c must have shape {(n, cfg.c_dim)}, got {tuple(c.shape)}")
    return c


def map_latents(cfg: GeneratorConfig, variables: Mapping, z: jax.Array, c: jax.Array | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                layers: Sequence[str] = ()):
    """Mapping network.

    Args:
      z: [N, z_dim] latents. c: [N, c_dim] labels (conditional models only).
      truncation_psi: lerp towards w_avg; truncation_cutoff: only the first `cutoff` ws slots.
      layers: optional 'mapping.fc{i}' names to capture.
    Returns:
      ws [N, num_ws, w_dim]; or (ws, {name: [N, features]}) when `layers` is given.
    """
    if z.ndim != 2 or z.shape[1] != cfg.z_dim:
        raise ValueError(f"z must have shape [N, {cfg.z_dim}], got {tuple(z.shape)}")
    c = _check_c(cfg, c, z.shape[0])
    layers = tuple(layers)
    for name in layers:
        if not name.startswith("mapping."):
            raise ValueError(f"map_latents captures mapping layers only, got {name!r}")
        canonical_layer_name(cfg, name)
    w, acts = StyleGAN2Generator(cfg).apply(variables, z, c, layers,
                                            method=StyleGAN2Generator.map)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], cfg.num_ws, cfg.w_dim))
    ws = truncate(cfg, variables, ws, truncation_psi, truncation_cutoff)
    return (ws, acts) if layers else ws


def truncate(cfg: GeneratorConfig, variables: Mapping, ws: jax.Array, truncation_psi: float = 1.0,
             truncation_cutoff: int | None = None) -> jax.Array:
    """ws [N,num_ws,w_dim] -> w_avg + psi (ws - w_avg) on the first `cutoff` slots (None: all)."""
    return style_common.truncate(cfg, variables, ws, truncation_psi, truncation_cutoff)


def synthesize(cfg: GeneratorConfig, variables: Mapping, ws: jax.Array, noise_mode: str = "const",
               key: jax.Array | None = None, layers: Sequence[str] = (),
               return_image: bool = True, conv_impl: str = "xla"):
    """Synthesis network.

    Args:
      ws: [N, num_ws, w_dim] per-layer latents.
      noise_mode: 'const' (stored noise buffers), 'none', or 'random' (needs `key`).
      layers: synthesis layer names to capture (official, e.g. 'synthesis.b16.conv1', or short
        'b16.conv1'); see `layer_names`.
      return_image: with False, stops after the deepest requested layer's block and returns only
        the activations.
      conv_impl: "xla" (default) or "matmul", the im2col form that trains the small embedded
        models several times faster on a CPU (`sparse_jax.models.conv_ops`). Same function.
    Returns:
      img [N, img_channels, H, W] (NCHW float32); or (img, {name: NCHW array}) when `layers` is
      given; or the activation dict alone when return_image is False.
    """
    names, stop_res, rngs = style_common.synthesis_plan(
        cfg, ws, noise_mode, key, layers, return_image, conv_impl, canonical_layer_name)
    img, acts = StyleGAN2Generator(cfg, conv_impl).apply(
        variables, ws.astype(jnp.float32), noise_mode, names, stop_res,
        method=StyleGAN2Generator.synth, rngs=rngs)
    return style_common.synthesis_result(img, acts, names, return_image)


def generate(cfg: GeneratorConfig, variables: Mapping, z: jax.Array, c: jax.Array | None = None,
             truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
             noise_mode: str = "const", key: jax.Array | None = None) -> jax.Array:
    """z [N,z_dim] -> images [N, img_channels, H, W] (mapping, truncation, synthesis)."""
    ws = map_latents(cfg, variables, z, c, truncation_psi, truncation_cutoff)
    return synthesize(cfg, variables, ws, noise_mode=noise_mode, key=key)


def num_params(variables: Mapping) -> int:
    return style_common.num_params(variables)



def style_affines(cfg: GeneratorConfig, variables: Mapping) -> list[tuple[str, jax.Array]]:
    """The style affine of every ws slot, in slot order (SeFa's layers).

    Returns:
      [(name, weight [C, w_dim])]: every conv (b4.conv1, b8.conv0, b8.conv1, ...) then the last
      block's torgb; entry i reads ws[:, i]. Intermediate torgb layers share a slot with the next
      conv and are not listed.
    """
    syn = variables["params"]["synthesis"]
    out = []
    for r in cfg.block_resolutions:
        for conv in (("conv1",) if r == 4 else ("conv0", "conv1")):
            out.append((f"synthesis.b{r}.{conv}", syn[f"b{r}"][conv]["affine"]["weight"]))
    r = cfg.img_resolution
    out.append((f"synthesis.b{r}.torgb", syn[f"b{r}"]["torgb"]["affine"]["weight"]))
    return out
