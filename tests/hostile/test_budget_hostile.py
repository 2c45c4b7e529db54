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
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--minutes", "0.3", "--no-progress"])
    assert result.exit_code == 0 and "resume overrides: minutes 0.05 -> 0.3" in result.output, result.output
    after = max(json.loads(line).get("nimg", 0) for line in (run / "log.jsonl").read_text().splitlines())
    assert after > before
