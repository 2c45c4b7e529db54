"""Image grids and PNG files with text metadata (seed, psi, run), shared by training and the tools."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from ganforge.whole_files import written_whole

# The most pixels per image a store, run or export may hold: 4096 x 4096, the largest SRGAN target of a 1024 px
# input (every other family stops at 1024). A fully convolutional G has the same weights at any size, so only this
# stops a config.json saying 16384 x 16384 from being taken at its word and running out of memory, and a folder
# whose first photo is 8000 x 6000 from becoming a store of that size.
MAX_IMAGE_PIXELS = 4096 * 4096


def grid_shape(count: int, columns: int | None = None) -> tuple[int, int]:
    """(rows, columns) of the most square grid that holds `count` images."""
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def make_grid(images_uint8: torch.Tensor, columns: int | None = None, padding: int = 2) -> Image.Image:
    """uint8 [N, C, H, W] -> one PIL image, row-major, with `padding` px of black between cells."""
    n, c, h, w = images_uint8.shape
    rows, cols = grid_shape(n, columns)
    canvas = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, c), np.uint8)
    pixels = images_uint8.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        canvas[top : top + h, left : left + w] = pixels[i]
    return to_pil(canvas)


def to_pil(hwc_uint8: np.ndarray) -> Image.Image:
    return Image.fromarray(hwc_uint8[:, :, 0] if hwc_uint8.shape[2] == 1 else hwc_uint8)


# The tEXt chunk every PNG ganforge writes carries: an output flag may replace a PNG that has it (an earlier
# run of the same command), never one that does not (a user's image). See runs/output_guard.py.
MARK_KEY, MARK_VALUE = "Software", "ganforge"


def save_png(image: Image.Image, path: Path, text: dict[str, str] | None = None) -> None:
    """Save a PNG, embedding `text` as tEXt chunks (readable with `Image.open(path).text`) beside ganforge's mark;
    written whole or not at all."""
    info = PngImagePlugin.PngInfo()
    for key, value in {MARK_KEY: MARK_VALUE, **(text or {})}.items():
        info.add_text(key, value)
    with written_whole(path) as temporary:
        image.save(temporary, pnginfo=info)


def enlarge_small(grid: Image.Image, min_width: int = 512) -> Image.Image:
    """A grid narrower than `min_width` scaled up by a whole factor without smoothing: 64 digits of 28 px make a
    240 px grid, too small to judge on a screen."""
    if grid.width >= min_width:
        return grid
    factor = -(-min_width // grid.width)
    return grid.resize((grid.width * factor, grid.height * factor), Image.Resampling.NEAREST)
