"""StyleGAN2 'resnet' discriminator (stylegan2-ada-pytorch semantics) in Flax Linen.

Used only to train the small embedded generator. Parameters mirror the official names:

```
params['b{r}'] = {'fromrgb': FC_CONV (first block only), 'conv0': CONV, 'conv1': CONV,
                  'skip': {'weight': [O, I, 1, 1]}}                 for r = res, res/2, ..., 8
params['b4']   = {'conv': CONV, 'fc': {'weight': [C4, C4*16], 'bias'},
                  'out': {'weight': [1, C4], 'bias'}}
CONV = {'weight': [O, I, k, k], 'bias': [O]}
```

Equalized learning rate: weights are stored as unit normals and scaled by 1/sqrt(fan_in) at run
time, so plain Adam on the stored values gives the official training dynamics. Images come in
NCHW; the layers run in NHWC, with XLA or im2col convolutions (`conv_impl`, see `conv_ops`).
Like the generator, the module is used through pure functions (`init_discriminator`,
`discriminate`) over its parameter tree.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.models.conv_ops import check_conv_impl, conv2d, correlate_axis

Params = dict[str, Any]

_LRELU_GAIN = math.sqrt(2.0)
# [1, 3, 3, 1] binomial filter, normalised to sum 1 per axis (the 2-D filter is its outer product).
_FIR_TAPS = (1.0 / 8.0, 3.0 / 8.0, 3.0 / 8.0, 1.0 / 8.0)


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
    """Static hyper-parameters of the discriminator (hashable, usable as a jit static argument)."""

    img_resolution: int = 32
    img_channels: int = 1
    channel_base: int = 1024
    channel_max: int = 128
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1

    def __post_init__(self) -> None:
        r = self.img_resolution
        if r < 4 or r & (r - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {r}")
        if self.img_channels < 1:
            raise ValueError(f"img_channels must be >= 1, got {self.img_channels}")
        if self.mbstd_group_size < 1 or self.mbstd_num_channels < 1:
            raise ValueError("mbstd_group_size and mbstd_num_channels must be >= 1")
        if self.channels(4) % self.mbstd_num_channels:
            raise ValueError(
                f"channels at 4x4 ({self.channels(4)}) not divisible by mbstd_num_channels "
                f"({self.mbstd_num_channels})")

    @property
    def block_resolutions(self) -> tuple[int, ...]:
        """Resolutions of the down-sampling blocks, largest first, e.g. (32, 16, 8)."""
        return tuple(2 ** i for i in range(int(math.log2(self.img_resolution)), 2, -1))

    def channels(self, res: int) -> int:
        return max(1, min(self.channel_base // res, self.channel_max))

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiscriminatorConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown DiscriminatorConfig keys: {sorted(unknown)}")
        return cls(**d)


class ConvLayer(nn.Module):
    """Equalized-lr conv (+ bias, lrelu*sqrt2, gain); down=True is conv2d_resample with down=2.

    x: [N, H, W, in_features] -> [N, H', W', features]. Params: weight [O, I, k, k] (N(0, 1)),
    bias [O] (zeros) unless use_bias is False.
    """

    features: int
    kernel: int
    act: bool
    down: bool = False
    gain: float = 1.0
    use_bias: bool = True
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x):
        k = self.kernel
        w = self.param("weight", nn.initializers.normal(1.0),
                       (self.features, x.shape[-1], k, k), jnp.float32)
        w = w * (1.0 / math.sqrt(x.shape[-1] * k * k))
        if k == 1:
            if self.down:
                x = _fir(x, pad=1, down=2)
            x = jnp.einsum("nhwi,oi->nhwo", x, w[:, :, 0, 0])
        elif self.down:
            # Blur with padding 2 (kernel padding 1 + filter adjustment), then stride-2 valid conv.
            x = conv2d(_fir(x, pad=2, down=1), w, pad=0, stride=2, conv_impl=self.conv_impl)
        else:
            x = conv2d(x, w, pad=k // 2, conv_impl=self.conv_impl)
        if self.use_bias:
            x = x + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        if self.act:
            return jax.nn.leaky_relu(x, 0.2) * (_LRELU_GAIN * self.gain)
        return x * self.gain if self.gain != 1.0 else x


class Dense(nn.Module):
    """Equalized-lr dense layer: [N, I] -> [N, features]; weight [O, I], bias [O]."""

    features: int
    act: bool

    @nn.compact
    def __call__(self, x):
        w = self.param("weight", nn.initializers.normal(1.0), (self.features, x.shape[-1]),
                       jnp.float32)
        b = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        x = x @ (w * (1.0 / math.sqrt(x.shape[-1]))).T + b
        return jax.nn.leaky_relu(x, 0.2) * _LRELU_GAIN if self.act else x


class DiscriminatorBlock(nn.Module):
    """Residual down-sampling block b{res}: [N, R, R, C] -> [N, R/2, R/2, C']."""

    cfg: DiscriminatorConfig
    res: int
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x):
        tmp, out = self.cfg.channels(self.res), self.cfg.channels(self.res // 2)
        if self.res == self.cfg.img_resolution:
            x = ConvLayer(tmp, 1, act=True, conv_impl=self.conv_impl, name="fromrgb")(x)
        # Both branches carry gain sqrt(0.5) so their sum keeps unit variance.
        y = ConvLayer(out, 1, act=False, down=True, gain=math.sqrt(0.5), use_bias=False,
                      conv_impl=self.conv_impl, name="skip")(x)
        x = ConvLayer(tmp, 3, act=True, conv_impl=self.conv_impl, name="conv0")(x)
        x = ConvLayer(out, 3, act=True, down=True, gain=math.sqrt(0.5), conv_impl=self.conv_impl,
                      name="conv1")(x)
        return x + y


class DiscriminatorEpilogue(nn.Module):
    """Block b4: (fromrgb,) minibatch std, conv, dense, output logit. [N, 4, 4, C] -> [N]."""

    cfg: DiscriminatorConfig
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, x):
        cfg, c4 = self.cfg, self.cfg.channels(4)
        if cfg.img_resolution == 4:
            x = ConvLayer(c4, 1, act=True, conv_impl=self.conv_impl, name="fromrgb")(x)
        x = minibatch_std(x, cfg.mbstd_group_size, cfg.mbstd_num_channels)
        x = ConvLayer(c4, 3, act=True, conv_impl=self.conv_impl, name="conv")(x)
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # official NCHW flatten order
        x = Dense(c4, act=True, name="fc")(x)
        return Dense(1, act=False, name="out")(x)[:, 0]


