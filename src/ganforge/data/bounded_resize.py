"""Resizing whose memory is bounded by the pixels it reads and the pixels it produces.

Pillow resamples one axis at a time: first a table of filter weights per axis (output side x kernel taps, as
doubles; the kernel is about 2 x support x scale taps wide, so Lanczos costs 48 bytes per input row), then a
horizontal pass into an intermediate of output width x input height. For a photo both are small beside the photo
itself. For a 1 x 80,000,000-pixel PNG (155 KB on disk) stretched to 64 x 64 they are 4 GB of weights and a
64 x 80,000,000 intermediate: a MemoryError, or gigabytes. Such an image is first reduced by whole factors (box
averages, never larger than the image) to within REDUCING_GAP times the output size, as Pillow's `reducing_gap`
does; an ordinary image resizes exactly as before.
"""

from __future__ import annotations

import math

from PIL import Image

# After the box reduction Lanczos still averages 8 to 16 input pixels per output pixel along a reduced axis; Pillow's
# documentation finds a gap of 3 already indistinguishable from a plain resize.
REDUCING_GAP = 8.0
_SUPPORT = {Image.Resampling.LANCZOS: 3.0, Image.Resampling.BICUBIC: 2.0, Image.Resampling.BILINEAR: 1.0,
            Image.Resampling.HAMMING: 1.0, Image.Resampling.BOX: 0.5, Image.Resampling.NEAREST: 0.0}

Box = tuple[float, float, float, float]


def bounded_resize(image: Image.Image, size: tuple[int, int], resample: Image.Resampling,
                   box: Box | None = None) -> Image.Image:
    """`image.resize(size, resample, box=box)`, reduced first when the resize itself would need more memory than
    the image it reads and the image it makes hold."""
    box = box or (0.0, 0.0, float(image.width), float(image.height))
    held = max(image.width * image.height, size[0] * size[1])
    gap = REDUCING_GAP if work_pixels(box, size, resample) > held else None
    return image.resize(size, resample, box=box, reducing_gap=gap)


def work_pixels(box: Box, size: tuple[int, int], resample: Image.Resampling) -> int:
    """What one plain resize of the `box` region to `size` allocates besides its input and output, in 4-byte
    pixels: the weight tables of both axes (doubles) and the horizontal pass's intermediate."""
    support = _SUPPORT.get(resample, 3.0)
    weights = 0
    for extent, side in ((box[2] - box[0], size[0]), (box[3] - box[1], size[1])):
        taps = 2 * math.ceil(support * max(extent / side, 1.0)) + 1
        weights += side * taps
    both_passes = size[0] != box[2] - box[0] and size[1] != box[3] - box[1]
    intermediate = size[0] * math.ceil(box[3] - box[1]) if both_passes else 0
    return 2 * weights + intermediate
