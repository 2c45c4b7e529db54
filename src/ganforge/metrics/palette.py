"""A colour palette descriptor: how much of an image is in each coarse colour, as a vector whose Euclidean distances
are Hellinger distances between the palettes.

Random convolutional features (random_conv.py) weigh shapes more than colours: a generator drawing faces in two
hair colours kept 0.9-1.0 of the real faces' diversity in them (BENCHMARKS.md, "Mode collapse seen as it
happens"). The palette sees only colour: each image is averaged down to 16x16 (so texture and noise do not count),
each channel quantised to 4 levels, and the 64 joint colours counted. The square root of the normalised counts
puts two images at a distance of 0 when their palettes match and sqrt(2) when they share no colour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIDE = 16  # images are averaged down to SIDE x SIDE before counting
LEVELS = 4  # levels per channel: 64 colours


def palette_features(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 [B, LEVELS**3]: sqrt of each image's share of pixels in each coarse colour."""
    if images_uint8.dim() != 4 or images_uint8.shape[1] != 3:
        raise ValueError(f"palette_features takes RGB images [B, 3, H, W], got {list(images_uint8.shape)}")
    pooled = F.adaptive_avg_pool2d(images_uint8.float(), SIDE)
    levels = (pooled * (LEVELS / 256)).long().clamp_(0, LEVELS - 1)
    colours = ((levels[:, 0] * LEVELS + levels[:, 1]) * LEVELS + levels[:, 2]).flatten(1)  # [B, SIDE*SIDE]
    counts = torch.zeros(len(images_uint8), LEVELS**3, device=images_uint8.device)
    counts.scatter_add_(1, colours, torch.ones_like(colours, dtype=counts.dtype))
    return (counts / colours.shape[1]).sqrt()
