"""Enumerating the inputs of a source: an image folder, a .zip or .tar of images, an IDX file or an .npz.

Folders and archives become a list of `Entry` (one encoded image each, opened lazily) plus the inputs
rejected before decoding (junk, unsafe paths, empty files). IDX and .npz files already hold decoded pixels and
become one `ArraySource`. Nothing here decodes an image; that is the doctor's job (`decode.py`).
"""

from __future__ import annotations

import io
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from ganforge.data.arrays import ArraySource, is_idx, read_idx, read_npz
from ganforge.data.decode import SkipInput
from ganforge.errors import DataError
from ganforge.regular_files import kind_of

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# Files and folders that operating systems and NAS boxes drop beside photos; never images.
_JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx", "@eadir"})
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass(frozen=True)
class Entry:
    """One encoded image in a folder or archive."""

    name: str  # relative, "/"-separated and printable: what reports and the manifest show
    size: int  # bytes on disk or uncompressed in the archive
    label: str | None  # first-level folder (the class for labels="folders"); None for top-level files
    opener: Callable[[], BinaryIO]

    def open(self) -> BinaryIO:
        """The encoded bytes; raises SkipInput("unreadable") when the file vanished or cannot be read."""
        try:
            return self.opener()
        except SkipInput:
            raise
        except (OSError, RuntimeError) as exc:  # RuntimeError: an encrypted zip member
            raise SkipInput("unreadable") from exc


@dataclass
class FileSource:
    """A folder or archive: encoded images to decode plus what was rejected while listing."""

    entries: list[Entry] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"path", "reason"}]
    seen: list[tuple[str, int]] = field(default_factory=list)  # (name, size) of all inputs: the fingerprint

    def skip(self, name: str, reason: str, size: int = 0) -> None:
        self.skipped.append({"path": name, "reason": reason})
        self.seen.append((name, size))

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.seen.append((entry.name, entry.size))


@contextmanager
def open_source(path: Path, max_member_bytes: int) -> Iterator[FileSource | ArraySource]:
    """Lists `path` by kind; archives stay open until the block ends. Unreadable sources raise DataError."""
    if not os.path.lexists(path):
        raise DataError(f"{path}: no such file or folder; pass an image folder, a .zip or .tar of images, "
                        "an IDX file (e.g. train-images-idx3-ubyte.gz) or an .npz.")
    lower = path.name.lower()
    if path.is_dir():
        yield _list_folder(path)
        return
    _check_regular_source(path)
    if lower.endswith(".zip"):
        with _archive_errors(path):
            zf = zipfile.ZipFile(path)
        with zf:
            _refuse_overlapping_entries(path, zf)
            yield _list_zip(zf, max_member_bytes)
    elif lower.endswith(_TAR_SUFFIXES):
        with _archive_errors(path):
            tf = tarfile.open(path)
        with tf:
            with _archive_errors(path):
                listing = _list_tar(tf, max_member_bytes, path)
            yield listing
    elif lower.endswith(".npz"):
        yield read_npz(path)
    elif is_idx(path):
        yield read_idx(path)
    else:
        raise DataError(f"{path}: not a source prepare can read; pass an image folder, a .zip or .tar of "
                        "images, an IDX file or an .npz.")


def _check_regular_source(path: Path) -> None:
    """DataError unless `path` (links followed) is a regular file: opening a FIFO blocks until a writer comes, and
    a device such as /dev/zero never ends (xz reads its zeros as padding, forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror}); pass an image folder, a .zip or .tar of images, "
                        "an IDX file or an .npz.") from exc
    if not stat.S_ISREG(mode):
        raise DataError(f"{path}: not a regular file ({kind_of(mode)}); pass an image folder, a .zip or .tar of "
                        "images, an IDX file or an .npz.")


@contextmanager
def _archive_errors(path: Path) -> Iterator[None]:
    try:
        yield
    # lzma.LZMAError (a damaged .tar.xz) is no OSError, unlike gzip's and bz2's errors.
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise DataError(f"{path}: not a readable archive ({exc}); check the download, or unpack what you can "
                        "and pass the folder.") from exc


def printable(name: str) -> str:
    """A name that JSON and terminals accept: undecodable bytes in POSIX file names become \\xNN. Escapes, not
    U+FFFD, so that names stay apart: Latin-1 class folders caf\\xe9 and caf\\xe8 are two classes, not one."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_junk(part: str) -> bool:
    # Hidden names cover macOS's ._* resource forks, .DS_Store and .git alike.
    return part.startswith(".") or part.lower() in _JUNK_NAMES


