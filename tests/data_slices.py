"""Small slices of the real datasets in ../shared/data, written as stores for tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ganforge.data.store import Manifest, content_fingerprint, write_store

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def read_idx(path: Path, count: int) -> np.ndarray:
    """The first `count` items of a gzip IDX file (images [N, H, W] or labels [N])."""
    with gzip.open(path, "rb") as f:
        header = f.read(4)
        ndim = header[3]
        shape = [int.from_bytes(f.read(4), "big") for _ in range(ndim)]
        shape[0] = min(count, shape[0])
        return np.frombuffer(f.read(int(np.prod(shape))), np.uint8).reshape(shape)


def mnist_store(path: Path, count: int, dataset: str = "mnist", split: str = "train") -> Path:
    folder = SHARED_DATA / dataset
    images = read_idx(folder / f"{split}-images-idx3-ubyte.gz", count)[:, None]
    labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz", count).astype(np.int64)
    manifest = Manifest(len(images), 1, 28, 28, [str(i) for i in range(10)], content_fingerprint(images, labels),
                        source=f"{dataset} {split}[:{count}]", skipped=[])
    write_store(path, images, labels, manifest)
    return path


def digits16_store(root: Path, count: int = 256) -> Path:
    """16 px images from real MNIST digits (padded to 32, box-downsampled), labels unused: small enough for
    multi-process and accumulation runs of a few seconds."""
    from ganforge.data.store import Store

    images = np.pad(Store(mnist_store(root / "digits.gfs", count)).images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    images = images.reshape(count, 1, 16, 2, 16, 2).mean((3, 5)).round().astype(np.uint8)
    labels = np.zeros(count, np.int64)
    path = root / "d16.gfs"
    write_store(path, images, labels, Manifest(count, 1, 16, 16, [], content_fingerprint(images, labels)))
    return path
