"""`ganforge doctor PATH` on healthy and damaged stores, runs and exports: one line per finding, exit 1 when
anything is wrong, and nothing on disk changed by looking (no lock file, no checkpoint set aside)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ganforge.cli import main

from run_helpers import noise_run_and_export

TRAIN = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "0.05",
         "--tick-kimg", "0.025", "--snap", "1", "--seed", "1", "--no-progress"]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return noise_run_and_export(tmp_path_factory.mktemp("doctor"), TRAIN)


def _doctor(path: Path) -> Result:
    return CliRunner().invoke(main, ["doctor", str(path)])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_healthy_store_run_and_export_report_only_ok_lines(healthy: tuple[Path, Path, Path]) -> None:
    store, run, export = healthy
    before = _files(run)
    for path in (store, run, export):
        result = _doctor(path)
        assert result.exit_code == 0 and all(line.startswith("ok ") for line in result.output.splitlines()), \
            result.output
    run_report = _doctor(run).output
    assert "ckpt-0000000056.safetensors: intact and consistent with the run (complete)" in run_report
    assert "pixels and labels match the content fingerprint" in run_report and "log.jsonl: 2 ticks" in run_report
    assert _files(run) == before  # read only: no lock taken, nothing set aside


def test_a_damaged_checkpoint_is_reported_and_left_where_it_is(healthy: tuple[Path, Path, Path],
                                                             tmp_path: Path) -> None:
    run = Path(shutil.copytree(healthy[1], tmp_path / "run"))
    latest = run / "checkpoints" / "ckpt-0000000056.safetensors"
    data = bytearray(latest.read_bytes())
    data[-100] ^= 0xFF
    latest.write_bytes(bytes(data))
    before = _files(run)
    result = _doctor(run)
    assert result.exit_code == 1, result.output
    assert f"PROBLEM {latest} is damaged" in result.output
    assert "ckpt-0000000032.safetensors: intact and consistent with the run (resumes at kimg 0.032)" in result.output
    assert _files(run) == before


def test_a_store_whose_pixels_changed_is_reported(healthy: tuple[Path, Path, Path], tmp_path: Path) -> None:
    store = Path(shutil.copy(healthy[0], tmp_path / "noise.gfs"))
    data = bytearray(store.read_bytes())
    data[-8 * 64 - 1] ^= 0xFF
    store.write_bytes(bytes(data))
    result = _doctor(store)
    assert result.exit_code == 1 and "PROBLEM" in result.output and "changed after it was prepared" in result.output


def test_an_export_with_an_edited_config_is_reported(healthy: tuple[Path, Path, Path], tmp_path: Path) -> None:
    export = Path(shutil.copytree(healthy[2], tmp_path / "export"))
    record = json.loads((export / "config.json").read_text())
    record["train"]["model"]["g_width"] = 3000
    (export / "config.json").write_text(json.dumps(record))
    result = _doctor(export)
    assert result.exit_code == 1 and "but the recorded config builds" in result.output, result.output


def test_a_path_that_is_none_of_the_three_is_one_problem_line(tmp_path: Path) -> None:
    result = _doctor(tmp_path)
    assert result.exit_code == 1
    assert result.output.strip() == f"PROBLEM {tmp_path} is not a store, a run folder or an exported folder"
