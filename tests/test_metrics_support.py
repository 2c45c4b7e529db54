"""Helpers shared by the metrics tests (no tests here): real MNIST / Fashion-MNIST slices and tiny stores."""

from __future__ import annotations

import gzip
import struct
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data.store import Manifest, Store, content_fingerprint, write_store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _data_dir() -> Path:
    for candidate in (DATA, Path("/work/shared/data")):
        if (candidate / "mnist").is_dir():
            return candidate
    pytest.skip(f"the real data slices are not at {DATA}; these tests need ../shared/data")


@cache
def idx_images(dataset: str, split: str, start: int, stop: int) -> np.ndarray:
    """uint8 [stop - start, 1, 28, 28] from an IDX gzip file, reading only the rows needed."""
    path = _data_dir() / dataset / f"{split}-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 2051 and stop <= count, path
        f.read(start * rows * cols)
        pixels = np.frombuffer(f.read((stop - start) * rows * cols), np.uint8).copy()
    return pixels.reshape(stop - start, 1, rows, cols)


@cache
def idx_labels(dataset: str, split: str, start: int, stop: int) -> np.ndarray:
    path = _data_dir() / dataset / f"{split}-labels-idx1-ubyte.gz"
    with gzip.open(path, "rb") as f:
        magic, count = struct.unpack(">II", f.read(8))
        assert magic == 2049 and stop <= count, path
        f.read(start)
        return np.frombuffer(f.read(stop - start), np.uint8).astype(np.int64)


def make_store(path: Path, images: np.ndarray, labels: np.ndarray | None = None,
               label_names: list[str] | None = None) -> Store:
    labels = np.zeros(len(images), np.int64) if labels is None else labels.astype(np.int64)
    n, c, h, w = images.shape
    manifest = Manifest(count=n, channels=c, height=h, width=w, label_names=label_names or [],
                        fingerprint=content_fingerprint(images, labels), source=str(path))
    write_store(path, images, labels, manifest)
    return Store(path)


def mnist_store(tmp_path: Path, name: str, dataset: str, split: str, start: int, stop: int,
                with_labels: bool = False) -> Store:
    labels = idx_labels(dataset, split, start, stop) if with_labels else None
    names = [str(i) for i in range(10)] if with_labels else None
    return make_store(tmp_path / f"{name}.gfs", idx_images(dataset, split, start, stop), labels, names)


class _TinyNvidiaLike(torch.nn.Module):
    """The shape of NVIDIA's inception-2015-12-05.pt (`layers` to [B, 2048, 1, 1], `output` 2048 -> 1008),
    with a few parameters instead of 24 M, so the loader's paths can be tested without the real file."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.AvgPool2d(37, 37), torch.nn.Conv2d(3, 2048, 1),
                                          torch.nn.AvgPool2d(8, 8))
        self.output = torch.nn.Linear(2048, 1008)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.output(self.layers(img).reshape(-1, 2048))


def script_and_save(module: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch 2.13 deprecates torch.jit
        torch.jit.script(module).save(str(path))
    return path


def tiny_inception_file(path: Path) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return script_and_save(_TinyNvidiaLike(), path)
