"""Reading what a user hands in without hanging or running out of memory: only regular files are opened, and
JSON records (a run's, an export's or a detector's config.json, a log row) are read with a size limit.

Opening a FIFO for reading blocks until a writer comes, forever if none does; a device such as /dev/zero never
ends. So a file is opened non-blocking and checked with fstat on the open descriptor (no race between the check
and the open), and a record larger than any ganforge writes is refused before it is parsed. Errors are OSError
or ValueError, which every reader already turns into its own one-line message.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

# The largest config.json ganforge writes holds a store's label names: a few hundred KB for ten thousand classes.
MAX_JSON_BYTES = 4 << 20


class NotARegularFile(OSError):
    """A path that names a FIFO, a device, a socket or a folder where a file was expected."""

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind_of(mode)})", str(path))

    def __str__(self) -> str:
        return str(self.strerror)


def kind_of(mode: int) -> str:
    """'a FIFO', 'a folder', ...: what a non-regular file is, for messages."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def check_regular(path: Path) -> None:
    """Raise NotARegularFile unless `path` (its symlinks followed) is a regular file; FileNotFoundError if absent.
    For readers that must hand a path to a library (safetensors): the check costs no open."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotARegularFile(path, mode)


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for binary reading, once fstat on the open descriptor says it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; ValueError naming the limit for a larger one."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit >> 20} MB, far more than ganforge writes there")
    return data


def parse_json(text: str | bytes) -> Any:
    """json.loads, with nesting too deep for the parser (100,000 '[') a ValueError like any other bad JSON, and
    every error worded without the file's bytes: a path that names no JSON file may name someone's secret, and
    UnicodeDecodeError would quote its bytes ("can't decode byte 0xff")."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply to be a ganforge record") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is not UTF-8 text (byte {exc.start} is not)") from None
    except json.JSONDecodeError as exc:  # exc.msg names the fault, never the text ("Expecting value")
        raise ValueError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def read_json(path: Path, limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in the regular file `path` (UTF-8, at most `limit` bytes). OSError (NotARegularFile for a
    FIFO, device or folder) when it cannot be read; ValueError when it is too large or not JSON."""
    return parse_json(read_limited(path, limit))


def read_json_lines(path: Path, limit: int = 256 << 20) -> list[Any]:
    """The JSON values of a log's lines, up to the first that does not parse (the line a kill cut short)."""
    rows = []
    for line in read_limited(path, limit).decode("utf-8", errors="replace").splitlines():
        try:
            rows.append(parse_json(line))
        except ValueError:
            break
    return rows


def append_regular(path: Path, text: str) -> None:
    """Append `text` (UTF-8) to the regular file `path`, created when missing. A FIFO or a device there is
    NotARegularFile: opening a FIFO to write blocks until a reader comes, and a device swallows the rows."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666)  # as open(), less umask
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads: non-blocking, the open fails instead of waiting
            raise NotARegularFile(path, os.stat(path).st_mode) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, mode)
        data = text.encode("utf-8")
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
