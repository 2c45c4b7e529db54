"""The dataset store: one file of uint8 pixels, int64 labels and a JSON manifest.

The file is a plain safetensors file (tensors ``images`` [N, C, H, W] uint8 and ``labels`` [N] int64, the
manifest as JSON in the header's ``__metadata__``), so any safetensors reader can open it and nothing in it is
ever unpickled. A two-sided store for image-to-image translation adds ``targets`` [N_B, C_B, H_B, W_B] uint8,
the B side (``images`` is the A side); the manifest's ``pairing`` says whether row i of A and row i of B are a
pair ("paired") or the sides are independent ("unpaired"), and the last ``val_count`` rows are held out.
Pixels are stored channel-first so a batch goes from the store to the network without a transpose, and the
data section is 8-byte aligned so it can be memory-mapped when it does not fit in RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.store_layout import FORMAT_VERSION, read_layout, shape_problem
from ganforge.errors import DataError
from ganforge.whole_files import written_whole

STORE_SUFFIX = ".gfs"
_WRITE_CHUNK_BYTES = 64 << 20
# Hashing runs at ~0.7 GB/s on this project's 2-core CPU (0.36 s for the 246 MB anime store): 4 GB is ~6 s.
VERIFY_LIMIT_BYTES = 4 << 30


@dataclass(frozen=True)
class Manifest:
    """What a store holds and where it came from (recorded in the file and in every run's config)."""

    count: int
    channels: int
    height: int
    width: int
    label_names: list[str]
    fingerprint: str  # sha256 of shape, pixels and labels: the key of metric caches
    source: str = ""  # what `prepare` read, as the user named it
    source_fingerprint: str = ""  # sha256 of the source's file names and sizes plus the prepare options
    skipped: list[dict[str, str]] | None = None  # [{"path": ..., "reason": ...}] for every rejected input
    options: dict[str, Any] | None = None  # the prepare options that produced this store
    format_version: int = FORMAT_VERSION
    pairing: str = "none"  # "none": one image array; "paired" / "unpaired": a two-sided store (store_layout.py)
    count_b: int = 0  # the B side (``targets``) of a two-sided store; 0 otherwise
    channels_b: int = 0
    height_b: int = 0
    width_b: int = 0
    val_count: int = 0  # the last val_count rows of A are held out from training (for PSNR, SSIM, FID)
    val_count_b: int = 0  # likewise of B; equal to val_count in a paired store

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def shape_b(self) -> tuple[int, int, int]:
        return (self.channels_b, self.height_b, self.width_b)

    @property
    def two_sided(self) -> bool:
        return self.pairing != "none"

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """What a generator trained on this store makes: its images, or a two-sided store's targets (B)."""
        return self.shape_b if self.two_sided else self.shape

    def train_rows(self, side: str = "a") -> int:
        """Rows of a side that training draws from: all but the held-out last ones."""
        return self.count_b - self.val_count_b if side == "b" else self.count - self.val_count

    @property
    def has_labels(self) -> bool:
        return len(self.label_names) > 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)

    @staticmethod
    def from_json(text: str) -> Manifest:
        raw = json.loads(text)
        known = set(Manifest.__dataclass_fields__)
        return Manifest(**{k: v for k, v in raw.items() if k in known})


def content_fingerprint(images: np.ndarray, labels: np.ndarray, targets: np.ndarray | None = None) -> str:
    """sha256 over shape, pixels and labels (and a two-sided store's B side), read in chunks so a memory-mapped
    array is never copied whole. A one-sided store hashes as it always has."""
    digest = hashlib.sha256()
    _hash_pixels(digest, images)
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    if targets is not None:
        _hash_pixels(digest, targets)
    return digest.hexdigest()


def _hash_pixels(digest: Any, images: np.ndarray) -> None:
    digest.update(json.dumps(list(images.shape)).encode())
    for start in range(0, len(images), _rows_per_chunk(images)):
        digest.update(np.ascontiguousarray(images[start : start + _rows_per_chunk(images)]).tobytes())


