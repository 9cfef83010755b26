"""Image grids as PNG (PIL only: deterministic bytes, no plotting backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .io import atomic_path


def to_uint8(images) -> np.ndarray:
    """[N,C,H,W] floats in [0,1] (numpy or torch) or uint8 -> uint8 [N,C,H,W]."""
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return arr


def image_grid(
    images,
    ncol: int,
    scale: int = 2,
    pad: int = 2,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    background: int = 255,
) -> Image.Image:
    """Tile images row-major into a grid, optionally with text labels."""
    arr = to_uint8(images)
    n, c, h, w = arr.shape
    nrow = -(-n // ncol)
    left = 8 + 7 * max((len(s) for s in row_labels), default=0) if row_labels else 0
    top = 14 if col_labels else 0
    th, tw = h * scale, w * scale
    canvas = Image.new("RGB", (left + ncol * (tw + pad) + pad, top + nrow * (th + pad) + pad), (background,) * 3)
    for i in range(n):
        tile = arr[i].transpose(1, 2, 0)
        tile = np.repeat(tile, 3, axis=2) if c == 1 else tile
        im = Image.fromarray(tile).resize((tw, th), Image.NEAREST)
        r, col = divmod(i, ncol)
        canvas.paste(im, (left + pad + col * (tw + pad), top + pad + r * (th + pad)))
    draw = ImageDraw.Draw(canvas)
    for r, text in enumerate(row_labels or []):
        draw.text((4, top + pad + r * (th + pad) + th // 2 - 5), text, fill=(0, 0, 0))
    for col, text in enumerate(col_labels or []):
        draw.text((left + pad + col * (tw + pad), 1), text, fill=(0, 0, 0))
    return canvas


def save_png(path: str | Path, image: Image.Image) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
