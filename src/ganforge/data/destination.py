"""Where `prepare` may write its store: never into the source it reads, never over a file that is not a store.

`--out data/000.png` once replaced a source image with a store. The check runs before the source is opened, so a
refusal leaves every file as it was. Paths are compared after following symlinks, so a link cannot smuggle the
store into the source. (A class folder that is itself a symlink into another place is not followed here.)
"""

from __future__ import annotations

import os
from pathlib import Path

from ganforge.data.arrays import idx_label_path, is_idx
from ganforge.data.store import STORE_SUFFIX, is_store
from ganforge.errors import DataError


def check_destination(source: Path, out: Path, force: bool = False) -> None:
    """Raise DataError unless writing the store `out` is safe: not a folder, not inside or equal to a file of
    `source`, and not an existing file other than a ganforge store (that one only with `force`)."""
    if out.is_dir():
        raise DataError(f"{out} is a folder; pass the store's file name, e.g. {out / ('data' + STORE_SUFFIX)}.")
    real_out, real_source = _real(out), _real(source)
    if source.is_dir() and real_out.is_relative_to(real_source):
        raise DataError(f"{out} is inside the source folder {source}, which prepare reads; write the store outside "
                        f"it, e.g. --out {_beside(real_source, real_out)} (--force does not change this).")
    if not source.is_dir():
        labels = idx_label_path(source) if source.is_file() and is_idx(source) else None
        for part, what in ((source, "the source"), (labels, "the labels file of the source")):
            if part is not None and real_out == _real(part):
                raise DataError(f"{out} is {what} {part}, which prepare reads; write the store elsewhere, "
                                f"e.g. --out {_beside(real_source, real_out)} (--force does not change this).")
    if os.path.lexists(out) and not force and not is_store(out):
        raise DataError(f"{out} exists and is not a ganforge store; pass another --out, or --force to replace it.")


def _real(path: Path) -> Path:
    """Absolute, with every symlink that exists followed (the file itself need not exist)."""
    return Path(os.path.realpath(path))


def _beside(real_source: Path, real_out: Path) -> Path:
    """A store name next to the source: data/ -> data.gfs, train-images-idx3-ubyte.gz -> train-images-idx3-ubyte.gfs."""
    stem = real_source.name.split(".")[0] or "data"
    suggestion = real_source.parent / (stem + STORE_SUFFIX)
    return suggestion if suggestion != real_out else real_source.parent / f"{stem}-prepared{STORE_SUFFIX}"
