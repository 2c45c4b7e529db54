"""Where a store's tensors lie in its file, read from its header and checked against the file before any byte of
pixels is mapped: a store is user data, and an edited or damaged header must give one clear error, never a
wrong read (offsets into the header, labels aliased onto pixels, shapes the file cannot hold).

A two-sided store (image-to-image translation) adds a ``targets`` tensor, the B side, beside ``images`` (the A
side); its manifest says whether the sides are aligned row by row ("paired") or independent ("unpaired")."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganforge.errors import DataError
from ganforge.regular_files import open_regular, parse_json
from ganforge.terminal_text import shown_value

FORMAT_VERSION = 1  # the newest store format this reader knows; the writer records it in each manifest
MAX_HEADER_BYTES = 256 << 20
MAX_SIDE = 1 << 16  # pixels per side: far beyond any GAN, small enough that shapes cannot overflow
_SHOWN = {"images": "the pixels", "labels": "the labels", "targets": "the B-side pixels"}
PAIRINGS = ("none", "paired", "unpaired")  # one image array; two aligned arrays; two independent arrays


@dataclass(frozen=True)
class StoreLayout:
    manifest: dict[str, Any]  # the manifest's JSON object, its fields type-checked
    images_offset: int  # absolute byte offsets in the file
    labels_offset: int
    targets_offset: int | None = None  # the B side's pixels in a two-sided store


def read_layout(path: Path) -> StoreLayout:
    """The checked layout of the store at `path`; DataError naming the file and the fault otherwise."""
    try:
        return _read(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError, struct.error) as exc:
        raise DataError(f"{path} is not a readable ganforge store ({exc}); prepare it again with `ganforge "
                        "prepare`.") from exc


def _read(path: Path) -> StoreLayout:
    with open_regular(path) as f:  # a FIFO or device in place of a store must not block or stream forever
        size = os.fstat(f.fileno()).st_size
        (header_len,) = struct.unpack("<Q", f.read(8))
        if not 2 <= header_len <= min(MAX_HEADER_BYTES, size - 8):
            # The length is the file's first bytes: never shown, a file that is no store may be anyone's secret.
            raise ValueError(f"its first 8 bytes give a header length that does not fit a {size}-byte file")
        header = parse_json(f.read(header_len))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    manifest = parse_json(header["__metadata__"]["manifest"])
    _check_format_version(path, manifest)
    count, channels, height, width = _side(manifest, "")
    names = manifest.get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("label_names is not a list of names")
    if not isinstance(manifest.get("fingerprint"), str):
        raise ValueError("the manifest has no content fingerprint")
    _check_skipped(manifest.get("skipped"))
    data_size = size - 8 - header_len
    images = _span(header, "images", "U8", [count, channels, height, width], 1, data_size)
    labels = _span(header, "labels", "I64", [count], 8, data_size)
    spans = {"images": images, "labels": labels}
    pairing = manifest.get("pairing", "none")
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r} is not one of {', '.join(PAIRINGS)}")
    _check_val_count(manifest, "val_count", count)
    if pairing != "none":
        count_b, channels_b, height_b, width_b = _side(manifest, "_b")
        if pairing == "paired" and (count_b != count or manifest.get("val_count_b", 0) != manifest.get("val_count", 0)):
            raise ValueError(f"a paired store's sides must hold as many images (A {count}, B {count_b}) and "
                             "hold out the same rows")
        _check_val_count(manifest, "val_count_b", count_b)
        spans["targets"] = _span(header, "targets", "U8", [count_b, channels_b, height_b, width_b], 1, data_size)
    names = sorted(spans)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]:
                raise ValueError(f"{_SHOWN[b]} overlap {_SHOWN[a]}")
    targets = spans.get("targets")
    return StoreLayout(manifest, 8 + header_len + images[0], 8 + header_len + labels[0],
                       None if targets is None else 8 + header_len + targets[0])


def _check_format_version(path: Path, manifest: dict[str, Any]) -> None:
    """DataError for a store written by a newer ganforge: its layout may mean what this reader cannot know, so it is
    refused with the fix (upgrade), not misread. Stores from before the field was written read as version 1."""
    version = _whole(manifest, "format_version") if "format_version" in manifest else FORMAT_VERSION
    if version < 1:
        raise ValueError(f"manifest format_version {version} is not a version")
    if version > FORMAT_VERSION:
        raise DataError(f"{path} is a store of format version {version}, written by a newer ganforge; this one reads "
                        f"versions up to {FORMAT_VERSION}: upgrade ganforge to open it, or prepare it again with this "
                        "one.")


def _check_skipped(skipped: Any) -> None:
    """The inputs prepare rejected: absent (None), or a list of {"path", "reason"} strings that doctor counts and
    shows."""
    if skipped is None:
        return
    if not isinstance(skipped, list) or not all(
            isinstance(s, dict) and isinstance(s.get("path"), str) and isinstance(s.get("reason"), str)
            for s in skipped):
        raise ValueError("the manifest's skipped is not a list of {path, reason} records")


def _side(manifest: dict[str, Any], suffix: str) -> tuple[int, int, int, int]:
    """(count, channels, height, width) of the A side (suffix "") or the B side ("_b"), checked."""
    count, channels, height, width = (_whole(manifest, key + suffix) for key in ("count", "channels", "height",
                                                                                 "width"))
    side = " on the B side" if suffix else ""
    if count < 1:
        raise ValueError(f"it holds no images{side}")
    if problem := shape_problem(channels, height, width, side):
        raise ValueError(problem)
    return count, channels, height, width


def shape_problem(channels: int, height: int, width: int, side: str = "") -> str | None:
    """Why a store cannot hold images of this shape (`side`: " on the B side" or ""); None when it can. The
    writer checks it too, so nothing writes a store that this reader refuses."""
    if channels not in (1, 3) or not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        return f"image shape {channels}x{height}x{width}{side} is not 1 or 3 channels of 1-{MAX_SIDE} px"
    return None


def _check_val_count(manifest: dict[str, Any], key: str, count: int) -> None:
    """Held-out rows (the last `key` of a side) must leave at least one row to train on."""
    held_out = _whole(manifest, key) if key in manifest else 0
    if not 0 <= held_out < count:
        raise ValueError(f"{key} {held_out} leaves no training rows of {count}")


def _whole(record: dict[str, Any], key: str) -> int:
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"manifest {key} is not a whole number: {shown_value(value)}")
    return value


def _span(header: dict[str, Any], name: str, dtype: str, shape: list[int], item_bytes: int,
          data_size: int) -> tuple[int, int]:
    """The [start, end) of tensor `name` in the data section, checked against its dtype, shape and the file."""
    entry = header[name]
    if entry["dtype"] != dtype or entry["shape"] != shape:
        raise ValueError(f"tensor {name} is {entry['dtype']} {entry['shape']}, the manifest says {dtype} {shape}")
    start, end = entry["data_offsets"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise ValueError(f"tensor {name} has offsets that are not whole numbers")
    expected = item_bytes
    for side in shape:
        expected *= side
    if not 0 <= start <= end <= data_size or end - start != expected:
        raise ValueError(f"tensor {name} at bytes {start}-{end} does not hold its {expected} bytes inside the "
                         f"{data_size}-byte data section (a truncated or edited file)")
    return start, end
