"""`ganforge prepare SRC --out STORE`: a source -> decoded, normalised images -> one store, plus a report.

Every input that cannot be used is skipped with a reason; the store's manifest lists them all and the report
counts them. Pixels are decoded straight into one preallocated array (a temp file beside the output when it
would not fit comfortably in RAM), so a big dataset is never held twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ganforge.data.arrays import ArraySource
from ganforge.data.decode import (
    DEFAULT_MAX_PIXELS,
    SkipInput,
    Target,
    decode,
    from_pixels,
    is_grey,
    open_image,
    pillow_limits,
    to_array,
)
from ganforge.data.destination import check_destination
from ganforge.data.sources import FileSource, open_source
from ganforge.data.store import Manifest, content_fingerprint, write_store
from ganforge.data.store_layout import MAX_SIDE
from ganforge.errors import ConfigError, DataError
from ganforge.images import MAX_IMAGE_PIXELS
from ganforge.progress import progress as progress_of
from ganforge.terminal_text import terminal_safe

CROP_MODES = ("center", "pad", "none")
LABEL_MODES = ("folders", "none")
_CHANNEL_PEEKS = 100  # inputs whose headers decide channels=None
_SPILL_MAX_BYTES = 2 << 30  # decode into a temp file above this (or above a quarter of free RAM)


@dataclass(frozen=True)
class PrepareOptions:
    """How `prepare` turns a source into a store; recorded in the manifest and in the source fingerprint."""

    resolution: tuple[int, int] | None = None  # (height, width); None = the first usable image's size
    crop: str = "center"  # other aspect ratios: "center" fills and crops, "pad" letterboxes, "none" stretches
    channels: int | None = None  # 1 or 3; None = 1 when the first ~100 inputs are all greyscale, else 3
    labels: str = "none"  # "folders" = one class per first-level subfolder; IDX/.npz labels are always kept
    min_size: int = 0  # skip images whose shorter side is below this many pixels (before resizing)
    background: tuple[int, int, int] = (255, 255, 255)  # RGB that transparent pixels are composited on
    pad_color: tuple[int, int, int] = (0, 0, 0)  # RGB of the bars that crop="pad" adds
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are skipped as decompression bombs

    def __post_init__(self) -> None:
        if self.resolution is not None:
            object.__setattr__(self, "resolution", tuple(self.resolution))  # JSON gives a list
            if len(self.resolution) != 2 or not all(isinstance(v, int) and v > 0 for v in self.resolution):
                raise ConfigError(f"resolution {self.resolution!r} must be (height, width) both > 0.")
            height, width = self.resolution
            if problem := size_problem(height, width):
                raise ConfigError(f"resolution (height {height}, width {width}) {problem}; choose a smaller one, "
                                  "e.g. (256, 256).")
        if self.crop not in CROP_MODES:
            raise ConfigError(f"crop {self.crop!r} is not one of {', '.join(CROP_MODES)}.")
        if self.channels not in (1, 3, None):
            raise ConfigError(f"channels {self.channels!r} must be 1 (grey), 3 (RGB) or None (auto).")
        if self.labels not in LABEL_MODES:
            raise ConfigError(f"labels {self.labels!r} is not one of {', '.join(LABEL_MODES)}.")
        if self.min_size < 0 or self.max_pixels <= 0:
            raise ConfigError("--min-size must be >= 0 (and the decompression-bomb limit max_pixels > 0).")
        for name in ("background", "pad_color"):
            color = tuple(getattr(self, name))
            object.__setattr__(self, name, color)
            if len(color) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in color):
                raise ConfigError(f"{name} {color!r} must be an RGB triple of integers in 0..255.")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def parse_resolution(text: str) -> tuple[int, int]:
    """"128" -> (128, 128); "64x32" is WIDTH x HEIGHT (as image viewers write it) -> (height 32, width 64)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+)\s*)?", text)
    if match is None or int(match[1]) == 0 or (match[2] is not None and int(match[2]) == 0):
        raise ConfigError(f"--resolution {text!r}: expected a size in pixels such as 128 (square) or 64x32 "
                          "(width x height).")
    width = int(match[1])
    height = width if match[2] is None else int(match[2])
    if problem := size_problem(height, width):
        raise ConfigError(f"--resolution {text.strip()!r} {problem}; pass a smaller size, e.g. --resolution 256.")
    return height, width


