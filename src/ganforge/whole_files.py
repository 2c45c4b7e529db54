"""Files written whole or not at all: an output replaced only once its new content is complete, so a kill, a full
disk or a file-size limit mid-write leaves the earlier file (or none), never a truncated one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` for the block to write; moved over `path` when the block ends, removed if it
    raises. The temporary keeps `path`'s suffix, so writers that pick a format by extension (Pillow, ffmpeg)
    write the same format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
