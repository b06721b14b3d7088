"""Turning generator outputs into viewable images (grids), without I/O."""
from __future__ import annotations

import io
import math

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
    """NCHW float images in nominal [-1, 1] -> NHWC uint8 (grayscale keeps one channel)."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"expected NCHW images, got shape {images.shape}")
    x = np.clip((images + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return np.transpose(x, (0, 2, 3, 1))


def make_grid(images: np.ndarray, ncols: int | None = None, pad: int = 1,
              pad_value: int = 255) -> np.ndarray:
    """NCHW float images -> one [H', W', C] uint8 grid (C = 1 or 3), rows filled first.

    `pad` pixels of `pad_value` separate the tiles and frame the grid; missing tiles in the last
    row are left at `pad_value`.
    """
    x = to_uint8(images)
    n, h, w, c = x.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = x[i]
    return grid


def png_bytes(grid: np.ndarray) -> bytes:
    """[H, W, C] uint8 -> PNG file bytes (Pillow; grayscale for C == 1)."""
    from PIL import Image

    arr = np.asarray(grid, np.uint8)
    arr = arr[..., 0] if arr.shape[-1] == 1 else arr
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
