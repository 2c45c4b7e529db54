"""README's `ganforge train` tables, generated from what the code declares: the option table from the settings
in `ganforge.config`, the model-family table from each family's declaration in `ganforge.models`.

    python -m ganforge.cli.settings_docs README.md   # rewrite the tables between their markers in README.md
    python -m ganforge.cli.settings_docs             # print them

tests/test_settings_docs.py fails when README's tables and the code disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ganforge.config.registry import SettingInfo, flag_of, settings
from ganforge.errors import ConfigError
from ganforge.models import MODELS

START = "<!-- train-options:start -->"
END = "<!-- train-options:end -->"
FAMILIES_START = "<!-- model-families:start -->"
FAMILIES_END = "<!-- model-families:end -->"


def train_options_table() -> str:
    """One markdown row per setting that has a flag, in the order of `ganforge train --help`."""
    rows = ["| setting | default | on `--resume` | meaning |", "|---|---|---|---|"]
    for info in settings():
        if info.flag is not None:
            resume = "fixed" if info.fixed_on_resume else "may change"
            rows.append(f"| `{_cell(_usage(info))}` | {_default(info)} | {resume} | {_cell(info.help)} |")
    return "\n".join(rows)


def model_families_table() -> str:
    """One markdown row per registered model family: what it is, its shapes and what it supports."""
    rows = ["| `--model` | what it is | image sizes | `--cond` | `--truncation` | its own options | recipe |",
            "|---|---|---|---|---|---|---|"]
    for name, family in MODELS.items():
        flags = [flag_of(("model", o)) for o in sorted(family.options)]
        flags += [flag_of(("loss", o)) for o in sorted(family.loss_options)]
        options = ", ".join(f"`{flag}`" for flag in flags) or "none"
        truncation = {"z": "in z", "w": "in W, toward the tracked mean w",
                      "none": "no effect (G normalises z): refused"}[family.truncation]
        if family.translates:
            truncation = "none (G takes an image, not z): refused"
        recipe = f"`--preset {name}` (implied)" if family.recipe else ""
        rows.append(f"| `{name}` | {_cell(family.description)} | {_cell(family.resolutions)} | "
                    f"{'yes' if family.conditional else 'no'} | {truncation} | {options} | {recipe} |")
    return "\n".join(rows)


BLOCKS: dict[tuple[str, str], Callable[[], str]] = {(START, END): train_options_table,
                                                    (FAMILIES_START, FAMILIES_END): model_families_table}


def readme_block(text: str, start_marker: str = START, end_marker: str = END) -> str:
    """What README holds between a pair of markers (without them)."""
    start, end = _markers(text, start_marker, end_marker)
    return text[start + len(start_marker):end].strip("\n")


def with_table(text: str) -> str:
    """`text` with every generated table between its markers."""
    for (start_marker, end_marker), table in BLOCKS.items():
        start, end = _markers(text, start_marker, end_marker)
        text = f"{text[:start + len(start_marker)]}\n{table()}\n{text[end:]}"
    return text


def _markers(text: str, start_marker: str, end_marker: str) -> tuple[int, int]:
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise ConfigError(f"the README has no {start_marker} ... {end_marker} block to hold a generated table")
    return start, end


def _usage(info: SettingInfo) -> str:
    assert info.flag is not None
    if info.kind == "bool":
        return f"{info.flag}/--no-{info.flag[2:]}"
    if info.choices:
        return f"{info.flag} {'|'.join(info.choices)}"
    if info.kind == "auto|N":
        return f"{info.flag} auto|N"
    return info.flag


def _default(info: SettingInfo) -> str:
    literal = info.kind in ("str", "path") and info.default_text == info.default  # a value, not a description
    return f"`{info.default_text}`" if literal else _cell(info.default_text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # GitHub tables split cells at every unescaped pipe, in code spans too


def main(argv: list[str]) -> int:
    if not argv:
        print(f"{train_options_table()}\n\n{model_families_table()}")
        return 0
    readme = Path(argv[0])
    readme.write_text(with_table(readme.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the train option table into {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
