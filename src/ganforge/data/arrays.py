"""Sources that already hold decoded pixels: MNIST-style IDX files (.gz or not) and .npz arrays."""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.data.store import available_ram_bytes
from ganforge.errors import DataError

_IDX_IMAGES_MAGIC = b"\x00\x00\x08\x03"  # unsigned bytes, 3 dimensions: [N, H, W]
_IDX_LABELS_MAGIC = b"\x00\x00\x08\x01"  # unsigned bytes, 1 dimension: [N]
_NPZ_LABEL_KEYS = ("labels", "y")
_NPZ_IMAGE_KEYS = ("images", "x")  # preferred when an .npz holds several image-shaped arrays


@dataclass
class ArraySource:
    """Decoded pixels from an IDX or .npz file."""

    images: np.ndarray  # [N, H, W, C], C in (1, 3, 4); uint8, or float in [0, 1]
    labels: np.ndarray | None  # [N] int64 >= 0, or None when the source has none
    name: str  # file name, for skip reports ("train.npz[17]")
    seen: list[tuple[str, int]]  # (name, size) of the files read, for the fingerprint


def _read_maybe_gz(path: Path, limit: int = -1) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read(limit)
        with open(path, "rb") as f:
            return f.read(limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); download it again.") from exc


def is_idx(path: Path) -> bool:
    if "idx" in path.name.lower():
        return True
    try:
        return _read_maybe_gz(path, 4) == _IDX_IMAGES_MAGIC
    except DataError:
        return False  # not gzip after all: the caller reports an unknown source


def read_idx(path: Path) -> ArraySource:
    """MNIST-style IDX images [N, H, W] uint8, with the sibling labels file when there is one."""
    if _read_maybe_gz(path, 4) == _IDX_LABELS_MAGIC:
        raise DataError(f"{path} is an IDX labels file; pass the images file beside it "
                        "(e.g. train-images-idx3-ubyte.gz).")
    images = _read_idx_array(path, _IDX_IMAGES_MAGIC, 3)
    seen = [(path.name, path.stat().st_size)]
    labels = None
    label_path = idx_label_path(path)
    if label_path is not None:
        labels = _read_idx_array(label_path, _IDX_LABELS_MAGIC, 1).astype(np.int64)
        seen.append((label_path.name, label_path.stat().st_size))
        if len(labels) != len(images):
            raise DataError(f"{label_path} holds {len(labels)} labels but {path} holds {len(images)} images; "
                            "pass a matching pair.")
    return ArraySource(images[..., None], labels, path.name, seen)


def _read_idx_array(path: Path, magic: bytes, ndim: int) -> np.ndarray:
    """The array an IDX file declares, read straight into one buffer of the declared size after checking that
    size (a few MB of gzip can declare gigabytes): never more than one copy of the pixels in memory. A file holding
    more than its header declares is refused: a header that understates a side would shear every image after the
    first (27 rows of 28 read as 28 rows of 27)."""
    compressed = path.name.lower().endswith(".gz")
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            header = f.read(4 + 4 * ndim)
            if header[:4] != magic:
                raise DataError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) (header "
                                f"{header[:4].hex()}); pass an images file such as train-images-idx3-ubyte.gz.")
            if len(header) < 4 + 4 * ndim:
                raise DataError(f"{path}: the IDX header is truncated; download the file again.")
            dims = struct.unpack(f">{ndim}I", header[4:])
            if min(dims) < 1:
                raise DataError(f"{path}: the IDX header declares shape {list(dims)}, with an empty axis; it holds "
                                "no images.")
            check_fits_in_memory(path, int(np.prod(dims, dtype=np.float64)))
            declared = len(header) + int(np.prod(dims, dtype=np.float64))
            if not compressed:
                _refuse_extra_bytes(path, dims, declared, os.fstat(f.fileno()).st_size)
            array = np.empty(dims, np.uint8)
            view, filled = array.reshape(-1).data, 0
            while filled < array.nbytes and (count := f.readinto(view[filled:])):
                filled += count
            if compressed and filled == array.nbytes and f.read(1):  # the size is known only once inflated
                _refuse_extra_bytes(path, dims, declared, None)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); download it again.") from exc
    if filled < array.nbytes:
        raise DataError(f"{path}: truncated, {filled} of {array.nbytes} bytes present; download it again.")
    return array


def _refuse_extra_bytes(path: Path, dims: tuple[int, ...], declared: int, size: int | None) -> None:
    """DataError when an IDX file (`size` bytes, None: more than `declared` once inflated) holds more than the
    `declared` bytes of its header and shape `dims`."""
    if size is not None and size <= declared:
        return  # a short file is reported after reading, with how much of it is there
    holds = "more once uncompressed" if size is None else f"{size:,}"
    raise DataError(f"{path}: its IDX header declares shape {list(dims)}, {declared:,} bytes with the header, but the "
                    f"file holds {holds}; the header or the file is damaged: download it again.")


def check_fits_in_memory(path: Path, nbytes: int) -> None:
    """DataError when a source declares more pixels than half of the free RAM could hold (checked before the
    allocation: a declared size is a claim, not a fact)."""
    free = available_ram_bytes()
    if nbytes > free // 2:
        raise DataError(f"{path} declares {nbytes / 1e9:,.1f} GB of pixels, more than half of the {free / 1e9:,.1f} "
                        "GB of free memory; split it into smaller files, or convert it to an image folder.")


