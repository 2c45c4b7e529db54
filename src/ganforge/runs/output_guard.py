"""Where a flag that writes (`--out`, `--json`) may write: never over a file ganforge did not write for that
purpose, never into a run, export or detector folder unless that is the command's own place there, and never
into (or around) the inputs the command reads.

`evaluate --json RUN/config.json` once replaced a run's config with scores; `translate TR D/in --out D` wrote over
the inputs; `detect attack --out imgs` put its figures among the real images. Every command checks its outputs
here before loading a network, so a refusal leaves every file as it was. Paths are compared with their symlinks
followed. What ganforge wrote is told by its mark (images.MARK_KEY in a PNG, the GIF comment) or, for a JSON
report, by its shape; an earlier output of the same command may be replaced, anything else is refused.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from PIL import Image

from ganforge.errors import ConfigError
from ganforge.images import MARK_KEY, MARK_VALUE
from ganforge.regular_files import MAX_JSON_BYTES, kind_of, read_json
from ganforge.runs.folder import CONFIG_FILE

Recognise = Callable[[Path], bool]  # whether an existing file is an earlier output of this kind


def check_output_file(path: Path, flag: str, ours: Recognise, *, home: Path | None = None,
                      inputs: Sequence[Path] = ()) -> None:
    """Refuse (ConfigError, one line) to write the file `path` named by `flag` unless it is safe: not a folder,
    not inside a ganforge folder (except under `home`, the command's own place), not in or around `inputs`, and
    not an existing file that `ours` does not recognise."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name a file")
    _creatable(path.parent, flag, path)
    _outside_ganforge_folders(path, flag, home)
    _outside_inputs(path, flag, inputs)
    _replaceable(path, flag, ours)