def _rows_per_chunk(images: np.ndarray) -> int:
    row_bytes = max(1, int(np.prod(images.shape[1:])))
    return max(1, _WRITE_CHUNK_BYTES // row_bytes)


def write_store(path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray, manifest: Manifest,
                targets: np.ndarray | None = None) -> None:
    """Write atomically: a temp file beside the target, fsync, rename. A crash leaves the old file or none.
    `targets`: the B side of a two-sided store, written after the labels."""
    for name, array in (("images", images), ("targets", targets)):
        if array is not None and (array.dtype != np.uint8 or array.ndim != 4):
            raise ValueError(f"{name} must be uint8 [N, C, H, W], got {array.dtype} {array.shape}")
        # The callers check sizes up front, naming the flag or file; this catches a caller that forgot.
        if array is not None and (problem := shape_problem(*array.shape[1:])):
            raise ValueError(f"{name}: {problem}, which no store reader opens")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    path = Path(path)
    n, c, h, w = images.shape
    image_bytes = n * c * h * w
    header: dict[str, Any] = {
        "__metadata__": {"manifest": manifest.to_json()},
        "images": {"dtype": "U8", "shape": [n, c, h, w], "data_offsets": [0, image_bytes]},
        # Labels start on an 8-byte boundary so the int64 view is aligned.
        "labels": {"dtype": "I64", "shape": [n], "data_offsets": [_align8(image_bytes), _align8(image_bytes) + 8 * n]},
    }
    if image_bytes % 8:
        # safetensors forbids gaps between tensors, so pad the images with a hidden byte tensor.
        header["_pad"] = {"dtype": "U8", "shape": [_align8(image_bytes) - image_bytes],
                          "data_offsets": [image_bytes, _align8(image_bytes)]}
    labels_end = _align8(image_bytes) + 8 * n
    if targets is not None:
        header["targets"] = {"dtype": "U8", "shape": list(targets.shape),
                             "data_offsets": [labels_end, labels_end + targets.size]}
    header_bytes = json.dumps(header, ensure_ascii=False).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)
    with written_whole(path, durable=True) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for start in range(0, n, _rows_per_chunk(images)):
            f.write(np.ascontiguousarray(images[start : start + _rows_per_chunk(images)]).tobytes())
        f.write(b"\0" * (_align8(image_bytes) - image_bytes))
        f.write(np.ascontiguousarray(labels, dtype="<i8").tobytes())
        if targets is not None:
            for start in range(0, len(targets), _rows_per_chunk(targets)):
                f.write(np.ascontiguousarray(targets[start : start + _rows_per_chunk(targets)]).tobytes())

def _align8(n: int) -> int:
    return (n + 7) // 8 * 8


