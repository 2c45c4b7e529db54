"""Every setting of TrainConfig (or of another settings dataclass) as data: its flag, help, default text and resume
rule. The `train` command's options, its `--help`, the resume rule, `--dry-run` and README's option table read
this list, so a setting written once in config/__init__.py appears everywhere the same.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from ganforge.config import TrainConfig
from ganforge.config.setting import Kind, SettingPath, flag_of_field, kind_of_field, show_value
from ganforge.errors import ConfigError


@dataclass(frozen=True)
class SettingInfo:
    """What `setting()` recorded for one field, with the field's place in TrainConfig and its default."""

    path: SettingPath  # ("model", "g_width")
    flag: str | None  # "--g-width"; None for a config-only field
    default: Any
    help: str  # one sentence
    fixed_on_resume: bool
    kind: Kind  # how the flag's text is parsed
    choices: tuple[str, ...] | None
    default_text: str  # the default as `--help` and README show it: 64, 2e-4, on, "embedded MNIST" for ""

    @property
    def key(self) -> str:
        """The name in config.json and in `changed_settings`, e.g. "model.g_width"."""
        return ".".join(self.path)


def settings(config_class: type = TrainConfig) -> list[SettingInfo]:
    """Every leaf setting of `config_class` (TrainConfig unless another settings dataclass, e.g. prepare's
    PairOptions, is named), in field order (nested configs in place)."""
    return list(_settings(config_class))


def setting_info(path: SettingPath) -> SettingInfo:
    """The setting at `path`; KeyError naming the path when there is none (a bug in the caller)."""
    try:
        return _settings_by_path()[tuple(path)]
    except KeyError:
        raise KeyError(f"TrainConfig has no setting {'.'.join(path)}") from None


def flag_of(path: tuple[str, ...]) -> str:
    """The name a user sets `path` by, for messages: its flag ("--g-width", "--cond"), or for a setting without
    one its config.json key ("model.num_classes")."""
    info = setting_info(path)
    return info.flag or info.key


def fixed_on_resume_flags(given_paths: Iterable[SettingPath]) -> list[str]:
    """The flags among `given_paths` that a resumed run cannot change, sorted."""
    return sorted({flag_of(path) for path in given_paths if setting_info(path).fixed_on_resume})


def check_resume_overrides(given_paths: Iterable[SettingPath], also_given: Iterable[str] = ()) -> None:
    """Refuse, in one line, settings that define a resumed run's starting point (data, architecture, seed).

    `also_given`: flags outside TrainConfig that would change it too, e.g. "--preset".
    """
    refused = fixed_on_resume_flags(given_paths) + list(also_given)
    if refused:
        raise ConfigError(f"--resume continues a run as it was set up; drop {', '.join(refused)} (they cannot "
                          "change mid-run)")


def describe_config(config: TrainConfig) -> str:
    """One line per setting, `--flag value`, with the default beside each value that differs from it."""
    raw = config.to_dict()
    rows = []
    for info in _settings():
        value = functools.reduce(lambda d, key: d[key], info.path, raw)
        text = info.default_text if value == info.default else f"{show_value(value)}  (default {info.default_text})"
        rows.append((flag_of(info.path), text))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {text}" for name, text in rows)


@functools.cache
def _settings(config_class: type = TrainConfig) -> tuple[SettingInfo, ...]:
    def walk(config_type: type, prefix: SettingPath) -> list[SettingInfo]:
        found: list[SettingInfo] = []
        for f in fields(config_type):
            value = _default_of(f)
            if dataclasses.is_dataclass(value):
                found += walk(type(value), (*prefix, f.name))
                continue
            meta = f.metadata
            if "help" not in meta:
                raise TypeError(f"{config_type.__name__}.{f.name} is not declared with setting() or config_only()")
            kind = kind_of_field(f)
            if kind is None:
                raise TypeError(f"{config_type.__name__}.{f.name}: say the flag's kind, its type is {f.type}")
            found.append(SettingInfo(path=(*prefix, f.name), flag=flag_of_field(f), default=value,
                                     help=meta["help"], fixed_on_resume=meta["fixed_on_resume"], kind=kind,
                                     choices=meta["choices"], default_text=meta["shown"] or show_value(value)))
        return found

    return tuple(walk(config_class, ()))


def _default_of(f: dataclasses.Field[Any]) -> Any:
    """A field's default, read from the field: building the dataclass would run checks that a config with every
    default may fail on purpose (DetectConfig needs --real and --fake)."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


@functools.cache
def _settings_by_path() -> dict[SettingPath, SettingInfo]:
    return {info.path: info for info in _settings()}

