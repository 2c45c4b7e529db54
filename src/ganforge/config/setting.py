"""How a setting is declared: one dataclass field made by `setting()` carries its default, one-line help, flag,
resume rule and limits, so that the CLI options, `--help`, the resume rule and README's table all come from it
(`registry.py` lists them). `check_values` enforces the declared choices and limits when a config is built.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import field, fields
from typing import Any, Literal, TypeVar

from ganforge.errors import ConfigError
from ganforge.terminal_text import shown_value

T = TypeVar("T")

SettingPath = tuple[str, ...]  # a setting's place in TrainConfig, e.g. ("model", "g_width")
# What a flag's text is parsed to. "paths": a path, and the flag may be repeated (a list field); "fraction": a
# number that may be written as a fraction, e.g. 2/255 (parse_fraction).
Kind = Literal["bool", "int", "float", "str", "path", "paths", "fraction", "auto|N", "shape"]
_KINDS: dict[str, Kind] = {"bool": "bool", "int": "int", "float": "float", "str": "str"}


def setting(default: T, help: str, *, flag: str | None = None, fixed_on_resume: bool = False,
            choices: tuple[str, ...] | None = None, kind: Kind | None = None, shown: str | None = None,
            at_most: float | None = None) -> T:
    """A config field with everything the CLI and the docs say about it.

    help: one line, a sentence. flag: the command-line name when it is not the field's name in kebab case.
    fixed_on_resume: part of the run's starting point (data, architecture, seed), refused with --resume.
    choices: the only values accepted (checked when the config is built). kind: the flag's parser when the
    annotation does not say it ("path", "auto|N"). shown: how `--help` and README show the default instead of
    the value itself, e.g. "embedded MNIST" for an empty --data. at_most: the largest value accepted (numbers are
    always checked to be finite numbers of the field's type), so that an absurd flag is refused in one line
    before it allocates or loops forever.
    """
    metadata = {"help": help, "flag": flag, "fixed_on_resume": fixed_on_resume, "choices": choices, "kind": kind,
                "shown": shown, "on_cli": True, "at_most": at_most}
    if isinstance(default, list):  # each instance gets its own copy: a shared mutable default would leak
        return field(default_factory=lambda: copy.copy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def config_only(default: T, help: str, kind: Kind | None = None) -> T:
    """A field with no flag: set by the program (e.g. from the store) or in a hand-edited config.json."""
    metadata = {"help": help, "flag": None, "fixed_on_resume": False, "choices": None, "kind": kind, "shown": None,
                "on_cli": False, "at_most": None}
    return field(default=default, metadata=metadata)


def largest_accepted(config_class: type, name: str) -> float:
    """The `at_most` a setting of `config_class` declares (e.g. TrainConfig's kimg: the longest run accepted)."""
    limit = {f.name: f for f in fields(config_class)}[name].metadata.get("at_most")
    assert limit is not None, f"{config_class.__name__}.{name} declares no at_most"
    return float(limit)


def check_values(config: Any) -> None:
    """Refuse, naming the flag: a value outside a setting's `choices`, a number of the wrong type (config.json is
    hand-editable), a non-finite number, or one above the setting's `at_most`."""
    for f in fields(config):
        if "on_cli" not in f.metadata:
            continue  # a nested config, checked when it was built
        value, name = getattr(config, f.name), flag_of_field(f) or f.name
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            allowed = f"{', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else choices[0]
            raise ConfigError(f"{name} must be {allowed}, got {shown_value(value)}")
        if str(f.type) not in ("int", "float"):
            continue
        if isinstance(value, bool) or not isinstance(value, int if f.type == "int" else (int, float)):
            raise ConfigError(f"{name} must be a number ({f.type}), got {shown_value(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {shown_value(value)}")
        limit = f.metadata.get("at_most")
        if limit is not None and value > limit:
            raise ConfigError(f"{name} {show_value(value)} is beyond any real run; the most accepted is "
                              f"{show_value(limit)}")


def parse_fraction(text: str) -> float:
    """'2/255' -> 2/255, '0.01' -> 0.01: how a "fraction" setting's flag is read. ValueError when unreadable; the
    range is the config's to check."""
    top, _, bottom = text.strip().partition("/")
    try:
        return float(top) / float(bottom) if bottom else float(top)
    except ZeroDivisionError:
        raise ValueError(f"{text!r} divides by zero") from None


def require(condition: bool, message: str) -> None:
    """A config's own cross-field check in `__post_init__`: ConfigError with `message` (naming the flag) unless
    `condition` holds."""
    if not condition:
        raise ConfigError(message)


def flag_of_field(f: dataclasses.Field[Any]) -> str | None:
    """The flag of a field declared by setting(): its own, or `--g-width` for `g_width`; None for config_only()."""
    if not f.metadata["on_cli"]:
        return None
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def kind_of_field(f: dataclasses.Field[Any]) -> Kind | None:
    """How the field's flag text is parsed: as declared, else from its annotation; None when neither says."""
    return f.metadata["kind"] or _KINDS.get(getattr(f.type, "__name__", str(f.type)))


def show_value(value: Any) -> str:
    """A value as `--help`, README and errors show it: on/off, 2e-4, 0.5."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")  # 2e-4, not 0.0002: as papers write learning rates
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
