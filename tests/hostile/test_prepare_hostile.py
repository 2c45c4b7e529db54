"""Hostile --out paths for `ganforge prepare`: its own source images, links into the source, files that are not
stores. Each refusal is one line naming the path and the fix, and leaves every byte where it was."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.data.prepare import prepare
from ganforge.data.store import Store
from ganforge.errors import DataError


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A source folder of four small PNGs (000.png .. 003.png)."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(folder / f"{i:03d}.png")
    return folder


def _refusal(*args: str | Path) -> str:
    """The one-line error of a prepare that must refuse (exit 2, no traceback)."""
    result = CliRunner().invoke(main, ["prepare", *map(str, args)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def _prepared(*args: str | Path) -> None:
    result = CliRunner().invoke(main, ["prepare", *map(str, args)])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_out_naming_a_source_image_is_refused_even_with_force(images: Path, force: list[str]) -> None:
    before = (images / "000.png").read_bytes()
    error = _refusal(images, "--out", images / "000.png", *force)
    assert str(images / "000.png") in error and f"inside the source folder {images}" in error
    assert "write the store outside it, e.g. --out" in error
    assert (images / "000.png").read_bytes() == before


def test_a_new_out_inside_the_source_folder_is_refused_and_creates_nothing(images: Path) -> None:
    error = _refusal(images, "--out", images / "sub" / "data.gfs", "--force")
    assert "inside the source folder" in error and str(images.parent / "data.gfs") in error
    assert sorted(p.name for p in images.iterdir()) == ["000.png", "001.png", "002.png", "003.png"]


def test_out_symlinked_into_the_source_folder_is_refused(images: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.gfs"
    link.symlink_to(images / "001.png")
    before = (images / "001.png").read_bytes()
    assert "inside the source folder" in _refusal(images, "--out", link, "--force")
    assert link.is_symlink() and (images / "001.png").read_bytes() == before


def test_out_equal_to_a_source_file_or_its_idx_labels_is_refused_even_with_force(tmp_path: Path) -> None:
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=np.zeros((2, 4, 4), np.uint8))
    before = npz.read_bytes()
    assert f"is the source {npz}" in _refusal(npz, "--out", npz, "--force")
    assert npz.read_bytes() == before
    idx_images, idx_labels = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    idx_images.write_bytes(b"\0\0\x08\x03" + struct.pack(">3I", 2, 4, 4) + bytes(32))
    idx_labels.write_bytes(b"\0\0\x08\x01" + struct.pack(">I", 2) + bytes([3, 1]))
    before = idx_labels.read_bytes()
    error = _refusal(idx_images, "--out", idx_labels, "--force")
    assert f"is the labels file of the source {idx_labels}" in error and "train-images-idx3-ubyte.gfs" in error
    assert idx_labels.read_bytes() == before


@pytest.mark.parametrize("name", ["notes.txt", "misnamed.gfs"])
def test_an_existing_file_that_is_not_a_store_is_replaced_only_with_force(images: Path, tmp_path: Path,
                                                                          name: str) -> None:
    out = tmp_path / name
    out.write_bytes(b"a week of notes")
    error = _refusal(images, "--out", out)
    assert f"{out} exists and is not a ganforge store" in error and "--force" in error
    assert out.read_bytes() == b"a week of notes"
    _prepared(images, "--out", out, "--force")
    assert len(Store(out)) == 4


def test_an_existing_store_is_replaced_as_before(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "data.gfs"
    _prepared(images, "--out", out)
    _prepared(images, "--out", out, "--resolution", "4")
    assert Store(out).manifest.shape == (3, 4, 4)


def test_the_python_api_refuses_the_same_paths(images: Path, tmp_path: Path) -> None:
    before = (images / "002.png").read_bytes()
    with pytest.raises(DataError, match="inside the source folder"):
        prepare(images, images / "002.png", progress=False, force=True)
    assert (images / "002.png").read_bytes() == before
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a ganforge store"):
        prepare(images, tmp_path / "notes.txt", progress=False)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_a_size_no_convolutional_model_draws_is_named_with_the_nearest_one(tmp_path):
    from PIL import Image

    from ganforge.data.prepare import size_note

    folder = tmp_path / "odd"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (63, 63), (i * 60, 0, 0)).save(folder / f"{i}.png")
    result = CliRunner().invoke(main, ["prepare", str(folder), "--out", str(tmp_path / "odd.gfs")])
    assert result.exit_code == 0, result.output
    assert "only mlp trains on 63x63; prepare again with --resolution 64" in result.output
    assert size_note(64, 64) == size_note(28, 28) == size_note(56, 112) == ""