def _list_folder(root: Path) -> FileSource:
    source = FileSource()
    visited: set[str] = set()

    def unreadable(exc: OSError) -> None:
        source.skip(printable(os.path.relpath(exc.filename or root, root)), "unreadable")

    # followlinks so symlinked class folders work; the visited set of real paths stops loops.
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        rel_dir = os.path.relpath(dirpath, root)
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames.clear()
            source.skip(printable(rel_dir) + "/", "symlink loop")
            continue
        visited.add(real)
        for name in sorted(d for d in dirnames if _is_junk(d)):
            source.skip(printable(_join(rel_dir, name)) + "/", "junk file")
        dirnames[:] = sorted(d for d in dirnames if not _is_junk(d))
        for name in sorted(filenames):
            _add_file(source, Path(dirpath, name), _join(rel_dir, name))
    source.entries.sort(key=lambda e: e.name)
    if not source.entries:
        _refuse_idx_folder(root, source)
    return source


def _join(rel_dir: str, name: str) -> str:
    return name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")


def _add_file(source: FileSource, path: Path, rel: str) -> None:
    name = printable(rel)
    if _is_junk(path.name):
        return source.skip(name, "junk file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return source.skip(name, "unsupported file type")
    try:
        st = path.stat()  # follows symlinks: a dangling one lands here
    except OSError:
        return source.skip(name, "unreadable")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        return source.skip(name, "not a regular file")
    if st.st_size == 0:
        return source.skip(name, "empty file")
    label = rel.split("/")[0] if "/" in rel else None
    source.add(Entry(name, st.st_size, None if label is None else printable(label), lambda: open(path, "rb")))


def _refuse_idx_folder(root: Path, source: FileSource) -> None:
    idx = sorted(name for name, _ in source.seen if "idx" in name.lower())
    if idx:
        raise DataError(f"{root} holds IDX files ({', '.join(idx)}), not images; pass one file, e.g. "
                        f"`ganforge prepare {root / idx[-1]}`; its labels file is picked up beside it.")


def _archive_label(parts: list[str], strip_top: bool) -> str | None:
    parts = parts[1:] if strip_top else parts
    return parts[0] if len(parts) > 1 else None


def _unsafe(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts


def _member_name(raw: str) -> str:
    """An archive member's path without its "." and empty parts: `./dot.png` and `e/./f.png` are dot.png and
    e/f.png (zip -r . writes such names), not hidden files."""
    return "/".join(part for part in raw.split("/") if part not in ("", "."))


def _single_top_folder(names: list[str]) -> bool:
    """Whether every member sits in one top folder (`cars/…`), which is then not a class but the root."""
    tops = {n.split("/")[0] for n in names}
    return len(tops) == 1 and all("/" in n for n in names)


def _list_zip(zf: zipfile.ZipFile, max_member_bytes: int) -> FileSource:
    source = FileSource()
    infos = [i for i in zf.infolist() if not i.is_dir()]
    strip_top = _single_top_folder([_member_name(i.filename) for i in infos])
    for info in infos:
        name = printable(_member_name(info.filename))
        parts = _member_name(info.filename).split("/")
        if _unsafe(info.filename):
            source.skip(printable(info.filename), "unsafe zip path", info.file_size)
        elif reason := _member_reason(parts, info.file_size, max_member_bytes):
            source.skip(name, reason, info.file_size)
        else:
            label = _archive_label(parts, strip_top)
            opener = _zip_opener(zf, info, max_member_bytes)
            source.add(Entry(name, info.file_size, None if label is None else printable(label), opener))
    return source


_ZIP_LOCAL_HEADER_BYTES = 30  # the fixed part of a local file header, before its name and extra field


def _refuse_overlapping_entries(path: Path, zf: zipfile.ZipFile) -> None:
    """DataError when an entry's local header and compressed bytes run into the next entry's (or the central
    directory): a non-recursive zip bomb lists one deflated kernel thousands of times, and each listing would be
    inflated in full. Python 3.11's zipfile does not check this; honest zip writers never overlap."""
    infos = sorted(zf.infolist(), key=lambda i: i.header_offset)
    ends = [i.header_offset for i in infos[1:]] + [zf.start_dir]
    overlapping = [k for k, info in enumerate(infos) if _entry_end(info) > ends[k]]
    if not overlapping:
        return
    first = overlapping[0]
    # repr escapes newlines and other unprintable characters a member name may hold (zipfile never yields surrogates)
    into = "the central directory" if first == len(infos) - 1 else repr(infos[first + 1].filename)
    raise DataError(f"{path}: {len(overlapping)} of its {len(infos)} zip entries overlap the next one (the first, "
                    f"{infos[first].filename!r} at byte {infos[first].header_offset}, runs into {into}), as in a zip "
                    "bomb, so none was read; zip the images again, or pass their folder.")


def _entry_end(info: zipfile.ZipInfo) -> int:
    """Where an entry's compressed bytes end at the least: its local header (with the name the central directory
    gives; the extra field may differ and is left out) plus its compressed size."""
    name = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    return info.header_offset + _ZIP_LOCAL_HEADER_BYTES + len(name) + info.compress_size


def _member_reason(parts: list[str], size: int, max_member_bytes: int) -> str | None:
    if any(_is_junk(p) for p in parts):
        return "junk file"
    if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return "unsupported file type"
    if size == 0:
        return "empty file"
    if size > max_member_bytes:
        return "oversize archive member"
    return None


def _zip_opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        try:
            with zf.open(info) as member:
                return _bounded(member, limit)
        except (zipfile.BadZipFile, zlib.error, EOFError, lzma.LZMAError) as exc:  # CRC, broken deflate or LZMA
            raise SkipInput("corrupt or truncated") from exc
        except NotImplementedError as exc:  # a compression method zipfile lacks
            raise SkipInput("unreadable") from exc

    return opener


def _bounded(member: IO[bytes], limit: int) -> BinaryIO:
    # The size in an archive header can lie; a zip bomb only shows itself while inflating.
    data = member.read(limit + 1)
    if len(data) > limit:
        raise SkipInput("oversize archive member")
    return io.BytesIO(data)


def _list_tar(tf: tarfile.TarFile, max_member_bytes: int, path: Path) -> FileSource:
    source = FileSource()
    listed = tf.getmembers()  # reads a compressed tar once, front to back
    if _bytes_after_the_end(tf):
        last = f"after {printable(listed[-1].name)!r}" if listed else "at its start"
        raise DataError(f"{path}: a member header {last} is damaged, so the members after it cannot be listed; "
                        "check the download, or unpack what you can and pass the folder.")
    members = [m for m in listed if not m.isdir()]
    strip_top = _single_top_folder([_member_name(m.name) for m in members])
    # Archive order, not sorted: a compressed tar only reads quickly front to back.
    for m in members:
        name = printable(_member_name(m.name))
        parts = _member_name(m.name).split("/")
        if _unsafe(m.name):
            source.skip(printable(m.name), "unsafe tar path", m.size)
        elif not m.isfile():  # links would let one member alias another or point outside
            source.skip(name, "not a regular file", m.size)
        elif reason := _member_reason(parts, m.size, max_member_bytes):
            source.skip(name, reason, m.size)
        else:
            label = _archive_label(parts, strip_top)
            source.add(Entry(name, m.size, None if label is None else printable(label),
                             _tar_opener(tf, m, max_member_bytes)))
    return source


def _bytes_after_the_end(tf: tarfile.TarFile) -> bool:
    """Whether anything but zeros follows where tarfile's listing stopped. It stops at the first header that fails
    its checksum as if the archive ended there: every member after a damaged header would go unseen, unsaid."""
    assert tf.fileobj is not None
    while chunk := tf.fileobj.read(1 << 20):
        if chunk.count(0) != len(chunk):
            return True
    return False


def _tar_opener(tf: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> Callable[[], BinaryIO]:
    def opener() -> BinaryIO:
        try:
            fp = tf.extractfile(member)
            if fp is None:
                raise SkipInput("unreadable")
            return _bounded(fp, limit)
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise SkipInput("corrupt or truncated") from exc

    return opener
