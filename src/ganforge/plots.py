"""Curve PNGs drawn with Pillow (loss.png, metrics.png), so the core needs no plotting library."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

from ganforge.images import save_png

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127)]  # matplotlib's tab10, whose colours people already read


Series = dict[str, list[tuple[float, float]]]


def plot_curves(series: Series, path: Path, x_label: str = "kimg", size: tuple[int, int] = (640, 360)) -> None:
    """One line per named series of (x, y) points on shared axes; non-finite points are left out."""
    save_png(draw_curves(series, x_label, size), path)


def plot_panels(panels: dict[str, Series], path: Path, x_label: str = "kimg", width: int = 640,
                panel_height: int = 200) -> None:
    """Panels stacked top to bottom, each titled, each with its own y axis (FID and accuracy share no scale)."""
    image = Image.new("RGB", (width, max(1, len(panels)) * panel_height), "white")
    for i, (title, series) in enumerate(panels.items()):
        panel = draw_curves(series, x_label, (width, panel_height))
        ImageDraw.Draw(panel).text((width - 8 * len(title) - 24, 4), title, fill=(0, 0, 0))
        image.paste(panel, (0, i * panel_height))
    save_png(image, path)


def draw_curves(series: Series, x_label: str = "kimg", size: tuple[int, int] = (640, 360)) -> Image.Image:
    """The image plot_curves saves."""
    width, height = size
    left, right, top, bottom = 60, 20, 20, 40
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = [(x, y) for pts in series.values() for x, y in pts if math.isfinite(y)]
    if not points:
        return image
    x_min, x_max = min(p[0] for p in points), max(p[0] for p in points)
    y_min, y_max = min(p[1] for p in points), max(p[1] for p in points)
    x_span, y_span = (x_max - x_min) or 1.0, (y_max - y_min) or 1.0

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_min) / x_span * (width - left - right),
                height - bottom - (y - y_min) / y_span * (height - top - bottom))

    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    for frac in (0.0, 0.5, 1.0):
        y_value = y_min + frac * y_span
        _, y_px = to_px(x_min, y_value)
        draw.text((4, y_px - 6), f"{y_value:.3g}", fill=(0, 0, 0))
        x_value = x_min + frac * x_span
        x_px, _ = to_px(x_value, y_min)
        draw.text((x_px - 10, height - bottom + 6), f"{x_value:.4g}", fill=(0, 0, 0))
    draw.text((width // 2 - 10, height - 16), x_label, fill=(0, 0, 0))
    for i, pts in enumerate(series.values()):
        colour = _COLOURS[i % len(_COLOURS)]
        line = [to_px(x, y) for x, y in pts if math.isfinite(y)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        elif line:
            draw.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=colour)
    names = list(series)
    widths = [draw.textlength(name) for name in names]
    positions = legend_positions(widths, left + 10, width - right)
    for i, (name, w, (x, y)) in enumerate(zip(names, widths, positions, strict=True)):
        # a white backing keeps a label readable where a curve passes under it (an ROC hugs the top left)
        draw.rectangle([x - 2, top + 3 + y, x + w + 2, top + 15 + y], fill="white")
        draw.text((x, top + 4 + y), name, fill=_COLOURS[i % len(_COLOURS)])
    return image


def legend_positions(widths: list[float], start: float, end: float, gap: float = 14, line: float = 12
                     ) -> list[tuple[float, float]]:
    """Where each legend label goes, left to right, wrapping to a new row rather than over its neighbour:
    names such as a detector's generator folders are longer than any fixed spacing."""
    positions, x, y = [], start, 0.0
    for w in widths:
        if x > start and x + w > end:
            x, y = start, y + line
        positions.append((x, y))
        x += w + gap
    return positions