class Discriminator(nn.Module):
    """NCHW images [N, img_channels, R, R] -> logits [N]."""

    cfg: DiscriminatorConfig
    conv_impl: str = "xla"

    @nn.compact
    def __call__(self, img):
        x = jnp.transpose(img, (0, 2, 3, 1))
        for res in self.cfg.block_resolutions:
            x = DiscriminatorBlock(self.cfg, res, self.conv_impl, name=f"b{res}")(x)
        return DiscriminatorEpilogue(self.cfg, self.conv_impl, name="b4")(x)


def init_discriminator(key: jax.Array, cfg: DiscriminatorConfig) -> Params:
    """Official initialisation: weights N(0, 1) (gains applied at run time), biases 0.

    Args:
      key: PRNG key.
      cfg: the configuration.

    Returns:
      the parameter tree described in the module docstring.
    """
    img = jnp.zeros((cfg.mbstd_group_size, cfg.img_channels, cfg.img_resolution,
                     cfg.img_resolution), jnp.float32)
    return flax.core.unfreeze(Discriminator(cfg).init({"params": key}, img)["params"])


def discriminate(cfg: DiscriminatorConfig, params: Params, img: jax.Array,
                 conv_impl: str = "xla") -> jax.Array:
    """Real/fake logits.

    Args:
      cfg: the configuration (static).
      params: from `init_discriminator`.
      img: float32 [N, img_channels, R, R], nominal range [-1, 1].
      conv_impl: "xla" or "matmul" (im2col, faster on CPU; see `conv_ops`).

    Returns:
      float32 [N] logits (positive = judged real).
    """
    r, c = cfg.img_resolution, cfg.img_channels
    if img.ndim != 4 or img.shape[1:] != (c, r, r):
        raise ValueError(f"discriminator expects images [N, {c}, {r}, {r}], got {img.shape}")
    check_conv_impl(conv_impl)
    return Discriminator(cfg, conv_impl).apply({"params": params}, img)


def minibatch_std(x: jax.Array, group_size: int, num_channels: int) -> jax.Array:
    """Appends the per-group standard deviation of the features as extra channels.

    Sample i belongs to group i % (N // G), as in the official reshape(G, -1, ...).

    Args:
      x: [N, H, W, C]; N must be divisible by min(group_size, N).
      group_size: G.
      num_channels: F, number of statistics channels (C must be divisible by F).

    Returns:
      [N, H, W, C + F].
    """
    n, h, w, c = x.shape
    g = min(group_size, n)
    if n % g:
        raise ValueError(f"batch size {n} is not divisible by the mbstd group size {g}")
    f = num_channels
    y = x.reshape(g, n // g, h, w, f, c // f)
    y = y - jnp.mean(y, axis=0)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)  # [n/G, H, W, F, C/F]
    y = jnp.mean(y, axis=(1, 2, 4))  # [n/G, F]
    y = jnp.tile(y, (g, 1))  # [N, F]
    y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, f)).astype(x.dtype)
    return jnp.concatenate([x, y], axis=-1)


def _fir(x: jax.Array, pad: int, down: int) -> jax.Array:
    """Zero-pads H and W by `pad`, filters with the separable [1,3,3,1]/8, keeps every `down`-th."""
    for axis in (1, 2):
        x = correlate_axis(x, axis, _FIR_TAPS, (pad, pad))
        if down > 1:
            x = jax.lax.slice_in_dim(x, 0, x.shape[axis], stride=down, axis=axis)
    return x


def count_params(params: Params) -> int:
    return int(sum(np.prod(v.shape) for v in jax.tree_util.tree_leaves(params)))
