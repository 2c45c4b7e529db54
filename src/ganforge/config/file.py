"""`ganforge train --config FILE`: a run's settings from a file, the flags on the line over them.

FILE is JSON, TOML or YAML (by its suffix; YAML needs PyYAML), shaped as the run folder's config.json records
a run: top-level settings (`kimg`, `batch`, ...) and the nested `model`, `loss` and `augment` tables. A run's own
config.json works as it is, to train the same run again. Every key must name a setting; an unknown one is refused
by name with the file, so a typo never trains silently with a default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ganforge.config.registry import settings
from ganforge.config.setting import SettingPath
from ganforge.errors import ConfigError
from ganforge.regular_files import parse_json, read_limited

# What config.json records beside the settings: set from the store when the run starts, not chosen by the user.
FROM_THE_STORE = frozenset({("model", "num_classes"), ("model", "input_shape")})


def settings_from_file(path: Path) -> dict[SettingPath, Any]:
    """The settings FILE gives, by path (as flags give them)."""
    raw = _read(path)
    if "ganforge_version" in raw and isinstance(raw.get("train"), dict):  # a run folder's config.json
        raw = raw["train"]
    known = {info.path for info in settings()}
    values: dict[SettingPath, Any] = {}
    for key, value in _flatten(raw, ()):
        if key in FROM_THE_STORE:
            continue
        if key not in known:
            raise ConfigError(f"{path}: {'.'.join(key)} is not a setting of `ganforge train` (see `ganforge train "
                              "--help`; nested ones go in tables, e.g. model.g_width)")
        values[key] = value
    return without_planned_length(values)


def without_planned_length(values: dict[SettingPath, Any]) -> dict[SettingPath, Any]:
    """A whole run's settings as overrides: a budget run's --kimg was its plan, so the budget is what to repeat
    (given both, a new run refuses them)."""
    if values.get(("minutes",), 0):
        values.pop(("kimg",), None)
    return values


def _read(path: Path) -> dict[str, Any]:
    try:
        data = read_limited(path)  # a FIFO or /dev/zero as FILE must not block or fill memory
    except OSError as error:
        raise ConfigError(f"--config {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise ConfigError(f"--config {path}: {error}; a settings file is a few KB") from None
    try:
        text = data.decode("utf-8")
        if path.suffix.lower() == ".toml":
            raw = _toml(text, path)
        elif path.suffix.lower() in (".yaml", ".yml"):
            raw = _yaml(text, path)
        else:
            raw = parse_json(text)
    except UnicodeDecodeError as error:
        raise ConfigError(f"--config {path} is not UTF-8 text (byte {error.start} is not); pass a JSON, TOML or "
                          "YAML file") from None
    except ValueError as error:  # each parser's complaint and where, never the file's text (see _toml)
        raise ConfigError(f"--config {path} cannot be read: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path} must hold a table of settings, not {type(raw).__name__}")
    return raw


def _toml(text: str, path: Path) -> Any:
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise ConfigError(f"--config {path}: reading TOML on Python 3.10 needs tomli (pip install tomli); "
                              "JSON needs nothing") from None
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as error:
        # Where, not what: FILE may be anything (a key file, a password list), and tomllib quotes the character
        # it stopped at, PyYAML the whole line.
        where = re.search(r"line \d+, column \d+", str(error))
        raise ValueError("not valid TOML" + (f" (at {where.group()})" if where else "")) from None


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"--config {path}: reading YAML needs PyYAML (pip install pyyaml); JSON and TOML need "
                          "nothing") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (at line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValueError(f"not valid YAML{where}") from None
    except RecursionError:
        raise ValueError("nested too deeply to be a table of settings") from None


def _flatten(raw: dict[str, Any], prefix: SettingPath) -> list[tuple[SettingPath, Any]]:
    pairs: list[tuple[SettingPath, Any]] = []
    for key, value in raw.items():
        path = (*prefix, str(key))
        if isinstance(value, dict):
            pairs += _flatten(value, path)
        else:
            pairs.append((path, value))
    return pairs