def size_problem(height: int, width: int) -> str | None:
    """Why a store of `height` x `width` images would be refused by its own reader (store_layout) or by training
    (MAX_IMAGE_PIXELS); None for a size both take. Checked before decoding, so nothing is written for a refusal."""
    if min(height, width) < 1:
        return "has an empty side"
    if max(height, width) > MAX_SIDE:
        return f"has a side above {MAX_SIDE:,} px, the most a store holds"
    if height * width > MAX_IMAGE_PIXELS:
        return f"is more than the {MAX_IMAGE_PIXELS:,} px per image (4096x4096) that ganforge trains on"
    return None


@dataclass(frozen=True)
class PrepareReport:
    """What `prepare` did, for the CLI to print."""

    kept: int  # images in the store
    total: int  # inputs considered: kept plus skipped
    skipped: dict[str, int]  # skip reason -> count, most frequent first
    shape: tuple[int, int, int]  # (channels, height, width) of every stored image
    classes: int  # number of label names; 0 = unlabelled
    out: Path
    seconds: float
    pairing: str = "none"  # a two-sided store's "paired" or "unpaired" (prepare_pairs.py)
    kept_b: int = 0  # images on the B side
    shape_b: tuple[int, int, int] = (0, 0, 0)
    val_count: int = 0  # held-out rows of A (and of B when paired)
    val_count_b: int = 0

    def summary(self) -> str:
        skips = ", ".join(f"{reason} {n}" for reason, n in self.skipped.items()) or "none"
        labels = f"{self.classes} classes" if self.classes else "none"
        c, h, w = self.shape
        if self.pairing == "none":
            return (f"kept {self.kept} of {self.total}; skipped: {skips}; "
                    f"store: {self.out} ({c} x {h} x {w}, labels: {labels}); {self.seconds:.1f} s"
                    + size_note(h, w))
        c_b, h_b, w_b = self.shape_b
        if self.pairing == "paired":
            kept, held = f"{self.kept} pairs", f"{self.val_count} pairs"
        else:
            kept, held = f"A {self.kept} and B {self.kept_b} images", f"A {self.val_count}, B {self.val_count_b}"
        return (f"kept {kept} of {self.total} inputs; skipped: {skips}; store: {self.out} ({self.pairing}, A {c} x "
                f"{h} x {w}, B {c_b} x {h_b} x {w_b}; held out for evaluation: {held}); {self.seconds:.1f} s")


@dataclass
class Decoded:
    images: np.ndarray  # uint8 [kept, C, H, W]; may be a view of a temp memmap
    labels: np.ndarray  # int64 [kept]
    label_names: list[str]
    skipped: list[dict[str, str]]
    total: int


