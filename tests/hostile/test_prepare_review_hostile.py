"""Hostile inputs to `ganforge prepare` from the store review: a --resolution no store can hold, a FIFO or device as
SOURCE, a damaged .tar.xz or LZMA zip member, an .npz whose labels declare 10**12 values or hold sparse IDs, an .npz
with an empty or over-long axis, pairs whose first image is too large, and a link planted where the decode spill
goes. Each refusal is one line naming the flag or the file, and leaves no store (or other file) on disk."""

from __future__ import annotations

import io
import lzma
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import invoke, usage_error, within
from ganforge.data.pairing import PairOptions
from ganforge.data.prepare import PrepareOptions, prepare
from ganforge.data.prepare_pairs import prepare_pairs
from ganforge.data.store import Store


def _noise_pngs(folder: Path, count: int, size: int = 16) -> Path:
    """`count` PNGs of RGB noise (incompressible, so an archive of them is long enough to damage mid-stream)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())




@pytest.mark.parametrize("size, says", [("1x100000", "has a side above 65,536 px"),
                                        ("99999999999", "has a side above 65,536 px"),
                                        ("4097", "is more than the 16,777,216 px per image")])
def test_a_resolution_no_store_can_hold_is_refused_before_anything_is_written(tmp_path: Path, size: str,
                                                                            says: str) -> None:
    source = _noise_pngs(tmp_path / "one", 2)
    out = tmp_path / "r.gfs"
    error = usage_error(["prepare", str(source), "--out", str(out), "--resolution", size])
    assert f"--resolution '{size}' {says}" in error and "--resolution 256" in error, error
    assert _files(tmp_path) == ["one"]


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
@pytest.mark.parametrize("name, says", [("f.npz", "a FIFO"), ("train-images-idx3-ubyte", "a FIFO"),
                                        ("f.zip", "a FIFO"), ("f.tar", "a FIFO"),
                                        ("z.tar", "a character device")])
def test_a_fifo_or_device_as_source_is_refused_at_once(tmp_path: Path, name: str, says: str) -> None:
    source = tmp_path / name
    if name == "z.tar":
        source.symlink_to("/dev/zero")  # xz reads zeros as stream padding: without the check, a read that never ends
    else:
        os.mkfifo(source)
    with within(20):
        error = usage_error(["prepare", str(source), "--out", str(tmp_path / "o.gfs")])
    assert f"{source}: not a regular file ({says})" in error, error
    assert _files(tmp_path) == [name]


def test_damaged_lzma_data_is_a_line_for_a_tar_xz_and_a_skip_for_a_zip_member(tmp_path: Path) -> None:
    images = _noise_pngs(tmp_path / "imgs", 6, size=48)
    archive = tmp_path / "bad.tar.xz"
    with tarfile.open(archive, "w:xz") as tf:
        tf.add(images, arcname="imgs")
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    archive.write_bytes(bytes(data))
    error = usage_error(["prepare", str(archive), "--out", str(tmp_path / "t.gfs")])
    assert f"{archive}: not a readable archive (Corrupt input data)" in error, error
    assert not (tmp_path / "t.gfs").exists()

    packed = tmp_path / "lzbad.zip"
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_LZMA) as zf:
        for png in sorted(images.iterdir()):
            zf.write(png, png.name)
    data = bytearray(packed.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        first = zf.infolist()[0]  # 0.png: damage the middle of its compressed bytes
    start = first.header_offset + 30 + len(first.filename) + len(first.extra) + first.compress_size // 2
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    packed.write_bytes(bytes(data))
    with zipfile.ZipFile(packed) as zf, pytest.raises(lzma.LZMAError):
        zf.read("0.png")  # the damage is one zipfile reports as LZMAError, not as a CRC mismatch
    result = invoke("prepare", packed, "--out", tmp_path / "z.gfs")
    assert result.exit_code == 0 and "kept 5 of 6; skipped: corrupt or truncated 1" in result.output, result.output
    assert {"path": "0.png", "reason": "corrupt or truncated"} in (Store(tmp_path / "z.gfs").manifest.skipped or [])


def test_npz_labels_declaring_more_values_than_images_are_refused_before_loading(tmp_path: Path) -> None:
    bomb = tmp_path / "labelbomb.npz"
    np.savez(bomb, images=np.zeros((2, 8, 8), np.uint8))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(bomb, "a") as zf:
        zf.writestr("labels.npy", header.getvalue() + bytes(16))  # the header writes the magic too
    error = usage_error(["prepare", str(bomb), "--out", str(tmp_path / "o.gfs")])
    assert f"{bomb}: `labels` declares shape (1000000000000,) but there are 2 images" in error, error
    assert _files(tmp_path) == ["labelbomb.npz"]


def test_sparse_npz_labels_become_one_class_per_distinct_value_named_by_it(tmp_path: Path) -> None:
    np.savez(tmp_path / "ids.npz", images=np.zeros((3, 8, 8), np.uint8), labels=np.array([1_000_000, 0, 1_000_000]))
    result = invoke("prepare", tmp_path / "ids.npz", "--out", tmp_path / "o.gfs")
    assert result.exit_code == 0 and "labels: 2 classes" in result.output, result.output
    store = Store(tmp_path / "o.gfs")
    assert store.manifest.label_names == ["0", "1000000"] and store.labels.tolist() == [1, 0, 1]
    assert (tmp_path / "o.gfs").stat().st_size < 10_000


@pytest.mark.parametrize("shape, says", [((3, 0, 8), "has shape (3, 0, 8), with an empty height or width"),
                                         ((2, 70000, 1), "is 1x70000 px and, without --resolution, sets the size")])
def test_an_npz_with_an_empty_or_over_long_axis_is_refused_and_writes_nothing(tmp_path: Path,
                                                                               shape: tuple[int, ...],
                                                                               says: str) -> None:
    np.savez(tmp_path / "odd.npz", images=np.zeros(shape, np.uint8))
    error = usage_error(["prepare", str(tmp_path / "odd.npz"), "--out", str(tmp_path / "out.gfs")])
    assert "odd.npz" in error and says in error, error
    assert _files(tmp_path) == ["odd.npz"]


@pytest.mark.parametrize("pairs", ["side-by-side", "by-name"])
def test_pairs_whose_first_image_no_store_can_hold_are_refused_before_writing(tmp_path: Path, pairs: str) -> None:
    out = tmp_path / "p.gfs"
    if pairs == "side-by-side":
        (tmp_path / "sbs").mkdir()
        Image.new("L", (140_002, 2)).save(tmp_path / "sbs" / "w.png")  # halves of 70001 x 2 px
        error = usage_error(["prepare", str(tmp_path / "sbs"), "--pairs", "side-by-side", "--out", str(out)])
        assert "w.png (each half of its A|B) is 70001x2 px" in error, error
    else:
        for side in "ab":
            (tmp_path / side).mkdir()
            Image.new("L", (70_000, 1)).save(tmp_path / side / "1.png")
        error = usage_error(["prepare", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--pairs", "by-name",
                             "--out", str(out)])
        assert f"{tmp_path / 'a'}/1.png is 70000x1 px" in error, error
    assert "has a side above 65,536 px" in error and "pass --resolution" in error, error
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
@pytest.mark.parametrize("two_sided", [False, True])
def test_the_decode_spill_never_writes_through_a_link_planted_beside_out(tmp_path: Path, two_sided: bool) -> None:
    source = _noise_pngs(tmp_path / "one", 2)
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious data")
    # The names the spill files once had: predictable from the process id.
    planted = [shared / f".o.gfs.decode-{os.getpid()}{suffix}" for suffix in ("", "-a", "-b")]
    for link in planted:
        link.symlink_to(victim)
    out = shared / "o.gfs"
    if two_sided:
        prepare_pairs(out, PrepareOptions(), PairOptions(pairs="side-by-side"), source=source, progress=False,
                      spill_bytes=1)
    else:
        prepare(source, out, progress=False, spill_bytes=1)
    assert victim.read_text() == "precious data"
    assert len(Store(out)) == 2 and _files(shared) == sorted(["o.gfs", *(link.name for link in planted)])


@pytest.mark.parametrize("compressed", [False, True])
def test_a_tar_whose_later_member_header_is_damaged_is_refused_not_cut_short(tmp_path: Path,
                                                                             compressed: bool) -> None:
    images = _noise_pngs(tmp_path / "imgs", 6)
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tf:
        for name in sorted(p.name for p in images.iterdir()):
            tf.add(images / name, arcname=name)
    data = bytearray(plain.getvalue())
    fourth = [m.offset for m in tarfile.open(fileobj=io.BytesIO(bytes(data))).getmembers()][3]
    data[fourth + 148] ^= 0x01  # its header checksum: tarfile would take the archive to end there
    archive = tmp_path / ("hdr.tar.gz" if compressed else "hdr.tar")
    if compressed:
        import gzip

        archive.write_bytes(gzip.compress(bytes(data)))
    else:
        archive.write_bytes(bytes(data))
    error = usage_error(["prepare", str(archive), "--out", str(tmp_path / "o.gfs")])
    assert str(archive) in error and "after '2.png' is damaged" in error, error
    assert not (tmp_path / "o.gfs").exists()
    healthy = tmp_path / "ok.tar"
    healthy.write_bytes(plain.getvalue())
    assert invoke("prepare", healthy, "--out", tmp_path / "ok.gfs").exit_code == 0
    assert len(Store(tmp_path / "ok.gfs")) == 6
