"""Test data: small slices of the real datasets in ../shared/data, written as stores, and tiny stores made here.

Where ../shared/data is missing (a fresh clone without it), MNIST slices come from the 10,000 digits the package
embeds; tests that need other data skip with a reason. CI has it all.
GANFORGE_TEST_DATA points at another copy of that folder.
"""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from ganforge.data.prepare import PrepareOptions, prepare
from ganforge.data.store import Manifest, Store, content_fingerprint, write_store

SHARED_DATA = Path(os.environ.get("GANFORGE_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def shared_file(path: Path) -> Path:
    """`path` when it exists, else skip the test: the real data slices live in ../shared/data."""
    if not path.exists():
        pytest.skip(f"{path} is missing; this test needs the real data in ../shared/data (or set GANFORGE_TEST_DATA)")
    return path


def read_idx(path: Path, count: int, start: int = 0) -> np.ndarray:
    """Items start..start+count of a gzip IDX file (images [N, H, W] or labels [N]), reading only those rows."""
    with gzip.open(shared_file(path), "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        shape = [int.from_bytes(f.read(4), "big") for _ in range(magic & 0xFF)]
        assert magic >> 8 == 0x08 and start + count <= shape[0], f"{path}: not a uint8 IDX file with {count} items"
        item = int(np.prod(shape[1:], dtype=np.int64))
        f.read(start * item)
        return np.frombuffer(f.read(count * item), np.uint8).reshape(count, *shape[1:]).copy()


@cache
def idx_images(dataset: str, split: str, start: int, stop: int) -> np.ndarray:
    """uint8 [stop - start, 1, 28, 28] from MNIST or Fashion-MNIST (split "train" or "t10k"); MNIST from the
    package's embedded digits where ../shared/data is missing (see `embedded_rows`)."""
    path = SHARED_DATA / dataset / f"{split}-images-idx3-ubyte.gz"
    if not path.exists() and dataset == "mnist":
        return np.ascontiguousarray(embedded_rows(split, start, stop).images)
    return read_idx(path, stop - start, start)[:, None]


@cache
def idx_labels(dataset: str, split: str, start: int, stop: int) -> np.ndarray:
    path = SHARED_DATA / dataset / f"{split}-labels-idx1-ubyte.gz"
    if not path.exists() and dataset == "mnist":
        return np.asarray(embedded_rows(split, start, stop).labels, dtype=np.int64)
    return read_idx(path, stop - start, start).astype(np.int64)


EMBEDDED_TRAIN = 8000  # the embedded digits' first 8,000 stand in for MNIST's train split, the last 2,000 for t10k


class EmbeddedRows:
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels


def embedded_rows(split: str, start: int, stop: int) -> EmbeddedRows:
    """MNIST rows from the 10,000 labelled digits the package embeds, for a clone without ../shared/data: the
    train split's first 8,000 and t10k's first 2,000 (disjoint); a larger slice skips as the real data would."""
    from ganforge.data.embedded import embedded_store_path

    offset, size = (0, EMBEDDED_TRAIN) if split == "train" else (EMBEDDED_TRAIN, 10_000 - EMBEDDED_TRAIN)
    if stop > size:
        pytest.skip(f"MNIST {split}[{start}:{stop}] is beyond the embedded digits' {size} for that split; this test "
                    "needs the real data in ../shared/data (or set GANFORGE_TEST_DATA)")
    store = Store(embedded_store_path())
    rows = slice(offset + start, offset + stop)
    return EmbeddedRows(np.asarray(store.images[rows]), np.asarray(store.labels[rows]))


def make_store(path: Path, images: np.ndarray, labels: np.ndarray | None = None,
               label_names: list[str] | None = None, source: str | None = None) -> Store:
    labels = np.zeros(len(images), np.int64) if labels is None else labels.astype(np.int64)
    n, c, h, w = images.shape
    manifest = Manifest(count=n, channels=c, height=h, width=w, label_names=label_names or [],
                        fingerprint=content_fingerprint(images, labels), source=source or str(path), skipped=[])
    write_store(path, images, labels, manifest)
    return Store(path)


def slice_store(path: Path, dataset: str, split: str, start: int, stop: int, with_labels: bool = False) -> Store:
    """Images start..stop of a real IDX dataset as a store, with its digit labels when `with_labels`."""
    labels = idx_labels(dataset, split, start, stop) if with_labels else None
    names = [str(i) for i in range(10)] if with_labels else None
    return make_store(path, idx_images(dataset, split, start, stop), labels, names,
                      source=f"{dataset} {split}[{start}:{stop}]")


def mnist_store(path: Path, count: int, dataset: str = "mnist", split: str = "train") -> Path:
    """The first `count` labelled digits (or Fashion-MNIST items) as a store file."""
    return slice_store(path, dataset, split, 0, count, with_labels=True).path


def digits16_store(root: Path, count: int = 256, with_labels: bool = False) -> Path:
    """16 px images from real MNIST digits (padded to 32, box-downsampled): small enough for multi-process and
    accumulation runs of a few seconds. With `with_labels`, the digits' labels and the classes "0".."9"."""
    images = np.pad(idx_images("mnist", "train", 0, count), ((0, 0), (0, 0), (2, 2), (2, 2)))
    images = images.reshape(count, 1, 16, 2, 16, 2).mean((3, 5)).round().astype(np.uint8)
    if not with_labels:
        return make_store(root / "d16.gfs", images).path
    labels = idx_labels("mnist", "train", 0, count)
    return make_store(root / "d16.gfs", images, labels, [str(i) for i in range(10)]).path


ANIME = SHARED_DATA / "anime-faces" / "anime_faces_20k_64_jpg.tar.gz"


def anime_store(root: Path, count: int, resolution: int) -> Path:
    """The first `count` anime faces (64 px colour photos) prepared at `resolution`; skips without the real data."""
    with tarfile.open(shared_file(ANIME)) as tar:
        taken = 0
        for member in tar:  # stops reading the archive once it has them
            if member.name.endswith(".jpg"):
                tar.extract(member, root / "photos", filter="data")
                taken += 1
                if taken == count:
                    break
    out = root / f"anime{resolution}.gfs"
    prepare(root / "photos", out, PrepareOptions(resolution=(resolution, resolution)), progress=False)
    return out


def digits64_store(root: Path, count: int = 256, channels: int = 1) -> Path:
    """64 px images from real MNIST digits (padded to 32, nearest-upsampled 2x), for families that start at 64 px;
    `channels` 3 repeats the grey image as RGB."""
    images = np.pad(idx_images("mnist", "train", 0, count), ((0, 0), (0, 0), (2, 2), (2, 2)))
    images = np.repeat(images.repeat(2, axis=2).repeat(2, axis=3), channels, axis=1)
    return make_store(root / f"d64x{channels}.gfs", np.ascontiguousarray(images)).path


def make_pair_store(path: Path, inputs: np.ndarray, targets: np.ndarray, pairing: str = "paired",
                    val_count: int = 0, val_count_b: int | None = None) -> Store:
    """A two-sided store: `inputs` (A) and `targets` (B), aligned row by row ("paired") or not ("unpaired")."""
    labels = np.zeros(len(inputs), np.int64)
    n, c, h, w = inputs.shape
    n_b, c_b, h_b, w_b = targets.shape
    manifest = Manifest(count=n, channels=c, height=h, width=w, label_names=[], skipped=[], source=str(path),
                        fingerprint=content_fingerprint(inputs, labels, targets), pairing=pairing, count_b=n_b,
                        channels_b=c_b, height_b=h_b, width_b=w_b, val_count=val_count,
                        val_count_b=val_count if val_count_b is None else val_count_b)
    write_store(path, inputs, labels, manifest, targets)
    return Store(path)


def digit_pairs_store(root: Path, count: int = 64, side: int = 16, val_count: int = 4) -> Path:
    """Real MNIST digits at `side` px (grey, A) paired with the same digits inverted in RGB (B): a translation
    any working pix2pix learns, small enough to train for a few steps on a CPU."""
    digits = np.pad(idx_images("mnist", "train", 0, count), ((0, 0), (0, 0), (2, 2), (2, 2)))  # 32 px
    factor = 32 // side
    digits = digits.reshape(count, 1, side, factor, side, factor).mean((3, 5)).round().astype(np.uint8)
    inverted = np.repeat(255 - digits, 3, axis=1)
    return make_pair_store(root / f"digit-pairs{side}.gfs", digits, np.ascontiguousarray(inverted),
                           val_count=val_count).path


def digits_fashion_store(root: Path, count_a: int = 64, count_b: int = 48) -> Path:
    """Two real unpaired domains at 16 px: MNIST digits (A) and Fashion-MNIST items (B), a few held out."""
    def small(dataset: str, count: int) -> np.ndarray:
        images = np.pad(idx_images(dataset, "train", 0, count), ((0, 0), (0, 0), (2, 2), (2, 2)))
        return images.reshape(count, 1, 16, 2, 16, 2).mean((3, 5)).round().astype(np.uint8)

    return make_pair_store(root / "digits2fashion.gfs", small("mnist", count_a), small("fashion-mnist", count_b),
                           "unpaired", val_count=4, val_count_b=3).path


def digits_sr_store(root: Path, count: int = 64, val_count: int = 4) -> Path:
    """x4 super-resolution pairs from real MNIST digits: 8 px box-downsampled inputs (A), 32 px digits (B)."""
    targets = np.pad(idx_images("mnist", "train", 0, count), ((0, 0), (0, 0), (2, 2), (2, 2)))
    inputs = targets.reshape(count, 1, 8, 4, 8, 4).mean((3, 5)).round().astype(np.uint8)
    return make_pair_store(root / "digits-sr.gfs", inputs, np.ascontiguousarray(targets), val_count=val_count).path
