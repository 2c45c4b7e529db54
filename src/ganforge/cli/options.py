"""Click options made from a settings dataclass (setting.py): `train`, `prepare` and `detect train` declare each
setting once, as a field, and get its flag, type, choices, help and [default] from it here.

A module of its own so that main.py and detect.py (which main.py imports) both use it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ganforge.config.registry import SettingInfo, settings
from ganforge.config.setting import parse_fraction

F = TypeVar("F", bound=Callable[..., Any])


class BatchGpu(click.ParamType):
    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or value == "auto":
            return value
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            self.fail(f"{value!r} is neither auto nor a number of images (0 = the whole share)", param, ctx)
        return count


class PathParam(click.Path):
    """click.Path that refuses an empty value: `--out "$DIR"` with DIR unset would otherwise mean the current
    folder, and scatter a command's files there."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("is empty; name a file or folder (an unset shell variable?)", param, ctx)
        return super().convert(value, param, ctx)


class Fraction(click.ParamType):
    """A number written as 0.01 or as 2/255 (how L-infinity bounds are quoted); the config checks its range."""

    name = "fraction"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_fraction(str(value))
        except ValueError:
            self.fail(f"cannot read {value!r}; write a number or a fraction such as 2/255", param, ctx)


def options_of(config_class: type) -> Callable[[F], F]:
    """A decorator adding one option per setting of `config_class` that has a flag, from its field: type,
    choices, help and [default]; a "paths" setting's flag may be repeated.

    Every default is None, so a flag left out keeps the preset's value or, with --resume, the run's own. Each
    option's parameter name is its path joined by "__" (`model__g_width`); `given_settings` reads them back.
    """
    def add(command: F) -> F:
        for info in reversed(settings(config_class)):
            if info.flag is not None:
                bool_decl = f"{info.flag}/--no-{info.flag[2:]}"
                decls = [bool_decl if info.kind == "bool" else info.flag, "__".join(info.path)]
                command = click.option(*decls, type=_click_type(info), default=None, multiple=info.kind == "paths",
                                       help=f"{info.help} [{info.default_text}]")(command)
        return command

    return add


def given_settings(params: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """{path: value} of the settings given on the command line, from the parameters of `options_of`. A repeated
    flag's values come as a list, as its field holds them; one never given (click's empty tuple) is left out."""
    given = {tuple(name.split("__")): value for name, value in params.items() if value not in (None, ())}
    return {path: list(value) if isinstance(value, tuple) else value for path, value in given.items()}


def _click_type(info: SettingInfo) -> click.ParamType | None:
    if info.choices:
        return click.Choice(info.choices)
    types: dict[str, click.ParamType | None] = {
        "bool": None, "int": click.INT, "float": click.FLOAT, "str": click.STRING, "path": PathParam(),
        "paths": PathParam(), "fraction": Fraction(), "auto|N": BatchGpu()}
    return types[info.kind]


# `train --help` in sections: each setting by its table (model, loss, augment) or, at the top level, by topic;
# the options that are not settings (--preset, --resume, --dry-run, ...) first, as "Run".
SECTION_OF_TABLE = {"model": "Model", "loss": "Loss and regularization", "augment": "Augmentation"}
SECTION_OF_SETTING = {
    **dict.fromkeys(("data", "out", "kimg", "minutes", "best_share", "seed", "tick_kimg", "snap", "keep"),
                    "Data, length and run folder"),
    **dict.fromkeys(("batch", "batch_gpu", "lr_g", "lr_d", "lr_decay", "schedule", "beta1", "beta2", "d_steps",
                     "ema_kimg", "ema_rampup", "fade_kimg", "stable_kimg"), "Optimization"),
    **dict.fromkeys(("device", "precision", "channels_last", "compile", "sync_bn"), "Precision and scale"),
    **dict.fromkeys(("grid_size", "metrics", "metrics_every", "metrics_n", "metrics_extractor",
                     "memorization"), "Samples and metrics"),
    **dict.fromkeys(("init", "freeze_d", "freeze_g_mapping"), "Fine-tuning"),
}
SECTIONS = ("Run", "Data, length and run folder", "Model", "Loss and regularization", "Augmentation",
            "Fine-tuning", "Optimization", "Precision and scale", "Samples and metrics")


def section_of(param: click.Parameter) -> str:
    path = (param.name or "").split("__")
    if len(path) > 1:
        return SECTION_OF_TABLE.get(path[0], "Run")
    return SECTION_OF_SETTING.get(path[0], "Run")


class SectionedCommand(click.Command):
    """A command whose --help lists its options in SECTIONS (a long flat list reads badly: train has ~80)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str, list[tuple[str, str]]] = {section: [] for section in SECTIONS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                rows.setdefault(section_of(param), []).append(record)
        for section, records in rows.items():
            if records:
                with formatter.section(section):
                    formatter.write_dl(records)
