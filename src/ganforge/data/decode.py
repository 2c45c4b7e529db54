"""The image doctor: encoded bytes -> one normalised uint8 array [C, H, W], or a short reason to skip them.

Everything a real photo folder throws at a loader ends here: truncated files, text renamed .jpg, CMYK, alpha,
palettes, 16-bit greys, EXIF rotation, decompression bombs, shapes whose resize would dwarf the image (1 x
80,000,000 px). Reasons are short stable strings because reports count them and users grep for them. Running out
of memory is not the file's fault: it is OutOfMemory, which batch readers skip like any reason and a server
answers as "busy" instead of "bad input".
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ganforge.data.bounded_resize import bounded_resize

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Leading bytes of JPEG, PNG, GIF, BMP and TIFF (both byte orders); WebP is checked apart (RIFF....WEBP).
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # rotated by 90 degrees: the stored width is the shown height
# Pillow's own bomb limit (1 GiB / 4 bytes / 3): larger images are skipped as decompression bombs.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# What Pillow's decoders raise on hostile or damaged input; each means the file, not our code, is at fault.
# MemoryError is not among them: it says how busy this process is, not what the file holds.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, IndexError, TypeError,
                  KeyError, AttributeError, AssertionError, NotImplementedError)


class SkipInput(Exception):
    """An input that is reported and left out; `reason` is a short stable string such as "not an image"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutOfMemory(SkipInput):
    """An input there was no memory to decode now: skipped by batch readers, "busy, retry" for a server."""

    def __init__(self) -> None:
        super().__init__("out of memory while decoding")


@contextmanager
def _memory_is_not_the_file() -> Iterator[None]:
    try:
        yield
    except MemoryError as exc:
        raise OutOfMemory() from exc


@dataclass(frozen=True)
class Target:
    """What every stored image becomes."""

    height: int
    width: int
    channels: int  # 1 (grey) or 3 (RGB)
    crop: str  # "center" (fill and crop), "pad" (fit and letterbox) or "none" (stretch)
    background: tuple[int, int, int]  # RGB that transparent pixels are composited on
    pad_color: tuple[int, int, int]  # RGB of the letterbox bars


@contextmanager
def pillow_limits(max_pixels: int) -> Iterator[None]:
    """Pillow's bomb limit set to `max_pixels` and its warning raised, so a bomb is an exception we catch.

    Truncated files must raise too, even if other code in the process told Pillow to pad them with grey.
    """
    old_pixels, old_truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = max_pixels, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = old_pixels, old_truncated


def open_image(fp: BinaryIO, min_size: int = 0, draft: Target | None = None) -> Image.Image:
    """Decoded pixels with EXIF orientation applied; `draft` lets JPEG decode at a reduced scale."""
    with _memory_is_not_the_file():
        return _open_image(fp, min_size, draft)


def _open_image(fp: BinaryIO, min_size: int, draft: Target | None) -> Image.Image:
    try:
        img = Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SkipInput("decompression bomb") from exc
    except UnidentifiedImageError as exc:
        raise SkipInput("corrupt or truncated" if _has_image_signature(fp) else "not an image") from exc
    except _DECODE_ERRORS as exc:
        raise SkipInput("corrupt or truncated") from exc
    # Pillow only warns between its limit and twice it, and pillow_limits' "warnings are errors" is undone for every
    # thread when another thread leaves it (serve decodes in parallel): so the limit is checked here too.
    if Image.MAX_IMAGE_PIXELS and img.width * img.height > Image.MAX_IMAGE_PIXELS:
        raise SkipInput("decompression bomb")
    if min(img.size) < min_size:
        raise SkipInput("too small")
    try:
        if draft is not None and img.format == "JPEG":
            _draft(img, draft)
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SkipInput("decompression bomb") from exc
    except _DECODE_ERRORS as exc:
        raise SkipInput("corrupt or truncated") from exc
    try:
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy for the common unrotated image
    except _DECODE_ERRORS:
        pass  # a damaged EXIF block: the pixels are fine, so keep them unrotated
    return img


def _has_image_signature(fp: BinaryIO) -> bool:
    """Whether the first bytes claim an image format, so a file Pillow rejects is damaged, not foreign."""
    try:
        fp.seek(0)
        head = fp.read(12)
    except (OSError, ValueError):
        return False
    webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    return webp or head.startswith(_SIGNATURES)


