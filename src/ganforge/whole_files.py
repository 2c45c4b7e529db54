"""Files written whole or not at all: an output replaced only once its new content is complete, so a kill, a full
disk or a file-size limit mid-write leaves the earlier file (or none), never a truncated one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_for(path: Path, pid: int | None = None) -> Path:
    """Where `written_whole` writes `path` first: hidden, beside it, named for the writing process (so a leftover
    of a killed writer can be told from one being written) and ending in `path`'s suffix, so that writers that pick
    a format by extension (Pillow, ffmpeg) write the same format."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid() if pid is None else pid}{path.suffix}")


@contextmanager
def written_whole(path: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` for the block to write; moved over `path` when the block ends, removed if it
    raises. The temporary is created afresh, never opened through whatever a hostile folder put at its name (a
    link to another file). `durable`: flushed to the disk before the move, and the move after it (checkpoints,
    stores: what a power cut must not take)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_for(path)
    try:
        temporary.unlink(missing_ok=True)  # a link planted there goes, not the file it points to
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield temporary
        if durable:
            _fsync(temporary)
        os.replace(temporary, path)
        if durable:
            _fsync(path.parent)
    except OSError as error:
        if error.filename in (temporary, str(temporary)):  # the user named `path`, never the hidden temporary
            error.filename = str(path)
        raise
    finally:
        temporary.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # a file or a folder: fsync needs no write access
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
