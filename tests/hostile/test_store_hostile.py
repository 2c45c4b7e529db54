"""Hostile stores: an edited or damaged header, labels outside the named classes, no images, or pixels changed
under an intact header. Each is refused when the store is opened (or, for changed pixels, when a run starts or
resumes) in one line naming the file, and no run folder is made."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.errors import DataError

from data_slices import make_store
from run_helpers import only_run

TRAIN = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--tick-kimg", "0.025",
         "--seed", "1", "--no-progress"]
COUNT = 64

Header = dict[str, Any]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    images = np.random.default_rng(0).integers(0, 256, (COUNT, 1, 16, 16), dtype=np.uint8)
    labels = np.arange(COUNT) % 2
    return make_store(tmp_path / "noise.gfs", images, labels, ["a", "b"]).path


def _edit_header(path: Path, edit: Callable[[Header], None]) -> None:
    """Rewrite the JSON header of the store at `path` after `edit`, keeping its data section byte for byte."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])


def _edit_manifest(key: str, value: Any) -> Callable[[Header], None]:
    def edit(header: Header) -> None:
        manifest = json.loads(header["__metadata__"]["manifest"])
        manifest[key] = value
        header["__metadata__"]["manifest"] = json.dumps(manifest)
    return edit


def _set(tensor: str, key: str, value: Any) -> Callable[[Header], None]:
    return lambda header: header[tensor].__setitem__(key, value)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _header_length(value: int) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        raw = bytearray(path.read_bytes())
        raw[:8] = struct.pack("<Q", value)
        path.write_bytes(bytes(raw))
    return edit


HEADER_CASES: dict[str, tuple[Callable[[Header], None], str]] = {
    "pixels before the data section": (_set("images", "data_offsets", [-64, COUNT * 256 - 64]), "does not hold"),
    "labels aliased onto pixels": (_set("labels", "data_offsets", [0, 8 * COUNT]), "labels overlap the pixels"),
    "pixels past the end": (_set("images", "data_offsets", [16800, 16800 + COUNT * 256]), "does not hold"),
    "pixels as float": (_set("images", "dtype", "F32"), "tensor images is F32"),
    "shape disagrees with manifest": (_set("images", "shape", [COUNT, 1, 16, 17]), "the manifest says U8"),
    "huge count": (_edit_manifest("count", 2**70), "tensor images is U8"),
    "count as text": (_edit_manifest("count", "64"), "manifest count is not a whole number"),
    "zero height": (_edit_manifest("height", 0), "image shape 1x0x16"),
    "no images": (_edit_manifest("count", 0), "it holds no images"),
    "names not a list": (_edit_manifest("label_names", "ab"), "label_names is not a list"),
    "manifest not JSON": (lambda h: h["__metadata__"].__setitem__("manifest", "{oops"), "Expecting"),
    "header a list": (lambda h: h.clear(), "'__metadata__'"),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_an_edited_header_is_refused_on_open_in_one_line(store: Path, tmp_path: Path, case: str) -> None:
    edit, problem = HEADER_CASES[case]
    _edit_header(store, edit)
    _assert_train_refuses(store, tmp_path, problem)


@pytest.mark.parametrize("damage, problem", [(_truncate, "does not hold"),
                                             (_header_length(2**40), "does not fit a"),
                                             (_header_length(0), "does not fit a")],
                         ids=["truncated", "header length past the file", "header length zero"])
def test_a_damaged_file_is_refused_on_open(store: Path, tmp_path: Path, damage: Callable[[Path], None],
                                          problem: str) -> None:
    damage(store)
    _assert_train_refuses(store, tmp_path, problem)


def test_labels_outside_the_named_classes_are_refused_before_cond_indexes_with_them(tmp_path: Path) -> None:
    images = np.zeros((4, 1, 8, 8), np.uint8)
    labels = np.array([0, 1, 7, 1], np.int64)
    with pytest.raises(DataError, match="labels must be class numbers 0-1 .* found 0-7"):
        make_store(tmp_path / "labels.gfs", images, labels, ["a", "b"])  # writes the store, then opens it
    _assert_train_refuses(tmp_path / "labels.gfs", tmp_path, "labels must be class numbers 0-1", "--cond")


def test_pixels_changed_under_an_intact_header_are_refused_at_start_and_at_resume(store: Path,
                                                                                  tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(runs), "--kimg", "0.025", *TRAIN])
    assert result.exit_code == 0, result.output
    run_dir = only_run(runs)
    raw = bytearray(store.read_bytes())
    raw[-8 * COUNT - 1] ^= 0xFF  # the last pixel byte: the header and its fingerprint are untouched
    store.write_bytes(bytes(raw))
    problem = "its pixels or labels changed after it was prepared"
    _assert_train_refuses(store, tmp_path / "fresh", problem)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"}
    result = CliRunner().invoke(main, ["train", "--resume", str(run_dir), "--kimg", "0.05", "--no-progress"])
    assert result.exit_code == 2 and problem in result.output, result.output
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.name != ".lock"} == before


def _assert_train_refuses(store: Path, tmp_path: Path, problem: str, *flags: str) -> None:
    runs = tmp_path / "runs-refused"
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(runs), "--kimg", "0.05",
                                       *TRAIN, *flags])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert str(store) in errors[0] and problem in errors[0], errors[0]
    assert not runs.exists() or not any(runs.iterdir())
