"""Runs that travel: a run resumes from any working directory, after its store moved beside it, and with
`--resume RUN --data PATH` when PATH holds the same content; a different or missing store is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ganforge.cli import main

from data_slices import make_store
from run_helpers import only_run

TINY = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "0.016",
        "--tick-kimg", "0.008", "--no-progress"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(run folder, store): a run started in tmp_path/work with the store given as a relative path."""
    work = tmp_path / "work"
    work.mkdir()
    make_store(work / "noise.gfs", np.random.default_rng(0).integers(0, 256, (32, 1, 16, 16), dtype=np.uint8))
    monkeypatch.chdir(work)
    result = invoke("train", "--data", "noise.gfs", "--out", "runs", *TINY)
    assert result.exit_code == 0, result.output
    return only_run(work / "runs").resolve(), (work / "noise.gfs").resolve()


def test_a_run_resumes_from_another_working_directory(started, tmp_path, monkeypatch):
    run, _ = started
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--resume", str(run), "--kimg", "0.032", "--no-progress")
    assert result.exit_code == 0 and "done: 0.032 kimg" in result.output, result.output


def test_a_run_resumes_after_its_store_moved_beside_it(started, tmp_path, monkeypatch):
    run, store = started
    moved = shutil.move(run.parent.parent, tmp_path / "elsewhere")  # the work folder, store and runs together
    store.unlink(missing_ok=True)
    run = Path(moved) / "runs" / run.name
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--resume", str(run), "--kimg", "0.032", "--no-progress")
    assert result.exit_code == 0, result.output
    recorded = json.loads((run / "config.json").read_text())["train"]["data"]
    assert Path(recorded) == Path(moved) / "noise.gfs"  # the store's new place, recorded as a resume change


def test_resume_takes_data_holding_the_same_content_and_refuses_another(started, tmp_path):
    run, store = started
    copy = tmp_path / "copy.gfs"
    shutil.copyfile(store, copy)
    result = invoke("train", "--resume", str(run), "--data", str(copy), "--kimg", "0.032", "--no-progress")
    assert result.exit_code == 0 and "resume overrides: data" in result.output, result.output
    other = make_store(tmp_path / "other.gfs", np.zeros((32, 1, 16, 16), np.uint8)).path
    result = invoke("train", "--resume", str(run), "--data", str(other), "--kimg", "0.048")
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "is not the dataset" in errors[0], result.output


def test_a_store_found_nowhere_is_refused_saying_where_it_looked(started, tmp_path, monkeypatch):
    run, store = started
    store.unlink()
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "--resume", str(run), "--kimg", "0.032")
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "which is not there (looked at" in errors[0] and "--data PATH" in errors[0], errors[0]
