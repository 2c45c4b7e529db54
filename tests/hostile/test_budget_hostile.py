"""Hostile `--minutes`: absurd budgets, contradictory lengths, an edited config.json and a spent budget are refused
or reported in one line, touching nothing; a damaged best snapshot is reported as a damaged run is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli_helpers import usage_error
from ganforge.cli import main
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.training import loop

from data_slices import make_store
from run_helpers import FakeClock, only_run

TINY = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--tick-kimg", "0.05",
        "--no-progress"]


@pytest.fixture(scope="module")
def spent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose 3-second budget is spent."""
    root = tmp_path_factory.mktemp("hostile-budget")
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    store = make_store(root / "noise.gfs", images).path
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(root / "runs"), "--minutes",
                                       "0.05", *TINY])
    assert result.exit_code == 0, result.output
    return only_run(root / "runs")


@pytest.mark.parametrize("flags, problem", [
    (["--minutes", "-1"], "--minutes"),
    (["--minutes", "nan"], "--minutes"),
    (["--minutes", "1e12"], "--minutes"),
    (["--minutes", "5", "--kimg", "10"], "--minutes plans the run's --kimg"),
    (["--minutes", "5", "--best-share", "1"], "--best-share"),
    (["--minutes", "5", "--best-share", "-0.1"], "--best-share"),
    (["--best-share", "0.3"], "--best-share 0.3 is the share of a --minutes budget"),
])
def test_absurd_or_contradictory_budgets_are_refused_in_one_line(tmp_path, flags, problem):
    error = usage_error(["train", "--out", str(tmp_path / "runs"), *TINY, *flags])
    assert problem in error, error
    assert not (tmp_path / "runs").exists()


def test_a_spent_budget_resumes_to_a_line_saying_so_and_changes_nothing(spent_run, tmp_path):
    run = Path(shutil.copytree(spent_run, tmp_path / spent_run.name))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--no-progress"])
    assert result.exit_code == 0 and "has spent its 0.05 minutes" in result.output, result.output
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_a_budget_run_refuses_a_kimg_without_leaving_its_budget(spent_run):
    error = usage_error(["train", "--resume", str(spent_run), "--kimg", "9"])
    assert "--minutes 0 with --kimg" in error, error


def test_an_edited_budget_in_config_json_is_refused_naming_it(spent_run, tmp_path):
    run = Path(shutil.copytree(spent_run, tmp_path / spent_run.name))
    record = json.loads((run / "config.json").read_text())
    record["train"]["minutes"] = -3
    (run / "config.json").write_text(json.dumps(record))
    error = usage_error(["train", "--resume", str(run)])
    assert "minutes" in error, error


def test_a_damaged_best_snapshot_is_refused_like_a_damaged_run(spent_run, tmp_path):
    best = tmp_path / "best"
    (best / "checkpoints").mkdir(parents=True)
    shutil.copyfile(spent_run / "config.json", best / "config.json")
    checkpoint = sorted((spent_run / "checkpoints").glob("*.safetensors"))[-1]
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (best / "checkpoints" / checkpoint.name).write_bytes(bytes(data))
    error = usage_error(["generate", str(best), "--out", str(tmp_path / "grid.png")])
    assert str(best) in error or checkpoint.name in error, error
    assert not (tmp_path / "grid.png").exists()


def test_a_spent_budget_extended_trains_on(spent_run, tmp_path, monkeypatch):
    run = Path(shutil.copytree(spent_run, tmp_path / spent_run.name))
    before = max(json.loads(line).get("nimg", 0) for line in (run / "log.jsonl").read_text().splitlines())
    # 15 s more, timed by a clock that runs only as the run trains (100 img/s), so a loaded machine cannot spend
    # them before the first step.
    clock, beat = FakeClock(100.0), loop.Heartbeat.beat
    monkeypatch.setitem(loop.train.__kwdefaults__, "clock", clock)
    monkeypatch.setattr(loop.Heartbeat, "beat", lambda self, nimg, end: (clock.advance_to(nimg), beat(self, nimg, end)))
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--minutes", "1", "--no-progress"])
    assert result.exit_code == 0 and "resume overrides: minutes 0.05 -> 1" in result.output, result.output
    after = max(json.loads(line).get("nimg", 0) for line in (run / "log.jsonl").read_text().splitlines())
    # Most of what is left of the minute at 100 img/s (less the end kept at its measured cost), not one step:
    # the finished run's length is no plan.
    assert after - before > 0.5 * 100 * (60 - _spent_seconds(spent_run))


def test_a_dry_run_of_an_extended_budget_plans_what_is_left(spent_run, monkeypatch):
    clock, beat = FakeClock(100.0), loop.Heartbeat.beat
    monkeypatch.setitem(loop.train.__kwdefaults__, "clock", clock)
    monkeypatch.setattr(loop.Heartbeat, "beat", lambda self, nimg, end: (clock.advance_to(nimg), beat(self, nimg, end)))
    result = CliRunner().invoke(main, ["train", "--resume", str(spent_run), "--minutes", "1", "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = next(line for line in result.output.splitlines() if line.startswith("plan: 1 min"))
    assert "spent" in plan and "too short" not in plan, plan
    spent_kimg = float(plan.split("from kimg ")[1].split(")")[0])
    planned_kimg = float(plan.split("-> about ")[1].split(" kimg")[0])
    left = 60 - _spent_seconds(spent_run)  # at 100 img/s
    assert spent_kimg > 0 and planned_kimg - spent_kimg == pytest.approx(left * 100 / 1000, abs=0.15), plan


def _spent_seconds(run: Path) -> float:
    return load_checkpoint(latest_checkpoint(run))[1]["counters"]["budget_seconds"]


def test_the_best_snapshot_is_not_a_run_to_resume(spent_run, tmp_path):
    best = tmp_path / "run" / "best"
    shutil.copytree(spent_run, best)
    (best / "best.json").write_text(json.dumps({"kid": 0.1, "n": 500, "extractor": "inception", "nimg": 8}))
    before = {p: p.read_bytes() for p in best.rglob("*") if p.is_file()}
    error = usage_error(["train", "--resume", str(best), "--minutes", "1"])
    assert "best snapshot" in error and f"--resume {tmp_path / 'run'}" in error and f"--init {best}" in error, error
    assert {p: p.read_bytes() for p in best.rglob("*") if p.is_file()} == before


def test_a_budget_too_short_for_a_step_still_ends_with_one_and_a_checkpoint(tmp_path):
    result = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "runs"), "--minutes", "1e-12", *TINY])
    assert result.exit_code == 0 and "done: " in result.output, result.output
    run = only_run(tmp_path / "runs")
    assert list((run / "checkpoints").glob("*.safetensors"))
    assert CliRunner().invoke(main, ["generate", str(run), "--out", str(tmp_path / "grid.png")]).exit_code == 0
