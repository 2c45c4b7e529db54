"""Hostile and mistaken `train` invocations: absurd numbers, impossible sizes, unwritable folders, a damaged run
config, resuming a finished run or below its length. Each ends in one line and a non-zero exit (or, for a
finished run, says so and how to extend it), and writes nothing: no run folder, config.json and log untouched."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.runs import checkpoint as ckpt
from ganforge.training import memory_check, session
from ganforge.training.report import tick_record

from data_slices import make_store
from run_helpers import only_run

TINY = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--tick-kimg", "0.025",
        "--seed", "1", "--no-progress"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = np.random.default_rng(0).integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    return make_store(tmp_path_factory.mktemp("flags") / "noise.gfs", images).path


@pytest.fixture(scope="module")
def finished_run(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("finished")
    result = _train("--data", str(store), "--out", str(runs), "--kimg", "0.05", *TINY)
    assert result.exit_code == 0, result.output
    return only_run(runs)


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / finished_run.name))


def _train(*args: str) -> Result:
    return CliRunner().invoke(main, ["train", *args])


def _one_error(result: Result) -> str:
    errors = [line for line in result.output.splitlines() if line.lower().startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def _files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


ABSURD = {
    "kimg infinite": (["--kimg", "inf"], "--kimg must be a finite number"),
    "kimg not a number": (["--kimg", "nan"], "--kimg must be a finite number"),
    "kimg 1e300": (["--kimg", "1e300"], "--kimg 1e+300 is beyond any real run"),
    "tick-kimg infinite": (["--tick-kimg", "inf"], "--tick-kimg must be a finite number"),
    "lr not a number": (["--lr-g", "nan"], "--lr-g must be a finite number"),
    "negative seed": (["--seed", "-1"], "--seed must be a whole number from 0 to 2^32 - 1"),
    "seed 2^70": (["--seed", str(2**70)], "--seed must be a whole number from 0 to 2^32 - 1"),
    "batch 1e8": (["--batch", "100000000"], "--batch 100000000 is beyond any real run"),
    "z-dim 1e9": (["--z-dim", "1000000000"], "--z-dim 1000000000 is beyond any real run"),
    "g-width 1e6": (["--g-width", "1000000"], "--g-width 1000000 is beyond any real run"),
    "misspelt loss": (["--loss", "wgangp"], "'wgangp' is not one of"),
    "unknown device": (["--device", "foo"], "--device 'foo' is not a device"),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_an_absurd_flag_is_refused_in_one_line_before_a_run_folder_exists(store: Path, tmp_path: Path,
                                                                           case: str) -> None:
    flags, problem = ABSURD[case]
    result = _train("--data", str(store), "--out", str(tmp_path / "runs"), *TINY, "--kimg", "0.05", *flags)
    assert problem in _one_error(result)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_batch_no_memory_can_hold_is_refused_before_allocating(tmp_path: Path) -> None:
    big = make_store(tmp_path / "big.gfs", np.zeros((1, 3, 1024, 1024), np.uint8)).path
    result = _train("--data", str(big), "--out", str(tmp_path / "runs"), "--model", "dcgan", "--batch", "65536",
                    "--g-width", "4", "--d-width", "4")
    error = _one_error(result)
    assert "--batch 65536: one batch of 3x1024x1024 images needs at least 3,298.5 GB" in error
    assert "use a smaller --batch" in error and not (tmp_path / "runs").exists()


def test_networks_no_memory_can_hold_are_refused_naming_the_size_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_check, "available_ram_bytes", lambda: 1 << 30)
    with pytest.raises(ConfigError, match=r"100,000,000 parameters: training needs at least 1.6 GB .* 1.1 GB free; "
                                          r"use a smaller --g-width"):
        memory_check.check_fits(100_000_000, 8, (1, 16, 16), torch.device("cpu"))
    memory_check.check_fits(1_000_000, 8, (1, 16, 16), torch.device("cpu"))  # 16 MB: fits


def test_an_out_folder_that_cannot_exist_is_named(store: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    result = _train("--data", str(store), "--out", str(tmp_path / "a-file" / "runs"), *TINY, "--kimg", "0.05")
    assert (f"--out {tmp_path / 'a-file' / 'runs'}: {tmp_path / 'a-file'} is a file, not a folder"
            in _one_error(result))


def test_a_start_that_fails_before_its_first_tick_leaves_no_empty_run_folder(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the device went away")

    monkeypatch.setattr(session, "train", fail)
    result = _train("--data", str(store), "--out", str(tmp_path / "runs"), *TINY, "--kimg", "0.05")
    assert isinstance(result.exception, RuntimeError)
    assert list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("content", ["[1, 2]", '{"dataset": {}}', '{"train": {"kimg": "abc"}}', "{oops"],
                         ids=["a list", "no train key", "kimg as text", "not JSON"])
def test_a_damaged_run_config_is_refused_in_one_line(run: Path, content: str) -> None:
    (run / "config.json").write_text(content)
    before = _files(run)
    assert f"error: {run / 'config.json'}" in _one_error(_train("--resume", str(run)))
    assert _files(run) == before


def test_resuming_a_finished_run_says_it_is_complete_and_how_to_extend_it(run: Path) -> None:
    before = _files(run)
    result = _train("--resume", str(run))
    assert result.exit_code == 0, result.output
    assert f"{run} has trained 0.056 kimg of its --kimg 0.05: it is complete. Extend it with `ganforge train " \
           f"--resume {run} --kimg 0.1`" in result.output
    assert "resumed" not in result.output and _files(run) == before


def test_a_kimg_below_what_the_run_trained_is_refused_and_records_nothing(run: Path) -> None:
    before = _files(run)
    error = _one_error(_train("--resume", str(run), "--kimg", "0.03"))
    assert f"--kimg 0.03 is not beyond what {run} has trained 0.056 kimg; pass a larger --kimg" in error
    assert _files(run) == before  # config.json still says 0.05; no resume-overrides event


def test_a_finished_run_ends_with_where_its_samples_are_and_what_to_run_next(finished_run: Path,
                                                                            store: Path, tmp_path: Path) -> None:
    result = _train("--data", str(store), "--out", str(tmp_path / "runs"), "--kimg", "0.025", *TINY)
    run_dir = only_run(tmp_path / "runs")
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"done: 0.025 kimg. Samples: {run_dir / 'samples' / 'latest.png'}; next: `ganforge "
                           f"generate {run_dir} --out grid.png`")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert log[-1]["nimg"] == 32


def _no_space(path: object, *args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_what_was_written(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ckpt, "save_checkpoint", _no_space)
    result = _train("--data", str(store), "--out", str(tmp_path / "runs"), *TINY, "--kimg", "0.05")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert lines[-1].startswith("error: ") and lines[-1].endswith(": No space left on device; the disk is full: free "
                                                                  "space, then run the command again (a run resumes "
                                                                  "from its last checkpoint)")
    assert (only_run(tmp_path / "runs") / "log.jsonl").exists()  # the ticks before the failure stay


def test_a_full_disk_while_preparing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ganforge.data import prepare as prepare_module

    np.savez(tmp_path / "data.npz", images=np.zeros((4, 8, 8), np.uint8))
    monkeypatch.setattr(prepare_module, "write_store", _no_space)
    result = CliRunner().invoke(main, ["prepare", str(tmp_path / "data.npz"), "--out", str(tmp_path / "out.gfs")])
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert last.startswith("error: ") and "No space left on device; the disk is full" in last, result.output
    assert not (tmp_path / "out.gfs").exists()


def test_a_size_dcgan_cannot_draw_says_why_in_one_line() -> None:
    error = _one_error(_train("--model", "dcgan", "--resolution", "7", "--summary"))
    assert "DCGAN cannot draw 7x7 px: it doubles a 4-7 px start at least once, so each side must be 8 px or more" \
        in error


def test_the_first_tick_after_a_mid_tick_resume_times_only_its_own_images() -> None:
    # Resumed 100 images before a 1,000-image tick ends: 0.5 s for those 100 is 5 s/kimg, not 0.5 s/kimg.
    state = SimpleNamespace(
        counters=SimpleNamespace(tick=3, cur_nimg=3000, train_seconds=30.0),
        stats=SimpleNamespace(device=torch.device("cpu")), augment=SimpleNamespace(probability=0.0),
        opt_g=SimpleNamespace(param_groups=[{"lr": 2e-4}]), opt_d=SimpleNamespace(param_groups=[{"lr": 2e-4}]))
    record = tick_record(state, {}, seconds=0.5, session_nimg=100)  # type: ignore[arg-type]
    assert record["sec_per_kimg"] == pytest.approx(5.0) and record["img_per_s"] == pytest.approx(200.0)


@pytest.mark.parametrize("args, problem", [
    (["detect", "attack", "DET", "--real", "R", "--fake", "F", "--eps", "1/0"], "--eps: cannot read '1/0'"),
    (["detect", "attack", "DET", "--real", "R", "--fake", "F", "--eps", "300/255"], "--eps 300/255 is outside"),
    (["detect", "eval", "DET", "--real", "R", "--fake", "F"], "is not a detector folder"),
    (["detect", "train", "--real", "R", "--fake", "F", "--out", "BUSY"], "--out BUSY exists and is not empty"),
    (["detect", "train", "--real", "R", "--out", "NEW"], "detect train needs --real and --fake"),
    (["detect", "train", "--real", "R", "--fake", "F", "--out", "NEW", "--batch", "7"], "an even number"),
], ids=["eps 1/0", "eps 300/255", "not a detector", "busy out", "no fakes", "odd batch"])
def test_detect_refuses_bad_input_in_one_line(store: Path, tmp_path: Path, args: list[str], problem: str) -> None:
    (tmp_path / "det").mkdir()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep me")
    names = {"DET": tmp_path / "det", "R": store, "F": store, "BUSY": tmp_path / "busy", "NEW": tmp_path / "new"}
    result = CliRunner().invoke(main, [str(names.get(a, a)) for a in args])
    error = _one_error(result)
    assert problem.replace("BUSY", str(tmp_path / "busy")) in error, error
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep me" and not (tmp_path / "new").exists()
