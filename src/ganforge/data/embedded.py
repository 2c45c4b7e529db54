"""The small real dataset shipped inside the package, so `ganforge train` runs with no flags."""

from __future__ import annotations

import gzip
import os
import shutil
from importlib import resources
from pathlib import Path

from ganforge.data.store import Store
from ganforge.errors import DataError
from ganforge.whole_files import written_whole

EMBEDDED_NAME = "mnist10k"


def cache_dir() -> Path:
    """$GANFORGE_CACHE, else $XDG_CACHE_HOME/ganforge, else ~/.cache/ganforge."""
    if os.environ.get("GANFORGE_CACHE"):
        return Path(os.environ["GANFORGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganforge"


def embedded_store_path(fresh: bool = False) -> Path:
    """The embedded MNIST store, unpacked once into the cache dir (atomically, so a kill leaves no half file).
    `fresh`: unpacked again over whatever is there (a damaged copy)."""
    target = cache_dir() / f"{EMBEDDED_NAME}.gfs"
    if fresh or not target.exists():
        _unpack(target)
    return target


def _unpack(target: Path) -> None:
    packed = resources.files("ganforge") / "embedded" / f"{EMBEDDED_NAME}.gfs.gz"
    try:
        with (written_whole(target) as temporary, packed.open("rb") as raw, gzip.GzipFile(fileobj=raw) as src,
              open(temporary, "wb") as dst):
            shutil.copyfileobj(src, dst)
    except OSError as exc:  # a read-only cache, a full disk, a folder in the file's place
        raise DataError(f"{target}: the embedded MNIST sample cannot be unpacked there ({exc.strerror or exc}); "
                        "remove what is in its place or make its folder writable, or set GANFORGE_CACHE to another "
                        "folder.") from exc


def open_training_store(data: str) -> Store:
    """The store a run trains on: `data` (from `ganforge prepare`), or the embedded MNIST sample when empty."""
    if data:
        return Store(data)
    return _embedded_store()


def _embedded_store() -> Store:
    """The embedded sample, unpacked again when the cached copy is damaged or edited: ganforge wrote that file, not
    the user, so telling them to prepare it again would be advice they cannot follow. Hashing its 8 MB takes
    milliseconds."""
    path = embedded_store_path()
    try:
        store = Store(path, name="mnist")  # run folders read "00001-dcgan-mnist"
        store.verify_content()
        return store
    except DataError:
        return Store(embedded_store_path(fresh=True), name="mnist")
