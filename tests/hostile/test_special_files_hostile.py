"""FIFOs, devices and monsters where ganforge expects a file: a FIFO as an export's config.json, as a checkpoint,
as a run's .lock or its store; config.json linked to /dev/zero; config.json of 100,000 nested '['. Each gives one
line saying what is wrong ("not a regular file", "larger than", "nested too deeply") within seconds; nothing
blocks, and nothing reads until memory runs out. Also: the temporaries a SIGKILL leaves mid-checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli_helpers import one_error, within
from ganforge.cli import main
from ganforge.runs.checkpoint import checkpoint_path, latest_checkpoint, save_checkpoint
from ganforge.runs.folder import write_run_config
from ganforge.whole_files import temporary_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")



def _invoke(*args: str | Path) -> Result:
    with within(60):
        return CliRunner().invoke(main, [str(a) for a in args])


def _doctor_problems(path: Path) -> list[str]:
    result = _invoke("doctor", path)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    return [line for line in result.output.splitlines() if line.startswith("PROBLEM")]


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def _replace(path: Path, how: str) -> None:
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "dev-zero":
        path.symlink_to("/dev/zero")
    elif how == "huge":
        with open(path, "wb") as f:
            f.truncate(5 << 20)  # sparse: 5 MB of zeros that take no disk
    else:
        path.write_text("[" * 100_000)


@pytest.mark.parametrize("how, says", [("fifo", "not a regular file (a FIFO)"),
                                       ("dev-zero", "not a regular file (a character device)"),
                                       ("huge", "larger than 4 MB"), ("nested", "nested too deeply")])
def test_an_exports_config_json_that_is_no_file_or_too_much_is_one_line(noise: tuple[Path, Path, Path],
                                                                         tmp_path: Path, how: str, says: str) -> None:
    export = _copy(noise[2], tmp_path)
    _replace(export / "config.json", how)
    error = one_error(_invoke("generate", export, "--n", "1", "--out", tmp_path / "g.png"))
    assert says in error and "config.json" in error, error
    assert any(says in line for line in _doctor_problems(export))


@pytest.mark.parametrize("how, says", [("dev-zero", "not a regular file"), ("huge", "larger than 4 MB"),
                                       ("nested", "nested too deeply")])
def test_a_runs_config_json_that_is_too_much_is_one_line(noise: tuple[Path, Path, Path], tmp_path: Path, how: str,
                                                          says: str) -> None:
    run = _copy(noise[1], tmp_path)
    _replace(run / "config.json", how)
    error = one_error(_invoke("generate", run, "--n", "1", "--out", tmp_path / "g.png"))
    assert says in error, error


def test_a_fifo_named_like_the_latest_checkpoint_is_reported_not_read(noise: tuple[Path, Path, Path],
                                                                      tmp_path: Path) -> None:
    run = _copy(noise[1], tmp_path)
    fifo = checkpoint_path(run, 10**9)
    os.mkfifo(fifo)
    error = one_error(_invoke("generate", run, "--n", "1", "--out", tmp_path / "g.png"))
    assert "not a regular file (a FIFO)" in error, error
    assert any("not a regular file" in line for line in _doctor_problems(run))
    assert fifo.exists()  # doctor reads only


def test_a_fifo_as_the_lock_does_not_block_doctor_and_training_refuses_it(noise: tuple[Path, Path, Path],
                                                                         tmp_path: Path) -> None:
    run = _copy(noise[1], tmp_path)
    (run / ".lock").unlink(missing_ok=True)
    os.mkfifo(run / ".lock")
    result = _invoke("doctor", run)
    assert "Traceback" not in result.output, result.output
    error = one_error(_invoke("train", "--resume", run, "--kimg", "0.05", "--no-progress"))
    assert ".lock is not a regular file (a FIFO)" in error, error


def test_a_fifo_as_the_runs_store_is_reported_not_read(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = _copy(noise[1], tmp_path)
    os.mkfifo(tmp_path / "store.gfs")
    record = json.loads((run / "config.json").read_text())
    record["train"]["data"] = str(tmp_path / "store.gfs")
    (run / "config.json").write_text(json.dumps(record))
    assert any("not a regular file (a FIFO)" in line for line in _doctor_problems(run))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_of_a_killed_checkpoint_write_are_reported_and_removed_on_resume(
        noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = _copy(noise[1], tmp_path)
    latest = latest_checkpoint(run)
    assert latest is not None
    stale = temporary_for(latest, _dead_pid())
    stale.write_bytes(b"half a checkpoint")
    older = latest.with_name(f".{latest.name}.tmp-{_dead_pid()}")  # as ganforge wrote them before whole_files
    older.write_bytes(b"half a checkpoint")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = temporary_for(latest, alive.pid)
        live.write_bytes(b"being written")
        problems = _doctor_problems(run)
        for leftover in (stale, older):
            assert any(leftover.name in line and "no longer running" in line for line in problems), problems
        assert not any(live.name in line for line in problems), problems
        result = _invoke("train", "--resume", run, "--kimg", "0.05", "--no-progress")
        assert result.exit_code == 0, result.output
        assert not stale.exists() and not older.exists() and live.exists()
    finally:
        alive.kill()
        alive.wait()


def test_detect_says_a_fifo_among_the_images_is_no_regular_file(tmp_path: Path) -> None:
    from ganforge.detect.score import read_image
    from ganforge.errors import DataError

    os.mkfifo(tmp_path / "fake.png")
    with within(20), pytest.raises(DataError, match="not a regular file \\(a FIFO\\)"):
        read_image(tmp_path / "fake.png", 16)


def test_a_fifo_as_the_config_file_is_one_line(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "settings.json")
    error = one_error(_invoke("train", "--config", tmp_path / "settings.json", "--dry-run"))
    assert f"--config {tmp_path / 'settings.json'}: not a regular file (a FIFO)" in error, error


def test_a_fifo_as_the_log_refuses_resume_and_export_in_one_line(noise: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    run = _copy(noise[1], tmp_path)
    _replace(run / "log.jsonl", "fifo")
    error = one_error(_invoke("train", "--resume", run, "--kimg", "0.05", "--no-progress"))
    assert f"{run / 'log.jsonl'}: not a regular file (a FIFO); move it away" in error, error
    error = one_error(_invoke("export", run, "--out", tmp_path / "export"))
    assert f"{run / 'log.jsonl'}: not a regular file (a FIFO); move it away" in error, error
    assert not (tmp_path / "export").exists()


def test_a_fifo_as_the_inception_weights_is_one_line(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "inception.pt")
    error = one_error(_invoke("evaluate", "--real", noise[0], "--fake", noise[0], "--n", "4", "--inception",
                              tmp_path / "inception.pt"))
    assert f"--inception {tmp_path / 'inception.pt'}: not a regular file (a FIFO)" in error, error


def test_a_fifo_as_the_best_snapshots_record_is_skipped_with_a_line(tmp_path: Path) -> None:
    import torch

    from ganforge.runs.checkpoint import checkpoint_path, save_checkpoint
    from ganforge.runs.folder import BEST_RECORD
    from ganforge.training.best_snapshot import _recorded_best

    os.mkfifo(tmp_path / BEST_RECORD)
    said: list[str] = []
    protocol = {"n": 500, "extractor": "inception"}
    with within(20):
        assert _recorded_best(tmp_path, said.append, protocol) is None
    assert len(said) == 1 and "not a regular file (a FIFO)" in said[0] and "chosen afresh" in said[0], said
    (tmp_path / BEST_RECORD).unlink()
    assert _recorded_best(tmp_path, said.append, protocol) is None and len(said) == 1  # none yet: nothing to say
    save_checkpoint(checkpoint_path(tmp_path, 8), {"w": torch.zeros(1)}, {})
    (tmp_path / BEST_RECORD).write_text(json.dumps({"kid": 0.25, "nimg": 8, **protocol}))
    assert _recorded_best(tmp_path, said.append, protocol) == 0.25


def test_appending_to_a_log_that_is_a_fifo_refuses_instead_of_waiting_for_a_reader(tmp_path: Path) -> None:
    from ganforge.regular_files import NotARegularFile, append_regular

    os.mkfifo(tmp_path / "log.jsonl")
    with within(20), pytest.raises(NotARegularFile, match="not a regular file \\(a FIFO\\)"):
        append_regular(tmp_path / "log.jsonl", "{}\n")
    append_regular(tmp_path / "new.jsonl", "{}\n")
    append_regular(tmp_path / "new.jsonl", "[]\n")
    assert (tmp_path / "new.jsonl").read_text() == "{}\n[]\n"


@pytest.mark.parametrize("how, says", [("fifo", "not a regular file (a FIFO)"),
                                       ("dev-zero", "not a regular file (a character device)")])
def test_an_exports_weights_that_are_no_file_are_said_to_be_so_not_missing(noise: tuple[Path, Path, Path],
                                                                         tmp_path: Path, how: str, says: str) -> None:
    export = _copy(noise[2], tmp_path)
    _replace(export / "model.safetensors", how)
    error = one_error(_invoke("generate", export, "--n", "1", "--out", tmp_path / "g.png"))
    assert f"model.safetensors: {says}" in error, error
    assert any(says in line for line in _doctor_problems(export))


@pytest.mark.parametrize("writer", ["config", "checkpoint"])
def test_a_link_planted_at_a_temporary_name_is_not_written_through(writer: str, tmp_path: Path) -> None:
    # A shared run folder may hold a link where ganforge writes before it renames: the file it points to (here a
    # victim beside the folder) must stay as it was, and the real output must land in the folder.
    from ganforge.config import TrainConfig

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    target = run / "config.json" if writer == "config" else checkpoint_path(run, 64)
    for name in (temporary_for(target), target.with_name(f".{target.name}.tmp"),
                 target.with_name(f".{target.name}.tmp-{os.getpid()}")):  # today's name and the ones before it
        name.symlink_to(victim)
    if writer == "config":
        write_run_config(run, TrainConfig(), {"name": "s.gfs"})
        assert json.loads(target.read_text())["dataset"] == {"name": "s.gfs"}
    else:
        import torch

        save_checkpoint(target, {"w": torch.ones(2)}, {"counters": {"cur_nimg": 64}})
        assert target.stat().st_size > 0
    assert victim.read_text() == "keep me"
    assert not target.is_symlink()


def test_a_link_left_as_the_memorization_summary_is_replaced_not_written_through(
        noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = _copy(noise[1], tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (run / "memorization").mkdir(exist_ok=True)
    (run / "memorization" / "summary.json").symlink_to(victim)
    result = _invoke("train", "--resume", run, "--kimg", "0.05", "--memorization", "on", "--metrics-extractor",
                     "random-conv", "--no-progress")
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    assert "median_ratio" in json.loads((run / "memorization" / "summary.json").read_text())
