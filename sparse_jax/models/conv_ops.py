"""Convolution primitives shared by the generator and the discriminator, in two implementations.

- "xla": `lax.conv_general_dilated`. The right choice on GPU/TPU and for inference at any size,
  since it never materialises the patches.
- "matmul": im2col (the k*k shifted slices concatenated on the channel axis) followed by one
  matmul. On a CPU with the small channel counts of the embedded MNIST models, XLA's
  convolutions, and above all their weight gradients, are several times slower than this; the
  price is a k*k times larger intermediate, so it is meant for training small models.

Both compute the same cross-correlation; they differ only in float rounding.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

CONV_IMPLS = ("xla", "matmul")


def check_conv_impl(conv_impl: str) -> str:
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
    return conv_impl


def correlate_axis(x: jax.Array, axis: int, taps, pad: tuple[int, int]) -> jax.Array:
    """1-D correlation of `x` with the static `taps` along `axis`, after zero padding `pad`.

    The [1,3,3,1] resampling filters of both networks are separable and use this per axis:
    XLA's CPU depthwise convolution is several times slower than these shifted multiply-adds.

    Args:
      x: any shape; `axis` has length L.
      taps: sequence of K Python floats.
      pad: (before, after) zeros added along `axis`.

    Returns:
      x's shape with L + sum(pad) - K + 1 along `axis`.
    """
    widths = [(0, 0)] * x.ndim
    widths[axis] = pad
    xp = jnp.pad(x, widths)
    n = xp.shape[axis] - len(taps) + 1
    return sum(t * jax.lax.slice_in_dim(xp, i, i + n, axis=axis) for i, t in enumerate(taps))


def conv2d(x: jax.Array, weight_oihw: jax.Array, pad: int, stride: int = 1,
           conv_impl: str = "xla") -> jax.Array:
    """Cross-correlation of NHWC x with an OIHW kernel (zero padding `pad` on every side).

    Args:
      x: [N, H, W, I].
      weight_oihw: [O, I, k, k].
      pad: zero padding on every side.
      stride: output stride.
      conv_impl: "xla" or "matmul" (see the module docstring).

    Returns:
      [N, (H + 2 pad - k) // stride + 1, (W + 2 pad - k) // stride + 1, O].
    """
    if check_conv_impl(conv_impl) == "xla":
        kernel = jnp.transpose(weight_oihw, (2, 3, 1, 0))
        return jax.lax.conv_general_dilated(x, kernel, (stride, stride), [(pad, pad)] * 2,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    o, i, k, _ = weight_oihw.shape
    if pad:
        x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    h = (x.shape[1] - k) // stride + 1
    w = (x.shape[2] - k) // stride + 1
    cols = [jax.lax.slice(x, (0, a, b, 0), (x.shape[0], a + (h - 1) * stride + 1,
                                            b + (w - 1) * stride + 1, i), (1, stride, stride, 1))
            for a in range(k) for b in range(k)]
    cols = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
    kernel = jnp.transpose(weight_oihw, (2, 3, 1, 0)).reshape(k * k * i, o)
    return cols @ kernel


def _polyphase_kernel(weight: jax.Array) -> jax.Array:
    """[O,I,3,3] -> [4O,I,2,2]: the four output phases of a stride-2 transposed 3x3 conv.

    On the zero-inserted input only taps of matching parity touch data: even outputs use the
    flipped taps (0, 2), odd ones tap 1 alone (its other row/column is zero).
    """
    o, i = weight.shape[:2]
    flipped = weight[:, :, ::-1, ::-1]  # correlation form of the transposed conv
    taps = {0: (0, 2), 1: (None, 1)}
    zeros = jnp.zeros((o, i), weight.dtype)
    phases = []
    for a in (0, 1):
        for b in (0, 1):
            rows = [jnp.stack([zeros if ta is None or tb is None else flipped[:, :, ta, tb]
                               for tb in taps[b]], axis=-1)
                    for ta in taps[a]]
            phases.append(jnp.stack(rows, axis=-2))  # [O,I,2,2]
    return jnp.concatenate(phases, axis=0)  # phase-major


def transposed_conv3x3_stride2(x: jax.Array, weight: jax.Array,
                               conv_impl: str = "xla") -> jax.Array:
    """conv_transpose2d(x, W^T, stride=2, padding=0) as one 2x2 convolution over the 4 phases.

    x [N,H,W,I] NHWC, weight [O,I,3,3] -> [N,2H+1,2W+1,O]. The four phases run as a single 2x2
    convolution with 4*O outputs followed by a depth-to-space, which does a quarter of the work
    of a 3x3 convolution over the zero-inserted input.
    """
    o = weight.shape[0]
    y = conv2d(x, _polyphase_kernel(weight), pad=1, conv_impl=conv_impl)
    n, h1, w1, _ = y.shape  # h1 = H + 1
    y = y.reshape(n, h1, w1, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h1, 2 * w1, o)
    return y[:, :2 * h1 - 1, :2 * w1 - 1]
