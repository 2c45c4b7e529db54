"""The small real dataset shipped inside the package, so `ganforge train` runs with no flags."""

from __future__ import annotations

import gzip
import os
import shutil
from importlib import resources
from pathlib import Path

from ganforge.data.store import Store
from ganforge.whole_files import written_whole

EMBEDDED_NAME = "mnist10k"


def cache_dir() -> Path:
    """$GANFORGE_CACHE, else $XDG_CACHE_HOME/ganforge, else ~/.cache/ganforge."""
    if os.environ.get("GANFORGE_CACHE"):
        return Path(os.environ["GANFORGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganforge"


def embedded_store_path() -> Path:
    """The embedded MNIST store, unpacked once into the cache dir (atomically, so a kill leaves no half file)."""
    target = cache_dir() / f"{EMBEDDED_NAME}.gfs"
    packed = resources.files("ganforge") / "embedded" / f"{EMBEDDED_NAME}.gfs.gz"
    if target.exists():
        return target
    with (written_whole(target) as temporary, packed.open("rb") as raw, gzip.GzipFile(fileobj=raw) as src,
          open(temporary, "wb") as dst):
        shutil.copyfileobj(src, dst)
    return target


def open_training_store(data: str) -> Store:
    """The store a run trains on: `data` (from `ganforge prepare`), or the embedded MNIST sample when empty."""
    if data:
        return Store(data)
    return Store(embedded_store_path(), name="mnist")  # run folders read "00001-dcgan-mnist"