class Store:
    """A prepared dataset, opened read-only: pixels in RAM when they fit, memory-mapped otherwise."""

    def __init__(self, path: str | os.PathLike[str], *, in_memory: bool | None = None,
                 name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name.removesuffix(STORE_SUFFIX)  # short name for run folders
        self.manifest, images_offset, labels_offset, targets_offset = _read_header(self.path)
        m = self.manifest
        images = np.memmap(self.path, np.uint8, "r", images_offset, (m.count, m.channels, m.height, m.width))
        labels = np.memmap(self.path, "<i8", "r", labels_offset, (m.count,))
        targets = None if targets_offset is None else np.memmap(self.path, np.uint8, "r", targets_offset,
                                                                (m.count_b, *m.shape_b))
        pixel_bytes = images.nbytes + (0 if targets is None else targets.nbytes)
        if in_memory is None:
            in_memory = pixel_bytes < available_ram_bytes() // 2
        self.images: np.ndarray = np.array(images) if in_memory else images
        # The B side of a two-sided store (image-to-image translation); None for a one-sided store.
        self.targets: np.ndarray | None = targets if targets is None or not in_memory else np.array(targets)
        self.labels: np.ndarray = np.array(labels)
        self.in_memory = in_memory
        self._verified = False  # the pixels and labels were hashed against the manifest (verify_content)
        classes = max(1, len(m.label_names))
        if len(self.labels) and not (0 <= self.labels.min() and self.labels.max() < classes):
            raise DataError(f"{self.path}: labels must be class numbers 0-{classes - 1} (it names {classes} "
                            f"class(es)), found {self.labels.min()}-{self.labels.max()}; prepare it again.")

    def verify_content(self, limit_bytes: int | None = VERIFY_LIMIT_BYTES) -> bool:
        """DataError unless the pixels and labels still hash to the manifest's fingerprint: a store edited or
        damaged after `prepare` would otherwise train, and be scored, silently. False (not checked) for a store
        above `limit_bytes`, whose full read would delay every start; `ganforge doctor STORE` checks any size.
        A store checked once is not read again."""
        if self._verified:
            return True
        pixel_bytes = self.images.nbytes + (0 if self.targets is None else self.targets.nbytes)
        if limit_bytes is not None and pixel_bytes > limit_bytes:
            return False
        if content_fingerprint(self.images, self.labels, self.targets) != self.manifest.fingerprint:
            raise DataError(f"{self.path}: its pixels or labels changed after it was prepared (the content hash no "
                            "longer matches its fingerprint); prepare it again from the source.")
        self._verified = True
        return True

    def __len__(self) -> int:
        return self.manifest.count

    def side(self, name: str) -> np.ndarray:
        """The pixels of side "a" (``images``, every store's) or "b" (``targets``, a two-sided store's)."""
        if name == "b":
            if self.targets is None:
                raise DataError(f"{self.path} holds one set of images, not input/target pairs; prepare it with "
                                "`ganforge prepare --pairs ...`, `--unpaired` or `--make-pairs ...`.")
            return self.targets
        return self.images

    def uint8_batch(self, indices: np.ndarray, side: str = "a") -> torch.Tensor:
        """Pixels of the given rows of a side as a uint8 tensor [B, C, H, W] on the CPU."""
        pixels = self.side(side)
        if self.in_memory:
            return torch.from_numpy(pixels[indices])
        # Memory-mapped reads are fastest in file order; undo the sort afterwards.
        order = np.argsort(indices, kind="stable")
        rows = np.empty((len(indices), *pixels.shape[1:]), np.uint8)
        rows[order] = pixels[indices[order]]
        return torch.from_numpy(rows)

    def iter_uint8(self, batch_size: int, limit: int | None = None) -> Iterator[torch.Tensor]:
        """The first `limit` images (all by default) in order, in uint8 batches."""
        stop = len(self) if limit is None else min(limit, len(self))
        for start in range(0, stop, batch_size):
            yield torch.from_numpy(np.array(self.images[start : min(start + batch_size, stop)]))


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the range every generator's tanh produces."""
    return images_uint8.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest and clipping what the generator overshoots."""
    return images.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a regular file with a readable ganforge store header (a FIFO or device is never opened)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        _read_header(path)
    except DataError:
        return False
    return True


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """A store's manifest from its header alone (no pixels read): its counts, shapes and content fingerprint."""
    return _read_header(Path(path))[0]


def _read_header(path: Path) -> tuple[Manifest, int, int, int | None]:
    if not path.exists():
        raise DataError(f"{path}: no such store; create one with `ganforge prepare SOURCE --out {path}`.")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a store; run `ganforge prepare {path} --out data{STORE_SUFFIX}` "
                        "first and pass the store to --data.")
    layout = read_layout(path)
    known = set(Manifest.__dataclass_fields__)
    try:
        manifest = Manifest(**{k: v for k, v in layout.manifest.items() if k in known})
    except TypeError as exc:
        raise DataError(f"{path} is not a readable ganforge store ({exc}); prepare it again.") from exc
    return manifest, layout.images_offset, layout.labels_offset, layout.targets_offset


def available_ram_bytes() -> int:
    """RAM a new allocation can get: Linux's MemAvailable (free pages plus page cache it can drop), else the free
    pages alone, else a guess of 8 GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30