def prepare(source: str | os.PathLike[str], out: str | os.PathLike[str],
            options: PrepareOptions | None = None, progress: bool = True, *,
            spill_bytes: int | None = None, force: bool = False) -> PrepareReport:
    """Read `source`, normalise every usable image, write the store `out` atomically and report.

    `out` may replace an existing store, and any other file only with `force`; it is never inside the source
    (destination.py), whatever `force` says.
    `spill_bytes`: decode into a temp file beside `out` when the pixels exceed this many bytes (default: a
    quarter of free RAM, at most 2 GiB).
    """
    start = time.perf_counter()
    options = options or PrepareOptions()
    src, out = Path(source), Path(out)
    check_destination(src, out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    if spill_bytes is None:
        spill_bytes = min(_SPILL_MAX_BYTES, free_ram_bytes() // 4)
    spill = Spill(out, spill_bytes)
    # The largest member worth reading: max_pixels of 16-bit RGBA, uncompressed, plus room for metadata.
    max_member_bytes = options.max_pixels * 8 + (16 << 20)
    try:
        with pillow_limits(options.max_pixels), open_source(src, max_member_bytes) as data:
            if isinstance(data, FileSource):
                decoded = decode_files(data, options, spill, progress)
            else:
                decoded = _convert_arrays(data, options, spill, progress)
            if len(decoded.images) == 0:
                raise DataError(_nothing_usable(src, decoded))
            manifest = _manifest(str(source), data.seen, decoded, options)
            write_store(out, decoded.images, decoded.labels, manifest)
    finally:
        spill.remove()
    counts = Counter(s["reason"] for s in decoded.skipped)
    return PrepareReport(len(decoded.images), decoded.total, dict(counts.most_common()), manifest.shape,
                         len(manifest.label_names), out, time.perf_counter() - start)


class Spill:
    """Allocates the decode buffer: RAM when small, a memmap'd temp file beside the store `out` when large.
    `remove()` deletes the temp files; the arrays stay readable until dropped (POSIX keeps unlinked maps)."""

    def __init__(self, out: Path, limit_bytes: int, side: str = "") -> None:
        self.out, self.limit_bytes, self.side = out, limit_bytes, side
        self.paths: list[Path] = []

    def allocate(self, shape: tuple[int, int, int, int]) -> np.ndarray:
        if int(np.prod(shape)) <= self.limit_bytes:
            return np.empty(shape, np.uint8)
        # A fresh random name created with O_EXCL (mode 0600): a file or link planted at a predictable name
        # beside --out is never written through.
        fd, name = tempfile.mkstemp(prefix=f".{self.out.name}.decode-{self.side}", dir=self.out.parent)
        self.paths.append(Path(name))
        with os.fdopen(fd, "r+b") as f:
            return np.memmap(f, np.uint8, "w+", shape=shape)  # the map outlives the closed file

    def remove(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)


def decode_files(data: FileSource, options: PrepareOptions, spill: Spill, progress: bool) -> Decoded:
    skipped = list(data.skipped)
    channels = options.channels or guess_channels(data, progress)
    target = None if options.resolution is None else target_of(options, options.resolution, channels)
    buffer: np.ndarray | None = None
    names: list[str | None] = []
    for entry in progress_of(data.entries, desc="decoding", enabled=progress):
        try:
            if options.labels == "folders" and entry.label is None:
                raise SkipInput("not in a class folder")
            with entry.open() as fp:
                if target is None:
                    img = open_image(fp, options.min_size)
                    check_first_size(img.width, img.height, entry.name)
                    target = target_of(options, (img.height, img.width), channels)
                    note(progress, f"resolution {img.width}x{img.height} (width x height) from "
                                    f"{terminal_safe(entry.name)}; pass a resolution to choose another")
                    pixels = to_array(img, target)
                else:
                    pixels = decode(fp, target, options.min_size)
        except SkipInput as skip:
            skipped.append({"path": entry.name, "reason": skip.reason})
            continue
        if buffer is None:
            buffer = spill.allocate((len(data.entries), target.channels, target.height, target.width))
        buffer[len(names)] = pixels
        names.append(entry.label)
    if buffer is None:
        c, (h, w) = channels, options.resolution or (0, 0)
        buffer = np.empty((0, c, h, w), np.uint8)
    labels, label_names = _folder_labels(names) if options.labels == "folders" else (_zeros(len(names)), [])
    return Decoded(buffer[: len(names)], labels, label_names, skipped, len(data.seen))


def check_first_size(width: int, height: int, name: str) -> None:
    """Without --resolution the store takes its first image's size; refuse one no run could train on, or that
    the store's reader refuses (a side of 0 or above MAX_SIDE), before a store of thousands of such images is
    written (a folder of 8000 x 6000 phone photos, say). `name`: the image, as the user should look for it."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ConfigError(f"{terminal_safe(name)} is {width}x{height} px and, without --resolution, sets the size of "
                          f"every image in the store; ganforge trains on at most {MAX_IMAGE_PIXELS:,} px per image "
                          "(4096x4096): pass --resolution, e.g. --resolution 256")
    if problem := size_problem(height, width):
        raise ConfigError(f"{terminal_safe(name)} is {width}x{height} px and, without --resolution, sets the size of "
                          f"every image in the store, which then {problem}: pass --resolution, e.g. --resolution 256")


def guess_channels(data: FileSource, progress: bool) -> int:
    votes: list[bool] = []
    for entry in data.entries[: 10 * _CHANNEL_PEEKS]:  # bounded even when most inputs are broken
        if len(votes) == _CHANNEL_PEEKS:
            break
        try:
            with entry.open() as fp:
                grey = is_grey(fp)
        except SkipInput:
            continue
        if grey is not None:
            votes.append(grey)
    channels = 1 if votes and all(votes) else 3
    if not votes:
        note(progress, "channels 3 (none of the first inputs could be read: the decoding reports each one; pass "
                       "--channels 1 for greyscale images)")
    elif channels == 1:
        note(progress, f"channels 1 (all of the first {len(votes)} readable inputs are greyscale)")
    else:
        colour = len(votes) - sum(votes)
        note(progress, f"channels 3 ({colour} of the first {len(votes)} readable inputs are in colour)")
    return channels


def _convert_arrays(data: ArraySource, options: PrepareOptions, spill: Spill, progress: bool) -> Decoded:
    n, h, w, c = data.images.shape
    if options.resolution is None:
        check_first_size(w, h, data.name)
    channels = options.channels or (1 if c == 1 else 3)
    height, width = options.resolution or (h, w)
    labels, label_names = (_zeros(n), []) if data.labels is None else _array_labels(data.labels)
    if min(h, w) < options.min_size:
        too_small = [{"path": f"{data.name}[{i}]", "reason": "too small"} for i in range(n)]
        nothing = np.empty((0, channels, height, width), np.uint8)
        return Decoded(nothing, _zeros(0), label_names, too_small, n)
    as_is = (height, width) == (h, w) and (c, channels) in ((1, 1), (3, 3), (1, 3))
    if data.images.dtype == np.uint8 and as_is:
        # Already right: hand the store a view, so nothing is copied (broadcast repeats grey as RGB).
        images = np.broadcast_to(data.images.transpose(0, 3, 1, 2), (n, channels, h, w))
        return Decoded(images, labels, label_names, [], n)
    target = target_of(options, (height, width), channels)
    buffer = spill.allocate((n, channels, height, width))
    kept: list[int] = []
    skipped: list[dict[str, str]] = []
    for i in progress_of(range(n), desc="converting", enabled=progress):
        pixels = data.images[i]
        if pixels.dtype != np.uint8:
            if not np.isfinite(pixels).all():
                skipped.append({"path": f"{data.name}[{i}]", "reason": "non-finite pixels"})
                continue
            pixels = np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
        try:
            buffer[len(kept)] = to_array(from_pixels(pixels), target)
        except SkipInput as skip:
            skipped.append({"path": f"{data.name}[{i}]", "reason": skip.reason})
            continue
        kept.append(i)
    return Decoded(buffer[: len(kept)], labels[kept], label_names, skipped, n)


def target_of(options: PrepareOptions, size: tuple[int, int], channels: int) -> Target:
    return Target(size[0], size[1], channels, options.crop, options.background, options.pad_color)


def _folder_labels(names: list[str | None]) -> tuple[np.ndarray, list[str]]:
    label_names = sorted({n for n in names if n is not None})
    index = {name: i for i, name in enumerate(label_names)}
    return np.array([index[n] for n in names if n is not None], np.int64), label_names


def _array_labels(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """IDX/.npz label values -> class indices 0..K-1 and the values as the K names: sparse values such as IDs
    (0 and 1,000,000) make two classes, not a million."""
    distinct, indices = np.unique(values, return_inverse=True)
    return indices.reshape(-1).astype(np.int64), [str(v) for v in distinct.tolist()]


def _zeros(n: int) -> np.ndarray:
    return np.zeros(n, np.int64)


def _manifest(source: str, seen: list[tuple[str, int]], decoded: Decoded,
              options: PrepareOptions) -> Manifest:
    # Names and sizes, not contents: cheap enough to recompute on every run to notice a changed source.
    digest = hashlib.sha256(json.dumps([sorted(seen), options.to_dict()], ensure_ascii=False).encode())
    n, c, h, w = decoded.images.shape
    return Manifest(count=n, channels=c, height=h, width=w, label_names=decoded.label_names,
                    fingerprint=content_fingerprint(decoded.images, decoded.labels), source=source,
                    source_fingerprint=digest.hexdigest(), skipped=decoded.skipped, options=options.to_dict())


def _nothing_usable(src: Path, decoded: Decoded) -> str:
    if decoded.total == 0:
        return (f"{src} holds no images; pass a folder of images (jpg, png, webp, bmp, tif, gif), a .zip, "
                "an IDX file or an .npz.")
    counts = Counter(s["reason"] for s in decoded.skipped).most_common()
    reasons = ", ".join(f"{reason} {n}" for reason, n in counts)
    return (f"{src}: none of its {decoded.total} inputs is a usable image (skipped: {reasons}); "
            "fix or replace them, or check --min-size and --labels.")


def note(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(f"prepare: {message}", file=sys.stderr)


def free_ram_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def doubled_sizes(limit: int = 4096) -> list[int]:
    """The sides convolutional generators draw: a 4-7 px start doubled (4, 5, 6, 7, 8, 10, ..., 56, 64, ...)."""
    return sorted({start << k for start in range(4, 8) for k in range(12) if start << k <= limit})


def size_note(height: int, width: int) -> str:
    """A sentence for a size no convolutional model draws (only mlp flattens any size), naming the nearest that
    they do; "" for a usual size."""
    sizes = doubled_sizes()
    if height in sizes and width in sizes:
        return ""
    near = [min(sizes, key=lambda s: (abs(s - side), -s)) for side in (height, width)]
    shown = str(near[0]) if near[0] == near[1] else f"{near[1]}x{near[0]}"
    return (f". Note: the convolutional models (dcgan, fastgan, projected, progan, stylegan2, r3gan) draw sides made "
            f"by doubling 4-7 px, so only mlp trains on {width}x{height}; prepare again with --resolution {shown} "
            "for the others")
