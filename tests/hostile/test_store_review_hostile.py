"""Hostile inputs from the store review, findings 10-14: a zip whose entries overlap (a non-recursive zip bomb), IDX
files holding more than their header declares, a store manifest whose `skipped` is not a list or whose format is
newer than this reader's, class folders whose names are not UTF-8, and a damaged copy of the embedded MNIST sample
in the cache. Each is one line naming the file with nothing left on disk, or (classes, embedded sample) just works."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cli_helpers import invoke, one_error, usage_error
from ganforge.data.embedded import EMBEDDED_NAME
from ganforge.data.store import Store

from data_slices import make_store


def _png(value: int, size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(out, "PNG")
    return out.getvalue()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _overlapping_zip(path: Path, copies: int) -> Path:
    """A zip whose central directory lists its one deflated member `copies` times, every listing pointing at the
    same local header: each would be inflated in full (the trick of non-recursive zip bombs)."""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", _png(0))
    data = packed.getvalue()
    end = data.rindex(b"PK\x05\x06")  # end of central directory: counts at 8-12, size and offset at 12-20
    size, offset = struct.unpack("<II", data[end + 12 : end + 20])
    central = data[offset : offset + size] * copies
    record = data[end : end + 8] + struct.pack("<HHII", copies, copies, len(central), offset) + data[end + 20 :]
    path.write_bytes(data[:offset] + central + record)
    return path


def test_a_zip_whose_entries_overlap_is_refused_before_anything_is_inflated(tmp_path: Path) -> None:
    bomb = _overlapping_zip(tmp_path / "overlap.zip", copies=3)
    with zipfile.ZipFile(bomb) as zf:
        assert [i.header_offset for i in zf.infolist()] == [0, 0, 0]  # this Python's zipfile lists them all
    error = usage_error(["prepare", str(bomb), "--out", str(tmp_path / "o.gfs")])
    assert f"{bomb}: 2 of its 3 zip entries overlap the next one" in error and "'a.png' at byte 0" in error, error
    assert "zip bomb" in error, error
    assert _files(tmp_path) == ["overlap.zip"]


def _idx(path: Path, magic: bytes, dims: tuple[int, ...], payload: bytes) -> Path:
    raw = magic + struct.pack(f">{len(dims)}I", *dims) + payload
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


_IMAGES, _LABELS = b"\x00\x00\x08\x03", b"\x00\x00\x08\x01"


@pytest.mark.parametrize("gz", ["", ".gz"])
@pytest.mark.parametrize("lying", ["images", "labels"])
def test_idx_files_holding_more_than_their_header_declares_are_refused(tmp_path: Path, gz: str, lying: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8).tobytes()
    # Images: the header says 27 rows of 28, the data holds 28 (read as declared, every image after the first shears).
    image_dims = (5, 27, 28) if lying == "images" else (5, 28, 28)
    images = _idx(tmp_path / f"lie-images-idx3-ubyte{gz}", _IMAGES, image_dims, pixels)
    labels = _idx(tmp_path / f"lie-labels-idx1-ubyte{gz}", _LABELS, (5,),
                  bytes(range(5)) + (b"junk" if lying == "labels" else b""))
    error = usage_error(["prepare", str(images), "--out", str(tmp_path / "o.gfs")])
    liar = images if lying == "images" else labels
    assert f"{liar}: its IDX header declares shape {list(image_dims) if lying == 'images' else [5]}" in error, error
    assert "download it again" in error, error
    assert _files(tmp_path) == sorted([images.name, labels.name])


def _edit_manifest(path: Path, **changes: Any) -> None:
    """Rewrite the store's manifest with `changes`, keeping its data section byte for byte."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    manifest = json.loads(header["__metadata__"]["manifest"])
    header["__metadata__"]["manifest"] = json.dumps({**manifest, **changes})
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])


@pytest.mark.parametrize("changes, says", [({"skipped": 5}, "the manifest's skipped is not a list"),
                                           ({"skipped": [{"path": 1}]}, "the manifest's skipped is not a list"),
                                           ({"format_version": 99}, "is a store of format version 99, written by "
                                                                    "a newer ganforge; this one reads versions up "
                                                                    "to 1: upgrade ganforge")])
def test_doctor_reports_a_store_whose_skipped_is_not_a_list_or_whose_format_is_newer(
        tmp_path: Path, changes: dict[str, Any], says: str) -> None:
    store = make_store(tmp_path / "s.gfs", np.zeros((2, 1, 8, 8), np.uint8)).path
    _edit_manifest(store, **changes)
    before = store.read_bytes()
    result = invoke("doctor", store)
    lines = result.output.splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith(f"PROBLEM {store}") and says in lines[0], result.output
    # every command that opens the store refuses it the same way
    assert says in one_error(invoke("train", "--data", store, "--dry-run"))
    assert store.read_bytes() == before and _files(tmp_path) == ["s.gfs"]


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="names that are not UTF-8 need a POSIX byte filesystem")
def test_class_folders_whose_names_are_not_utf8_stay_two_classes(tmp_path: Path) -> None:
    root = tmp_path / "lat"
    for raw, value in ((b"caf\xe9", 0), (b"caf\xe8", 255)):  # Latin-1 "café" and "cafè"
        folder = os.path.join(os.fsencode(root), raw)
        os.makedirs(folder)
        Path(os.fsdecode(os.path.join(folder, b"1.png"))).write_bytes(_png(value))
    out = tmp_path / "o.gfs"
    result = invoke("prepare", root, "--out", out, "--labels", "folders")
    assert result.exit_code == 0 and "labels: 2 classes" in result.output, result.output
    store = Store(out)
    assert store.manifest.label_names == ["caf\\xe8", "caf\\xe9"]
    # cafè holds the white image, café the black one: each image keeps its own class
    assert sorted(zip(store.labels.tolist(), store.images[:, 0, 0, 0].tolist(), strict=True)) == [(0, 255), (1, 0)]


def _junk(path: Path) -> None:
    path.write_bytes(b"junk")


def _flip_a_pixel(path: Path) -> None:
    data = bytearray(path.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    data[8 + length + 1000] ^= 0xFF  # the header still reads: only the content hash tells
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_junk, _flip_a_pixel])
def test_a_damaged_cached_copy_of_the_embedded_sample_is_unpacked_again(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       damage: Callable[[Path], None]) -> None:
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    assert invoke("train", "--dry-run").exit_code == 0  # unpacks the sample into the cache
    cached = tmp_path / f"{EMBEDDED_NAME}.gfs"
    healthy = cached.read_bytes()
    damage(cached)
    result = invoke("train", "--dry-run")
    assert result.exit_code == 0 and "error:" not in result.output, result.output
    assert cached.read_bytes() == healthy
    assert Store(cached).verify_content(limit_bytes=None)
