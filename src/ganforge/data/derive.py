"""Inputs derived from targets, so one folder of images becomes training pairs (`prepare --make-pairs`).

downscale4x: the bicubic 1/4-size image, the degradation SRGAN learns to undo (Ledig et al. 2017, Sec. 3).
grey: the ITU-R 601 luma Pillow's "L" conversion computes, for colourisation.
edges: black lines on white, as pix2pix's edges-to-photo inputs look (Isola et al. 2017 used HED; a Sobel
magnitude thresholded per image at its 90th percentile is a dependency-free stand-in).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from ganforge.data.pairing import SR_FACTOR
from ganforge.errors import ConfigError

_EDGE_PERCENTILE = 90  # the strongest 10 % of gradients become lines: about as dense as HED's maps


def derived_shape(kind: str, target_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The input's (C, H, W) for targets of `target_shape`; ConfigError when the targets cannot give it."""
    channels, height, width = target_shape
    if kind == "downscale4x":
        if height % SR_FACTOR or width % SR_FACTOR:
            raise ConfigError(f"--make-pairs downscale4x needs a size divisible by {SR_FACTOR}, got {width}x{height}; "
                              f"pass --resolution {SR_FACTOR * max(1, width // SR_FACTOR)}")
        return (channels, height // SR_FACTOR, width // SR_FACTOR)
    if kind == "grey" and channels != 3:
        raise ConfigError("--make-pairs grey needs colour targets, but these images are greyscale; drop --channels 1 "
                          "or choose another --make-pairs")
    return (1, height, width)


def derive_input(kind: str, target: np.ndarray) -> np.ndarray:
    """uint8 [C, H, W] target -> uint8 input of `derived_shape(kind, target.shape)`."""
    image = _to_pillow(target)
    if kind == "downscale4x":
        size = (image.width // SR_FACTOR, image.height // SR_FACTOR)
        return _to_array(image.resize(size, Image.Resampling.BICUBIC))
    grey = image.convert("L")
    if kind == "grey":
        return _to_array(grey)
    if kind == "edges":
        return _edges(grey)
    raise ValueError(f"unknown derived input {kind!r}")


def _edges(grey: Image.Image) -> np.ndarray:
    values = np.asarray(grey.filter(ImageFilter.GaussianBlur(1)), np.float32)
    padded = np.pad(values, 1, mode="edge")
    # Sobel: horizontal and vertical central differences, each smoothed across the other axis.
    gx = (padded[:-2, 2:] + 2 * padded[1:-1, 2:] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[1:-1, :-2]
                                                                      + padded[2:, :-2])
    gy = (padded[2:, :-2] + 2 * padded[2:, 1:-1] + padded[2:, 2:]) - (padded[:-2, :-2] + 2 * padded[:-2, 1:-1]
                                                                      + padded[:-2, 2:])
    magnitude = np.hypot(gx, gy)
    threshold = max(float(np.percentile(magnitude, _EDGE_PERCENTILE)), 1e-6)  # a flat image has no lines
    return np.where(magnitude > threshold, 0, 255).astype(np.uint8)[None]


def _to_pillow(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(pixels[0], "L") if pixels.shape[0] == 1 else Image.fromarray(pixels.transpose(1, 2, 0),
                                                                                        "RGB")


def _to_array(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
