"""Hostile array sources for `ganforge prepare`: a few bytes of gzip declaring gigabytes, an .npz carrying a huge
array it does not use, an IDX file with an empty axis. Sizes are checked before anything is allocated, only the
arrays used are read, and each refusal is one line naming the file."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ganforge.data.prepare import prepare
from ganforge.data.store import Store
from ganforge.errors import DataError


def _idx(path: Path, dims: tuple[int, ...], payload: bytes) -> Path:
    header = b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + payload)
    return path


def test_a_gzip_declaring_more_pixels_than_memory_is_refused_before_allocating(tmp_path: Path) -> None:
    bomb = _idx(tmp_path / "train-images-idx3-ubyte.gz", (100_000, 1000, 1000), bytes(4096))  # declares 100 GB
    assert bomb.stat().st_size < 1000
    tracemalloc.start()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz declares 100.0 GB of pixels, more than half"):
        prepare(bomb, tmp_path / "out.gfs", progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 << 20 and not (tmp_path / "out.gfs").exists()


def test_an_idx_with_an_empty_axis_holds_no_images(tmp_path: Path) -> None:
    flat = _idx(tmp_path / "train-images-idx3-ubyte.gz", (3, 0, 28), b"")
    with pytest.raises(DataError, match=r"declares shape \[3, 0, 28\], with an empty axis; it holds no images"):
        prepare(flat, tmp_path / "out.gfs", progress=False)


def test_a_truncated_idx_names_what_is_missing(tmp_path: Path) -> None:
    short = _idx(tmp_path / "train-images-idx3-ubyte.gz", (10, 8, 8), bytes(100))
    with pytest.raises(DataError, match="truncated, 100 of 640 bytes present"):
        prepare(short, tmp_path / "out.gfs", progress=False)


def test_an_npz_reads_only_the_arrays_it_uses(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8), dtype=np.uint8)
    np.savez_compressed(tmp_path / "data.npz", images=images, labels=np.arange(8) % 2,
                        unused=np.zeros(256 << 20, np.uint8))  # 256 MB of zeros, a few hundred KB on disk
    tracemalloc.start()
    report = prepare(tmp_path / "data.npz", tmp_path / "out.gfs", progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.kept == 8 and (Store(tmp_path / "out.gfs").images[:, 0] == images).all()
    assert peak < 64 << 20, f"peak {peak / 1e6:.0f} MB: the unused array was read"


def test_an_npz_whose_image_array_exceeds_memory_is_refused_before_reading_it(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from ganforge.data import arrays

    np.savez_compressed(tmp_path / "data.npz", images=np.zeros((64, 64, 64), np.float32))  # 1 MB as float32
    monkeypatch.setattr(arrays, "available_ram_bytes", lambda: 1 << 20)
    with pytest.raises(DataError, match=r"data.npz declares 0.0 GB of pixels, more than half of the 0.0 GB"):
        prepare(tmp_path / "data.npz", tmp_path / "out.gfs", progress=False)
