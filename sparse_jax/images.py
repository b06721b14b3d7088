"""Turning generator outputs into viewable images (grids), without I/O."""
from __future__ import annotations

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
    """[H, W, C] uint8 -> PNG file bytes (matplotlib's writer; gray for C == 1)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    buf = io.BytesIO()
    arr = grid[..., 0] if grid.shape[-1] == 1 else grid
    mpimg.imsave(buf, arr, format="png", cmap="gray" if arr.ndim == 2 else None,
                 vmin=0, vmax=255)
    return buf.getvalue()