def idx_label_path(images_path: Path) -> Path | None:
    """The labels file beside an IDX images file (train-images-idx3-ubyte.gz -> train-labels-idx1-ubyte.gz)."""
    stem = images_path.name.removesuffix(".gz")
    label_stem = stem.replace("images", "labels").replace("idx3", "idx1")
    if label_stem == stem:
        return None
    for name in (label_stem + ".gz", label_stem):
        candidate = images_path.with_name(name)
        if candidate.is_file():
            return candidate
    return None


def read_npz(path: Path) -> ArraySource:
    """An .npz holding one image array (N,H,W), (N,H,W,C) or (N,C,H,W) and optionally `labels` or `y`. Only
    those two arrays are read, after their declared shapes are checked: other arrays may be of any size."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            headers = {key: _npy_header(npz, key) for key in npz.files}
            shapes = {key: shape for key, (shape, _) in headers.items()}
            label_key = next((k for k in _NPZ_LABEL_KEYS if k in shapes), None)
            candidates = [k for k, shape in shapes.items() if k != label_key and len(shape) in (3, 4)]
            preferred = [k for k in _NPZ_IMAGE_KEYS if k in candidates]
            if len(candidates) != 1 and len(preferred) != 1:
                raise DataError(f"{path}: cannot tell which array holds the images (keys: "
                                f"{', '.join(shapes) or 'none'}); save exactly one [N, H, W(, C)] array, or name it "
                                "`images`, and labels as `labels`.")
            key = preferred[0] if len(preferred) == 1 else candidates[0]
            check_fits_in_memory(path, int(np.prod(shapes[key], dtype=np.float64)) * headers[key][1].itemsize)
            if label_key is not None:  # before loading: a header may declare 10**12 labels
                _check_label_header(path, label_key, *headers[label_key], shapes[key][0])
            raw_images = npz[key]
            raw_labels = None if label_key is None else npz[label_key]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable .npz ({exc}); save it with numpy.savez.") from exc
    images = _channels_last(path, key, raw_images)
    labels = None if raw_labels is None else _npz_labels(path, label_key or "", raw_labels, len(images))
    return ArraySource(images, labels, path.name, [(path.name, path.stat().st_size)])


def _npy_header(npz: Any, key: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(shape, dtype) as an .npz member declares them in its .npy header, read without loading the array."""
    with npz.zip.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"array {key} is in .npy format {version}, which is not read here")
        shape, _, dtype = readers[version](member)
    return tuple(shape), dtype


def _check_label_header(path: Path, key: str, shape: tuple[int, ...], dtype: np.dtype[Any], count: int) -> None:
    """DataError unless the labels array declares one number per image ((N,), (N, 1) or (1, N)), so it is never
    larger than the images' own count of 8-byte values."""
    if shape not in ((count,), (count, 1), (1, count)):
        raise DataError(f"{path}: `{key}` declares shape {shape} but there are {count} images; save one label per "
                        "image.")
    if dtype.kind not in "iubf":
        raise DataError(f"{path}: `{key}` must hold class indices 0, 1, 2 ...; found {dtype} values.")


def _channels_last(path: Path, key: str, images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise DataError(f"{path}: array `{key}` is {images.dtype}; save uint8 [0, 255] or float [0, 1] "
                        "pixels.")
    if images.dtype != np.uint8 and images.size:
        low, high = float(np.nanmin(images)), float(np.nanmax(images))  # NaN images are skipped one by one
        if low < 0 or high > 1:
            raise DataError(f"{path}: float array `{key}` spans [{low:g}, {high:g}]; float pixels must be in "
                            "[0, 1] (divide 0..255 values by 255, map [-1, 1] with (x + 1) / 2).")
    if images.ndim == 3:
        return _with_pixels(path, key, images[..., None], images.shape)
    last, first = images.shape[3] in (1, 3, 4), images.shape[1] in (1, 3, 4)
    if last != first:
        return _with_pixels(path, key, images if last else images.transpose(0, 2, 3, 1), images.shape)
    raise DataError(f"{path}: array `{key}` has shape {images.shape}; the channel axis (1, 3 or 4 channels) "
                    "must be unambiguous: save (N, H, W, C) or (N, C, H, W).")


def _with_pixels(path: Path, key: str, images: np.ndarray, saved: tuple[int, ...]) -> np.ndarray:
    """[N, H, W, C] images, refused when H or W is 0 (as IDX refuses an empty axis): a store of 0-px images is
    one its own reader refuses. `saved`: the shape as the file holds it, for the message."""
    if min(images.shape[1:3]) < 1:
        raise DataError(f"{path}: array `{key}` has shape {saved}, with an empty height or width; it holds no "
                        "pixels: save images of at least 1x1 px.")
    return images


def _npz_labels(path: Path, key: str, labels: np.ndarray, count: int) -> np.ndarray:
    labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    if labels.shape != (count,):
        raise DataError(f"{path}: `{key}` has shape {labels.shape} but there are {count} images; save one "
                        "label per image.")
    as_int = labels.astype(np.int64) if labels.dtype.kind in "iubf" else None
    fractional = as_int is not None and labels.dtype.kind == "f" and not np.array_equal(as_int, labels)
    if as_int is None or fractional or (as_int < 0).any():
        raise DataError(f"{path}: `{key}` must hold class indices 0, 1, 2 ...; found {labels.dtype} values.")
    return as_int
