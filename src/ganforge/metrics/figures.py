"""PIL drawings for metric reports (matplotlib is not a dependency): image rows and overlaid histograms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ganforge.images import save_png

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
LABEL_HEIGHT = 14
MIN_CELL = 64  # small images (MNIST's 28 px) are enlarged by an integer factor, nearest neighbour


def to_pil(image: torch.Tensor) -> Image.Image:
    """uint8 [C, H, W] (C = 1 or 3) -> an RGB PIL image."""
    pixels = image.cpu().numpy()
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0], "L").convert("RGB")
    return Image.fromarray(pixels.transpose(1, 2, 0), "RGB")


def image_rows(rows: Sequence[Sequence[torch.Tensor]], labels: Sequence[Sequence[str]], path: Path,
               gap_after_first: int = 10) -> None:
    """A grid, one row per sequence of uint8 [C, H, W] images, a text label under each, written as PNG.

    The first column is set apart by `gap_after_first` pixels (the sample against its neighbours).
    """
    _, h, w = rows[0][0].shape
    scale = max(1, math.ceil(MIN_CELL / min(h, w)))
    cell_w, cell_h = w * scale, h * scale + LABEL_HEIGHT
    columns = max(len(r) for r in rows)
    width = columns * (cell_w + 2) + gap_after_first
    canvas = Image.new("RGB", (width, len(rows) * (cell_h + 4)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for r, (images, texts) in enumerate(zip(rows, labels, strict=True)):
        y = r * (cell_h + 4)
        for c, (image, text) in enumerate(zip(images, texts, strict=True)):
            x = c * (cell_w + 2) + (gap_after_first if c > 0 else 0)
            canvas.paste(to_pil(image).resize((cell_w, h * scale), Image.Resampling.NEAREST), (x, y))
            draw.text((x + 2, y + h * scale + 1), text, fill=INK, font=font)
    save_png(canvas, path)


def overlaid_histograms(series: Sequence[tuple[str, np.ndarray, tuple[int, int, int]]], path: Path, *,
                        title: str, x_label: str, marker: tuple[str, float] | None = None, bins: int = 40,
                        size: tuple[int, int] = (720, 400)) -> None:
    """Density histograms of several 1-D samples on shared bins, drawn as outlined translucent bars."""
    width, height = size
    left, right, top, bottom = 50, 20, 40, 50
    values = np.concatenate([s for _, s, _ in series])
    hi = float(values.max()) if values.size and values.max() > 0 else 1.0
    edges = np.linspace(0.0, hi * 1.02, bins + 1)
    densities = [np.histogram(s, edges, density=True)[0] for _, s, _ in series]
    peak = max(float(d.max()) for d in densities) or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(v: float) -> float:
        return left + plot_w * v / edges[-1]

    canvas = Image.new("RGBA", size, (*BACKGROUND, 255))
    for (_, _, colour), density in zip(series, densities, strict=True):
        layer = Image.new("RGBA", size, (0, 0, 0, 0))  # one layer per series, so overlapping bars blend
        layer_draw = ImageDraw.Draw(layer)
        for i, d in enumerate(density):
            if d > 0:
                y = top + plot_h * (1 - d / peak)
                layer_draw.rectangle([x_of(edges[i]), y, x_of(edges[i + 1]), top + plot_h], fill=(*colour, 90),
                                     outline=(*colour, 255))
        canvas.alpha_composite(layer)
    canvas = canvas.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.line([left, top + plot_h, left + plot_w, top + plot_h], fill=INK)
    draw.line([left, top, left, top + plot_h], fill=INK)
    for t in np.linspace(0, edges[-1], 6):
        draw.line([x_of(t), top + plot_h, x_of(t), top + plot_h + 4], fill=INK)
        draw.text((x_of(t) - 10, top + plot_h + 6), f"{t:.3g}", fill=INK, font=font)
    draw.text((left + plot_w // 2 - 60, height - 18), x_label, fill=INK, font=font)
    draw.text((left, 8), title, fill=INK, font=font)
    for i, (name, _, colour) in enumerate(series):
        y = top + 6 + 14 * i
        draw.rectangle([left + plot_w - 190, y, left + plot_w - 180, y + 10], fill=colour)
        draw.text((left + plot_w - 175, y - 1), name, fill=INK, font=font)
    if marker is not None:
        label, v = marker
        draw.line([x_of(v), top, x_of(v), top + plot_h], fill=(200, 0, 0), width=2)
        draw.text((x_of(v) + 3, top + plot_h - 14), label, fill=(200, 0, 0), font=font)
    save_png(canvas, path)
