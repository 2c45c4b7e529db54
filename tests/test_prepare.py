"""`prepare`: every kind of source, every kind of broken input, and the store it writes."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ganforge.data.prepare import PrepareOptions, PrepareReport, parse_resolution, prepare
from ganforge.data.store import Store
from ganforge.errors import ConfigError, DataError

from data_slices import SHARED_DATA as SHARED
from data_slices import shared_file

MNIST_IMAGES = SHARED / "mnist" / "train-images-idx3-ubyte.gz"
MNIST_LABELS = SHARED / "mnist" / "train-labels-idx1-ubyte.gz"
CARS_TAR = SHARED / "stanford-cars" / "stanford_cars_train_128_pad_jpg.tar.gz"
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def _run(src: Path, tmp_path: Path, **options: Any) -> tuple[Store, PrepareReport]:
    out = tmp_path / "out.gfs"
    report = prepare(src, out, PrepareOptions(**options), progress=False)
    return Store(out), report


def _jpeg_bytes(img: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **save)
    return buf.getvalue()


def _halves(width: int, height: int, left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (width, height), right)
    img.paste(left, (0, 0, width // 2, height))
    return img


def _sixteen_bit() -> Image.Image:
    values = np.array([[0, 32768, 65535, 65535]] * 20, np.uint16).repeat(5, axis=1)
    return Image.fromarray(values)  # mode I;16, 20 x 20


def _make_zoo(root: Path) -> None:
    """A folder with everything a real photo folder contains, good and bad."""
    root.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "a.jpg", quality=95)
    Image.new("RGB", (100, 80), (30, 200, 30)).save(root / "b.jpg", quality=95)
    Image.new("L", (30, 30), 128).save(root / "grey.png")
    Image.new("RGB", (40, 40), BLUE).save(root / "ünïcødé 画像.jpg")
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(root / "rgba.png")
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.save(root / "pal.gif", transparency=0)
    _sixteen_bit().save(root / "sixteen.png")
    Image.new("LA", (20, 20), (100, 0)).save(root / "la.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    _halves(40, 20, RED, BLUE).save(root / "rot.jpg", exif=exif)
    Image.new("RGB", (20, 20), RED).save(root / "c.webp")
    Image.new("RGB", (20, 20), RED).save(root / "d.bmp")
    Image.new("RGB", (20, 20), RED).save(root / "e.tiff")
    with open(bytes(root) + b"/bad-bytes-\xff.png", "wb") as f:  # a POSIX name that is not UTF-8
        Image.new("RGB", (20, 20), RED).save(f, "PNG")
    (root / "trunc.jpg").write_bytes(_jpeg_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))[:1500])
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.png").write_text("not a picture")
    Image.new("RGB", (8, 8), RED).save(root / "tiny.png")
    Image.new("L", (300, 300)).save(root / "bomb.png")  # 90,000 px: over twice the limit -> Pillow's error
    Image.new("L", (250, 200)).save(root / "bomb2.png")  # 50,000 px: over the limit -> Pillow's warning
    (root / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / ".DS_Store").write_bytes(b"Bud1")
    (root / "Thumbs.db").write_bytes(b"thumbs")
    (root / ".hidden").mkdir()
    Image.new("RGB", (20, 20), RED).save(root / ".hidden" / "h.png")
    (root / "notes.txt").write_text("a note")
    (root / "loop").symlink_to(root, target_is_directory=True)


ZOO_OPTIONS: dict[str, Any] = {"resolution": (16, 16), "min_size": 16, "max_pixels": 40_000}


def test_zoo_keeps_every_usable_image_and_reports_every_bad_one_by_reason(tmp_path: Path) -> None:
    _make_zoo(tmp_path / "zoo")
    store, report = _run(tmp_path / "zoo", tmp_path, **ZOO_OPTIONS)
    assert report.skipped == {"junk file": 4, "decompression bomb": 2, "corrupt or truncated": 1,
                              "empty file": 1, "not an image": 1, "too small": 1, "symlink loop": 1,
                              "unsupported file type": 1}
    assert report.kept == 14 and report.total == 14 + 12
    assert store.images.shape == (14, 3, 16, 16) and store.manifest.shape == (3, 16, 16)
    skipped = {s["path"]: s["reason"] for s in store.manifest.skipped or []}
    assert skipped["trunc.jpg"] == "corrupt or truncated" and skipped[".hidden/"] == "junk file"
    assert skipped["text.png"] == "not an image" and skipped["loop/"] == "symlink loop"
    assert store.manifest.source == str(tmp_path / "zoo") and not store.manifest.has_labels
    assert "kept 14 of 26; skipped: junk file 4, decompression bomb 2" in report.summary()
    assert "(3 x 16 x 16, labels: none)" in report.summary()


def test_zoo_decoded_via_temp_file_matches_decoding_in_ram_and_leaves_no_temp_file(tmp_path: Path) -> None:
    _make_zoo(tmp_path / "zoo")
    in_ram, _ = _run(tmp_path / "zoo", tmp_path, **ZOO_OPTIONS)
    out = tmp_path / "spilled" / "out.gfs"
    prepare(tmp_path / "zoo", out, PrepareOptions(**ZOO_OPTIONS), progress=False, spill_bytes=0)
    assert Store(out).manifest.fingerprint == in_ram.manifest.fingerprint
    assert [p.name for p in out.parent.iterdir()] == ["out.gfs"]


def test_source_fingerprint_is_stable_and_changes_with_the_options(tmp_path: Path) -> None:
    _make_zoo(tmp_path / "zoo")
    first, _ = _run(tmp_path / "zoo", tmp_path, **ZOO_OPTIONS)
    again, _ = _run(tmp_path / "zoo", tmp_path, **ZOO_OPTIONS)
    other, _ = _run(tmp_path / "zoo", tmp_path, **{**ZOO_OPTIONS, "crop": "pad"})
    assert first.manifest.source_fingerprint == again.manifest.source_fingerprint
    assert first.manifest.source_fingerprint != other.manifest.source_fingerprint
    assert first.manifest.options == {**PrepareOptions(**ZOO_OPTIONS).to_dict(), "resolution": [16, 16]}


def _single(tmp_path: Path, name: str, img: Image.Image, **options: Any) -> np.ndarray:
    folder = tmp_path / "one"
    folder.mkdir(parents=True, exist_ok=True)
    img.save(folder / name)
    store, _ = _run(folder, tmp_path, **options)
    return store.images[0]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, shown rotated 90 degrees clockwise: 20 wide, 40 tall, left half on top
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "rot.jpg").write_bytes(_jpeg_bytes(_halves(40, 20, RED, BLUE), exif=exif))
    store, _ = _run(folder, tmp_path)
    pixels = store.images[0].astype(int)
    assert pixels.shape == (3, 40, 20)
    assert pixels[0, :15].mean() > 200 and pixels[2, :15].mean() < 60  # top red
    assert pixels[2, 25:].mean() > 200 and pixels[0, 25:].mean() < 60  # bottom blue


def test_transparent_pixels_are_composited_on_the_background(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 10, 20))
    pixels = _single(tmp_path, "rgba.png", rgba)
    assert (pixels[:, :, :10] == 255).all()  # transparent black on white is white
    assert (pixels[:, :, 10:] == np.array(RED)[:, None, None]).all()
    green = _single(tmp_path, "rgba.png", rgba, background=(0, 255, 0))
    assert (green[:, :, :10] == np.array([0, 255, 0])[:, None, None]).all()


def test_palette_and_grey_alpha_transparency_become_background(tmp_path: Path) -> None:
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(1, (10, 0, 20, 20))
    (tmp_path / "one").mkdir()
    pal.save(tmp_path / "one" / "pal.gif", transparency=0)
    store, _ = _run(tmp_path / "one", tmp_path)
    assert (store.images[0][:, :, :10] == 255).all() and (store.images[0][0, :, 10:] == 255).all()
    assert (store.images[0][1:, :, 10:] == 0).all()
    la = _single(tmp_path / "la", "la.png", Image.new("LA", (20, 20), (0, 0)))
    assert la.shape == (1, 20, 20) and (la == 255).all()


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped(tmp_path: Path) -> None:
    pixels = _single(tmp_path, "sixteen.png", _sixteen_bit())
    assert pixels.shape == (1, 20, 20)  # greyscale by header, so one channel
    assert pixels[0, 0, 0] == 0 and pixels[0, 0, 5] == 128 and pixels[0, 0, 10] == 255


def test_cmyk_is_converted_to_rgb(tmp_path: Path) -> None:
    pixels = _single(tmp_path, "cmyk.jpg", Image.new("CMYK", (20, 20), (0, 255, 255, 0))).astype(int)
    assert pixels[0].mean() > 240 and pixels[1].mean() < 15 and pixels[2].mean() < 15


def test_all_grey_inputs_give_one_channel_and_explicit_channels_win(tmp_path: Path) -> None:
    folder = tmp_path / "greys"
    folder.mkdir()
    Image.new("L", (20, 20), 10).save(folder / "a.png")
    Image.new("L", (20, 20), 200).save(folder / "b.jpg")
    grey, _ = _run(folder, tmp_path)
    assert grey.images.shape == (2, 1, 20, 20)
    rgb, _ = _run(folder, tmp_path, channels=3)
    assert rgb.images.shape == (2, 3, 20, 20) and (rgb.images[0] == 10).all()


def test_crop_modes_pad_keeps_the_whole_image_center_crops_none_stretches(tmp_path: Path) -> None:
    wide = Image.new("RGB", (40, 20), WHITE)
    wide.paste(RED, (0, 0, 10, 20))
    wide.paste(BLUE, (30, 0, 40, 20))
    pad = _single(tmp_path / "p", "w.png", wide, resolution=(10, 10), crop="pad").astype(int)
    assert (pad[:, :2] == 0).all() and (pad[:, 8:] == 0).all()  # 10 x 5 image on black bars top and bottom
    assert pad[0, 3:7, 0].min() > 200 and pad[2, 3:7, 0].max() < 60  # red left edge kept
    assert pad[2, 3:7, 9].min() > 200 and pad[0, 3:7, 9].max() < 60  # blue right edge kept
    center = _single(tmp_path / "c", "w.png", wide, resolution=(10, 10), crop="center").astype(int)
    assert center.min() > 200  # only the white middle is left
    stretch = _single(tmp_path / "n", "w.png", wide, resolution=(10, 10), crop="none").astype(int)
    assert stretch[0, :, 0].min() > 200 and stretch[2, :, 9].min() > 200 and stretch[:, :, 4:6].min() > 200


def test_pad_color_fills_the_bars(tmp_path: Path) -> None:
    pixels = _single(tmp_path, "w.png", Image.new("RGB", (40, 20), WHITE), resolution=(10, 10), crop="pad",
                     pad_color=(0, 0, 255))
    assert (pixels[:, 0] == np.array(BLUE)[:, None]).all()


def test_first_level_folders_become_sorted_class_labels(tmp_path: Path) -> None:
    root = tmp_path / "classes"
    for cls, count in (("dog", 2), ("cat", 1)):
        (root / cls / "nested").mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (20, 20), RED).save(root / cls / "nested" / f"{i}.png")
    Image.new("RGB", (20, 20), RED).save(root / "loose.png")
    store, report = _run(root, tmp_path, labels="folders")
    assert store.manifest.label_names == ["cat", "dog"] and store.labels.tolist() == [0, 1, 1]
    assert report.skipped == {"not in a class folder": 1} and "labels: 2 classes" in report.summary()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return path


def _png(color: tuple[int, int, int] = RED, size: tuple[int, int] = (20, 20)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_zip_members_with_unsafe_paths_or_junk_are_skipped(tmp_path: Path) -> None:
    src = _zip(tmp_path / "set.zip", {"set/a.png": _png(), "set/b.png": _png(BLUE), "../evil.png": _png(),
                                      "/abs.png": _png(), "__MACOSX/set/._a.png": b"junk", "set/n.txt": b"x",
                                      "set/c.png": b"\x89PNG\r\n\x1a\n broken"})
    store, report = _run(src, tmp_path)
    assert report.kept == 2 and store.images.shape == (2, 3, 20, 20)
    assert report.skipped == {"unsafe zip path": 2, "junk file": 1, "unsupported file type": 1,
                              "corrupt or truncated": 1}


def test_oversize_zip_member_is_skipped_before_it_is_inflated(tmp_path: Path) -> None:
    src = tmp_path / "bomb.zip"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ok.png", _png())
        zf.writestr("huge.bmp", b"\0" * (17 << 20))  # beyond max_pixels * 8 bytes + 16 MiB of slack
    _, report = _run(src, tmp_path, max_pixels=1000)
    assert report.kept == 1 and report.skipped == {"oversize archive member": 1}


def test_tar_labels_come_from_folders_below_a_single_top_folder(tmp_path: Path) -> None:
    src = tmp_path / "set.tar.gz"
    with tarfile.open(src, "w:gz") as tf:
        members = (("set/cat/a.png", _png()), ("set/dog/b.png", _png(BLUE)), ("set/../x.png", _png()))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("set/cat/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    store, report = _run(src, tmp_path, labels="folders")
    assert store.manifest.label_names == ["cat", "dog"] and store.labels.tolist() == [0, 1]
    assert report.skipped == {"unsafe tar path": 1, "not a regular file": 1}


def _idx(path: Path, magic: bytes, array: np.ndarray, gz: bool) -> None:
    data = magic + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_images_pick_up_their_sibling_labels(tmp_path: Path, gz: bool) -> None:
    images = np.arange(3 * 4 * 5).reshape(3, 4, 5)
    suffix = ".gz" if gz else ""
    _idx(tmp_path / f"train-images-idx3-ubyte{suffix}", b"\0\0\x08\x03", images, gz)
    _idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", b"\0\0\x08\x01", np.array([3, 1, 4]), gz)
    store, _ = _run(tmp_path / f"train-images-idx3-ubyte{suffix}", tmp_path)
    assert store.images.shape == (3, 1, 4, 5) and (store.images[:, 0] == images).all()
    # Classes are the distinct label values, named by them: 3, 1, 4 are classes 1, 0, 2 of ["1", "3", "4"].
    assert store.labels.tolist() == [1, 0, 2] and store.manifest.label_names == ["1", "3", "4"]


def test_folder_of_only_idx_files_says_to_pass_one_file(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    _idx(folder / "t10k-images-idx3-ubyte.gz", b"\0\0\x08\x03", np.zeros((2, 3, 3)), True)
    _idx(folder / "t10k-labels-idx1-ubyte.gz", b"\0\0\x08\x01", np.zeros(2), True)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*pass one file"):
        prepare(folder, tmp_path / "out.gfs", progress=False)
    with pytest.raises(DataError, match="labels file; pass the images file"):
        prepare(folder / "t10k-labels-idx1-ubyte.gz", tmp_path / "out.gfs", progress=False)


def test_real_mnist_slice_keeps_pixels_and_labels_exactly(tmp_path: Path) -> None:
    count = 300
    with gzip.open(shared_file(MNIST_IMAGES)) as f:
        images = np.frombuffer(f.read(16 + count * 784)[16:], np.uint8).reshape(count, 28, 28)
    with gzip.open(shared_file(MNIST_LABELS)) as f:
        labels = np.frombuffer(f.read(8 + count)[8:], np.uint8)
    _idx(tmp_path / "train-images-idx3-ubyte.gz", b"\0\0\x08\x03", images, True)
    _idx(tmp_path / "train-labels-idx1-ubyte.gz", b"\0\0\x08\x01", labels, True)
    store, report = _run(tmp_path / "train-images-idx3-ubyte.gz", tmp_path)
    assert store.manifest.shape == (1, 28, 28) and report.kept == count
    assert (store.images[:, 0] == images).all() and (store.labels == labels).all()
    assert store.manifest.label_names == [str(d) for d in range(10)]
    resized, _ = _run(tmp_path / "train-images-idx3-ubyte.gz", tmp_path, resolution=(32, 32), channels=3)
    assert resized.images.shape == (count, 3, 32, 32)


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_images_in_each_layout(tmp_path: Path, layout: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    arrays = {"NHW": rgb[..., 0], "NHWC": rgb / 255.0, "NCHW": rgb.transpose(0, 3, 1, 2)}
    np.savez(tmp_path / "d.npz", images=arrays[layout], y=np.array([0, 2, 1, 2]))
    store, _ = _run(tmp_path / "d.npz", tmp_path)
    expected = rgb[..., :1] if layout == "NHW" else rgb
    assert (store.images == expected.transpose(0, 3, 1, 2)).all()
    assert store.labels.tolist() == [0, 2, 1, 2] and store.manifest.label_names == ["0", "1", "2"]


def test_npz_errors_name_the_keys_and_nan_images_are_skipped(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", x_train=np.zeros((2, 4, 4)), x_test=np.zeros((2, 4, 4)))
    with pytest.raises(DataError, match="x_train, x_test"):
        prepare(tmp_path / "two.npz", tmp_path / "out.gfs", progress=False)
    np.savez(tmp_path / "range.npz", np.full((2, 4, 4), 255.0))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        prepare(tmp_path / "range.npz", tmp_path / "out.gfs", progress=False)
    floats = np.full((3, 4, 4), 0.5)
    floats[1, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", images=floats, labels=np.array([0, 1, 2]))
    store, report = _run(tmp_path / "nan.npz", tmp_path)
    assert report.skipped == {"non-finite pixels": 1} and store.labels.tolist() == [0, 2]
    assert (store.images == 128).all()


def test_missing_empty_or_all_bad_sources_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere: no such file or folder"):
        prepare(tmp_path / "nowhere", tmp_path / "out.gfs", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        prepare(tmp_path / "empty", tmp_path / "out.gfs", progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_text("text")
    (bad / ".DS_Store").write_text("junk")
    with pytest.raises(DataError, match="none of its 2 inputs.*junk file 1, not an image 1"):
        prepare(bad, tmp_path / "out.gfs", progress=False)
    assert not (tmp_path / "out.gfs").exists()


def test_parse_resolution_reads_width_x_height() -> None:
    assert parse_resolution("128") == (128, 128)
    assert parse_resolution("64x32") == (32, 64)
    for junk in ("", "abc", "0", "64x", "x64", "-3", "64x0", "1.5"):
        with pytest.raises(ConfigError, match="width x height"):
            parse_resolution(junk)


def test_invalid_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="crop 'zoom'"):
        PrepareOptions(crop="zoom")
    with pytest.raises(ConfigError, match="channels"):
        PrepareOptions(channels=2)
    with pytest.raises(ConfigError, match="background"):
        PrepareOptions(background=(0, 0, 256))


def test_real_cars_jpegs_prepared_at_64_with_pad(tmp_path: Path) -> None:
    folder = tmp_path / "cars"
    with tarfile.open(shared_file(CARS_TAR)) as tf:
        members = []
        for member in tf:
            if member.name.endswith(".jpg"):
                members.append(member)
            if len(members) == 200:
                break
        tf.extractall(folder, members=members, filter="data")
    store, report = _run(folder, tmp_path, resolution=(64, 64), crop="pad")
    assert report.kept == 200 and not report.skipped
    assert store.images.shape == (200, 3, 64, 64)
    assert 30 < store.images.mean() < 220 and store.images.std() > 30  # real photos, not blank frames