def check_output_folder(folder: Path, flag: str, names: Iterable[str], ours: Recognise, *,
                        home: Path | None = None, inputs: Sequence[Path] = (), around_inputs: bool = False) -> None:
    """The same for a folder the command fills with `names` (relative paths): the folder itself is checked, and
    each of those files that exists already must be one `ours` recognises. `around_inputs`: also refuse a folder
    that holds an input (translate mirrors its inputs' names, so outputs could land on them)."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise ConfigError(f"{flag} {folder} is a file; name a folder")
    _creatable(folder, flag, folder)
    _outside_ganforge_folders(folder, flag, home)
    _outside_inputs(folder, flag, inputs, around_inputs)
    for name in names:
        _replaceable(folder / name, flag, ours)


def check_outside_ganforge_folders(path: Path, flag: str, *, home: Path | None = None) -> None:
    """Only the folder check, for writers that judge existing files themselves (prepare's store, export, a
    detector folder): refuse a `path` inside a run, export or detector folder unless it is under `home`, or in a
    folder that cannot be made or written (`path` itself when it is a folder already: the writer writes in it)."""
    _creatable(path if path.is_dir() else path.parent, flag, path)
    _outside_ganforge_folders(path, flag, home)


def ganforge_folder(path: Path) -> tuple[Path, str] | None:
    """(folder, "run" | "export" | "detector") for the nearest folder at or above `path` (symlinks followed)
    that ganforge made, by its config.json; None when there is none."""
    for folder in (_real(path), *_real(path).parents):
        kind = _folder_kind(folder)
        if kind is not None:
            return folder, kind
    return None


def _folder_kind(folder: Path) -> str | None:
    config = folder / CONFIG_FILE
    try:
        if not stat.S_ISREG(os.stat(config).st_mode):
            return None
        record = read_json(config, MAX_JSON_BYTES)
    except (OSError, ValueError):
        return None  # no config.json, or someone else's: not a folder ganforge keeps
    if not isinstance(record, dict):
        return None
    if "ganforge_detector" in record:
        return "detector"
    if "ganforge_export" in record:
        return "export"
    if isinstance(record.get("train"), dict) and "ganforge_version" in record:
        return "run"
    return None


def _outside_ganforge_folders(path: Path, flag: str, home: Path | None) -> None:
    owner = ganforge_folder(path)
    if owner is None or (home is not None and _within(path, home)):
        return
    folder, kind = owner
    if folder == _real(path):
        article = "an" if kind == "export" else "a"
        raise ConfigError(f"{flag} {path} is {article} {kind} folder, which ganforge reads and keeps; name a new one")
    raise ConfigError(f"{flag} {path} is inside the {kind} folder {folder}, which ganforge reads and keeps; write it "
                      f"elsewhere, e.g. {flag} {folder.parent / path.name}")


def _outside_inputs(path: Path, flag: str, inputs: Sequence[Path], around: bool = False) -> None:
    for source in inputs:
        if _within(path, source) and source.is_dir():
            beside = _real(source).parent / f"{_real(source).name}-out"
            raise ConfigError(f"{flag} {path} is inside the inputs folder {source}, which this command reads; write "
                              f"it elsewhere, e.g. {flag} {beside}")
        if _real(path) == _real(source):
            raise ConfigError(f"{flag} {path} is the input {source}, which this command reads; write it elsewhere")
        if around and _within(source, path):
            raise ConfigError(f"{flag} {path} holds the input {source}, which this command reads; name a folder "
                              "apart from the inputs")


def _creatable(folder: Path, flag: str, named: Path) -> None:
    """Refuse now, not after the command's work, a `folder` that cannot be made or written: its nearest existing
    ancestor is a file, or a folder this user may not write. `..` stays in the path, so the system resolves it
    after the symlinks before it, as the write will (`link/..` is the link target's parent)."""
    absolute = Path(folder).absolute()
    ancestor = absolute
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if os.path.islink(ancestor) and not ancestor.exists():
        raise ConfigError(f"{flag} {named}: {ancestor} is a broken symlink (its target is missing or loops), so "
                          "nothing can be written there; name a path in a folder")
    if not ancestor.is_dir():
        raise ConfigError(f"{flag} {named}: {ancestor} is a file, not a folder, so nothing can be written there; "
                          "name a path in a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        if ancestor == absolute:
            raise ConfigError(f"{flag} {named}: this user may not write in {ancestor}; name a path in a folder you "
                              "can write")
        raise ConfigError(f"{flag} {named}: this user may not create folders in {ancestor}; name a path in a "
                          "folder you can write")


def _replaceable(path: Path, flag: str, ours: Recognise) -> None:
    if not os.path.lexists(path):
        return
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0  # a dangling symlink: writing would create its target somewhere else
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{flag}: {path} exists and is not a regular file ({kind_of(mode)}); choose another name")
    if not ours(path):
        raise ConfigError(f"{flag}: {path} exists and ganforge did not write it as this command's output; choose "
                          "another name, or move that file away first")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, folder: Path) -> bool:
    return _real(path).is_relative_to(_real(folder))


# What counts as an earlier output, per kind of file.

def ganforge_png(path: Path) -> bool:
    """A PNG carrying ganforge's mark (or, from before the mark, the "run" chunk every tool's PNG had)."""
    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {})
            return image.format == "PNG" and (text.get(MARK_KEY) == MARK_VALUE or "run" in text)
    except Exception:  # Pillow raises many types for what is not an image: none of them is ours
        return False


def ganforge_animation(path: Path) -> bool:
    """A GIF or MP4 `interpolate` wrote: the GIF's comment, or the MP4's comment atom near either end."""
    try:
        if path.suffix.lower() == ".gif":
            with Image.open(path) as image:
                return image.format == "GIF" and image.info.get("comment") == MARK_VALUE.encode()
        with open(path, "rb") as f:
            head = f.read(1 << 20)
            f.seek(max(0, os.fstat(f.fileno()).st_size - (1 << 20)))
            return MARK_VALUE.encode() in head + f.read()
    except Exception:
        return False


def json_report(is_report: Callable[[object], bool]) -> Recognise:
    """A JSON file whose value `is_report` accepts (the shape of the command's own report)."""
    def ours(path: Path) -> bool:
        try:
            return is_report(read_json(path))
        except (OSError, ValueError):
            return False
    return ours


def any_of(*recognisers: Recognise) -> Recognise:
    return lambda path: any(r(path) for r in recognisers)