def _draft(img: Image.Image, target: Target) -> None:
    # JPEG can decode at 1/2, 1/4 or 1/8 scale almost for free; draft keeps both sides >= the requested size.
    # Asking for twice the target leaves the last 2x or more of the reduction to Lanczos, so the stored pixels
    # are anti-aliased as if the whole image had been resized with Lanczos (StyleGAN2-ADA's dataset_tool).
    size = (2 * target.width, 2 * target.height)
    if img.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED_ORIENTATIONS:
        size = size[::-1]
    img.draft("L" if target.channels == 1 else None, size)


def decode(fp: BinaryIO, target: Target, min_size: int = 0) -> np.ndarray:
    """Bytes -> uint8 [C, H, W] as `target` says; raises SkipInput with the reason otherwise."""
    return to_array(open_image(fp, min_size, target), target)


def to_array(img: Image.Image, target: Target) -> np.ndarray:
    """A loaded image -> uint8 [C, H, W]: 8-bit, alpha flattened, channel count and size as `target` says."""
    with _memory_is_not_the_file():
        try:
            img = _to_8bit(img, target.background)
            img = img.convert("L" if target.channels == 1 else "RGB")
        except _DECODE_ERRORS as exc:  # a mode Pillow cannot convert (e.g. an exotic TIFF)
            raise SkipInput("unsupported colour mode") from exc
        img = _fit(img, target)
        pixels = np.asarray(img)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def from_pixels(pixels: np.ndarray) -> Image.Image:
    """uint8 [H, W, C] with C in (1, 3, 4) -> a Pillow image, for array sources that need resizing."""
    if pixels.shape[2] == 1:
        return Image.fromarray(pixels[..., 0], "L")
    return Image.fromarray(pixels, "RGB" if pixels.shape[2] == 3 else "RGBA")


def is_grey(fp: BinaryIO) -> bool | None:
    """Whether the header says greyscale (None when unreadable); cheap: pixels are not decoded."""
    try:
        img = Image.open(fp)
        if img.mode == "P":
            palette = np.asarray(img.getpalette() or [0, 0, 1]).reshape(-1, 3)
            return bool((palette == palette[:, :1]).all())
        return img.mode in _GREY_MODES
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, MemoryError, *_DECODE_ERRORS):
        return None


def _to_8bit(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB" with 8 bits per channel."""
    if img.mode.startswith("I") or img.mode == "F":
        return _scale_to_8bit(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")  # also expands palette and tRNS transparency
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if img.mode in ("L", "RGB"):
        return img
    return img.convert("L" if img.mode == "1" else "RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, P


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float greys -> 8-bit by scaling the range, never by clipping."""
    values = np.asarray(img)
    if img.mode == "F":
        finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        # Float images come as [0, 1] or as 8-bit values; anything else is clipped into 8 bits.
        scaled = finite * 255 if finite.min(initial=0) >= 0 and finite.max(initial=0) <= 1 else finite
        return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
    wide = values.astype(np.int64)
    low, high = int(wide.min(initial=0)), int(wide.max(initial=0))
    if low >= 0 and high <= 65535:
        low, high = 0, 65535  # a 16-bit grey (PNG, TIFF): full scale is 65535 whatever the content
    span = max(high - low, 1)
    return Image.fromarray((((wide - low) * 255 + span // 2) // span).astype(np.uint8), "L")


def _fit(img: Image.Image, target: Target) -> Image.Image:
    size = (target.width, target.height)
    if img.size == size:
        return img
    width, height = img.size
    if target.crop == "none":
        return bounded_resize(img, size, Image.Resampling.LANCZOS)
    if target.crop == "center":
        # Crop the largest centred box of the target's aspect ratio, then resize it: one Lanczos pass.
        scale = min(width / target.width, height / target.height)
        box_w, box_h = target.width * scale, target.height * scale
        left, top = (width - box_w) / 2, (height - box_h) / 2
        return bounded_resize(img, size, Image.Resampling.LANCZOS, (left, top, left + box_w, top + box_h))
    # pad: the whole image, scaled to fit, centred on bars of pad_color.
    scale = min(target.width / width, target.height / height)
    inner = (max(1, min(target.width, round(width * scale))),
             max(1, min(target.height, round(height * scale))))
    fill = Image.new("RGB", (1, 1), target.pad_color).convert(img.mode).getpixel((0, 0))
    canvas = Image.new(img.mode, size, fill)
    canvas.paste(bounded_resize(img, inner, Image.Resampling.LANCZOS),
                 ((target.width - inner[0]) // 2, (target.height - inner[1]) // 2))
    return canvas
