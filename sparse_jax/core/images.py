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
              pad_value: int = 255, scale: int = 1) -> np.ndarray:
    """NCHW float images -> one [H', W', C] uint8 grid (C = 1 or 3), rows filled first.

    `pad` pixels of `pad_value` separate the tiles and frame the grid; missing tiles in the last
    row are left at `pad_value`; `scale` enlarges every tile by an integer factor (nearest).
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a whole number >= 1, got {scale!r}")
    x = to_uint8(images)
    if scale > 1:
        x = np.repeat(np.repeat(x, int(scale), axis=1), int(scale), axis=2)
    n, h, w, c = x.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = x[i]
    return grid


def label_grid(grid: np.ndarray, labels: list[str], tile: tuple[int, int], ncols: int,
               pad: int = 1, font_px: int = 12) -> np.ndarray:
    """Adds a caption band under every row of a `make_grid` grid: tile i gets labels[i].

    Args:
      grid: [H', W', C] uint8 from `make_grid` with the same `pad` and `ncols`.
      tile: (height, width) of one tile in the grid, scale included.
      font_px: caption height in pixels (at least 10, so the text reads at 100%).
    Returns:
      [H' + rows * band, W', C] uint8.
    """
    from PIL import Image, ImageDraw, ImageFont

    h, w = tile
    rows = -(-len(labels) // ncols)
    band = font_px + 4
    c = grid.shape[-1]
    out = np.full((grid.shape[0] + rows * band, grid.shape[1], c), 255, np.uint8)
    for r in range(rows):
        y_src, y_dst = r * (h + pad), r * (h + pad + band)
        out[y_dst:y_dst + h + pad] = grid[y_src:y_src + h + pad]
    img = Image.fromarray(out[..., 0] if c == 1 else out)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=font_px)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        font = ImageFont.load_default()
    for i, text in enumerate(labels):
        r, col = divmod(i, ncols)
        x0 = pad + col * (w + pad)
        y0 = r * (h + pad + band) + pad + h + 1
        draw.text((x0 + 1, y0), str(text), fill=0, font=font)
    arr = np.asarray(img)
    return arr[..., None] if c == 1 else arr


def png_bytes(grid: np.ndarray) -> bytes:
    """[H, W, C] uint8 -> PNG file bytes (Pillow; grayscale for C == 1)."""
    from PIL import Image

    arr = np.asarray(grid, np.uint8)
    arr = arr[..., 0] if arr.shape[-1] == 1 else arr
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
