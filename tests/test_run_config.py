"""One road from the flags to a run's config: `--summary`, `--dry-run` and `gf.train` resolve the same config for
the same flags; `ganforge train --resume` checks the resume rule once; `detect train`'s options are DetectConfig's
settings, so what its `--help` shows as the default is what a left-out flag gives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import ganforge as gf
from ganforge.cli import main
from ganforge.config import registry as setting_registry
from ganforge.config.registry import describe_config, settings
from ganforge.detect import train as detect_train
from ganforge.detect.config import DetectConfig
from ganforge.models import summarize

from data_slices import mnist_store
from explore_helpers import one_thread

# Left to the default recipe (dcgan-small with --cond on labelled 28 px digits), with a flag of each kind on top.
FLAGS = {"lr_g": 3e-4, "g_width": 8, "d_width": 8, "kimg": 0.05, "tick_kimg": 0.025}


def _cli_flags(store: Path, out: Path) -> list[str]:
    flags = [f"--{name.replace('_', '-')}={value:g}" for name, value in FLAGS.items()]
    return ["--data", str(store), "--out", str(out), *flags]


def _cli(*args: str) -> list[str]:
    result = CliRunner().invoke(main, ["train", *args])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mnist_store(tmp_path_factory.mktemp("corridor") / "digits.gfs", 64)


@pytest.fixture(scope="module")
def api_run(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[gf.Run, list[str]]:
    lines: list[str] = []
    with one_thread():
        run = gf.train(data=str(digits), out=str(tmp_path_factory.mktemp("runs")), progress=False, echo=lines.append,
                       **FLAGS)
    return run, lines


def test_summary_dry_run_and_gf_train_resolve_the_same_config(digits: Path,
                                                               api_run: tuple[gf.Run, list[str]]) -> None:
    run, trained_lines = api_run
    assert run.config.lr_g == 3e-4 and run.config.model.num_classes == 10  # the flag, and the store's classes
    recipe = trained_lines[0]
    assert run.config.loss.mode_seeking == 0.2
    assert recipe.startswith("recipe dcgan-small + --cond --mode-seeking 0.2 (chosen because no --model or --preset "
                             "was given)")
    out = Path(run.config.out)
    dry_run = _cli("--dry-run", *_cli_flags(digits, out))
    assert dry_run[0] == recipe
    table = describe_config(run.config).splitlines()
    assert dry_run[-len(table):] == table
    summary = _cli("--summary", *_cli_flags(digits, out))
    assert summary == [recipe, *summarize(run.config.model, (1, 28, 28)).splitlines()]
    assert [p.name for p in out.iterdir()] == [run.path.name]  # neither wrote a run folder


@pytest.fixture
def resume_checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every call of the resume rule, wherever a module holds it by name."""
    original = setting_registry.check_resume_overrides
    calls: list[tuple[Any, ...]] = []

    def counted(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        original(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith("ganforge") and getattr(module, "check_resume_overrides", None) is original:
            monkeypatch.setattr(module, "check_resume_overrides", counted)
    return calls


@pytest.mark.parametrize("flags, refused", [([], None), (["--g-width", "16"], "--g-width"),
                                            (["--phase-kimg", "2", "--preset", "wgan"], "--phase-kimg, --preset")])
def test_train_resume_checks_the_resume_rule_once(api_run: tuple[gf.Run, list[str]], resume_checks: list[Any],
                                                  flags: list[str], refused: str | None) -> None:
    run, _ = api_run
    result = CliRunner().invoke(main, ["train", "--resume", str(run.path), "--no-progress", *flags])
    assert len(resume_checks) == 1, resume_checks
    if refused is None:  # the run is complete: it says so and how to extend it
        assert result.exit_code == 0 and "it is complete" in result.output, result.output
    else:
        assert result.exit_code == 2 and f"drop {refused} (they cannot change mid-run)" in result.output


def _detect_train(monkeypatch: pytest.MonkeyPatch, *flags: str) -> DetectConfig:
    """The DetectConfig `detect train FLAGS` would train (the training itself replaced)."""
    built: list[DetectConfig] = []

    def capture(config: DetectConfig, out: Path, **_: Any) -> None:
        built.append(config)

    monkeypatch.setattr(detect_train, "train_detector", capture)
    result = CliRunner().invoke(main, ["detect", "train", "--real", "R", "--fake", "F", "--out", "O", *flags])
    assert result.exit_code == 0, result.output
    return built[0]


def _options_by_flag(command: click.Command) -> dict[str, click.Option]:
    return {flag: param for param in command.params if isinstance(param, click.Option) for flag in param.opts}


def test_detect_train_options_are_detect_configs_settings_with_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    detect_group = main.commands["detect"]
    assert isinstance(detect_group, click.Group)
    options = _options_by_flag(detect_group.commands["train"])
    flagged = [info for info in settings(DetectConfig) if info.flag is not None]
    assert {"--real", "--fake", "--backbone", "--steps", "--eps", "--augment"} <= {info.flag for info in flagged}
    left_out = _detect_train(monkeypatch)
    assert left_out == DetectConfig(real=["R"], fake=["F"])  # a flag left out gives the field's default
    shown_defaults: list[str] = []
    for info in flagged:
        option = options[info.flag or ""]
        assert option.help is not None and option.help.endswith(f"[{info.default_text}]"), info.flag
        assert option.multiple == (info.kind == "paths"), info.flag
        if info.kind == "bool":
            shown_defaults.append(info.flag if info.default else f"--no-{(info.flag or '')[2:]}")
        elif info.kind != "paths":
            shown_defaults += [info.flag or "", info.default_text]
    # Each flag given the default its --help shows builds the same config as leaving it out.
    assert _detect_train(monkeypatch, *shown_defaults) == left_out


def test_detect_train_refuses_an_unreadable_eps_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    monkeypatch.setattr(detect_train, "train_detector", lambda *args, **kwargs: started.append(args))
    result = CliRunner().invoke(main, ["detect", "train", "--real", "R", "--fake", "F", "--out", "O", "--eps", "1/0"])
    assert result.exit_code == 2 and "cannot read '1/0'" in result.output and not started
