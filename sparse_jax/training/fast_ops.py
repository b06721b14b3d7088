"""CPU-friendly, numerically equivalent replacements for the generator's convolution primitives.

XLA's CPU backend is slow at grouped (depthwise) convolutions and at the weight gradient of small
convolutions; training the embedded MNIST generator on a 2-core CPU was ~3x slower with them. Here:
- the [1,3,3,1] FIR is four shifted multiply-adds per axis instead of a depthwise conv;
- 3x3 convolutions are im2col (nine shifted slices concatenated) followed by one matmul, whose
  forward and both gradients are plain matmuls.

`generator_fast_ops()` swaps the modulated conv of `sparse_jax.models.stylegan2` for this one while
a training step is traced (outputs agree with the originals to float32 rounding, see
tests/test_training.py). It is a stop-gap
until the generator module uses such primitives itself.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import jax
import jax.numpy as jnp

from sparse_jax.models import stylegan2 as sg
from sparse_jax.models.discriminator import conv2d

_FIR_TAPS = (1.0 / 8.0, 3.0 / 8.0, 3.0 / 8.0, 1.0 / 8.0)


def zero_insert(x: jax.Array) -> jax.Array:
    """NHWC [N,H,W,C] -> [N,2H-1,2W-1,C] with x at even positions and zeros elsewhere."""
    n, h, w, c = x.shape
    zeros = jnp.zeros_like(x)
    x = jnp.stack([x, zeros], axis=2).reshape(n, 2 * h, w, c)[:, : 2 * h - 1]
    zeros = jnp.zeros_like(x)
    return jnp.stack([x, zeros], axis=3).reshape(n, 2 * h - 1, 2 * w, c)[:, :, : 2 * w - 1]


def fir(x: jax.Array, pad: tuple[int, int], gain: float = 1.0, down: int = 1) -> jax.Array:
    """Separable [1,3,3,1] FIR (total gain `gain`) over NHWC x after zero-padding H, W by `pad`."""
    x = jnp.pad(x, ((0, 0), tuple(pad), tuple(pad), (0, 0)))
    g = gain ** 0.5
    for axis in (1, 2):
        length = x.shape[axis] - len(_FIR_TAPS) + 1
        x = sum((t * g) * jax.lax.slice_in_dim(x, j, j + length, axis=axis)
                for j, t in enumerate(_FIR_TAPS))
        if down > 1:
            x = jax.lax.slice_in_dim(x, 0, length, stride=down, axis=axis)
    return x


def _modulated_conv(x, weight, styles, *, up: bool, demodulate: bool = True):
    x = x * styles[:, None, None, :].astype(x.dtype)
    if up:
        x = conv2d(zero_insert(x), weight[:, :, ::-1, ::-1], pad=2)
        x = fir(x, (1, 1), gain=4.0)
    else:
        x = conv2d(x, weight, pad=1)
    if demodulate:
        wsq = jnp.sum(jnp.square(weight), axis=(2, 3))
        dcoefs = jax.lax.rsqrt(jnp.square(styles) @ wsq.T + 1e-8)
        x = x * dcoefs[:, None, None, :].astype(x.dtype)
    return x


@contextlib.contextmanager
def generator_fast_ops() -> Iterator[None]:
    """Within the block, stylegan2's modulated conv uses the im2col / slice version.

    Only affects functions traced inside the block (wrap the first call of a jitted step).
    """
    saved = {name: getattr(sg, name) for name in ("_modulated_conv",)}
    missing = [n for n, f in saved.items() if not callable(f)]
    if missing:
        raise RuntimeError(f"stylegan2 module lacks {missing}; update sparse_jax.training.fast_ops")
    sg._modulated_conv = _modulated_conv
    try:
        yield
    finally:
        for name, f in saved.items():
            setattr(sg, name, f)
