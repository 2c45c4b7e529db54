"""Inputs that once ended in a traceback now end in one line naming the file or flag and what to do: doctor on an
export without nimg or with a bad "translator", on a log row whose kimg is text; evaluate --metrics pr --n 3;
G.sample(batch=0), load_generator(device="tpu"), gf.train(123); and `train --resume EXP`, which must refuse an
export folder instead of starting a fresh run inside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import ganforge as gf
from cli_helpers import TRAIN, invoke, one_error, tiny_pix2pix_run
from ganforge.errors import CheckpointError, ConfigError

from run_helpers import noise_run_and_export


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _edit(config: Path, **changes: object) -> None:
    record = json.loads(config.read_text())
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    config.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return noise_run_and_export(tmp_path_factory.mktemp("tracebacks"), TRAIN)


@pytest.fixture(scope="module")
def translator_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tracebacks-pix2pix")
    result = invoke("export", tiny_pix2pix_run(root), "--out", root / "export")
    assert result.exit_code == 0, result.output
    return root / "export"


def test_doctor_on_an_export_without_nimg_reports_it_at_zero(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    export = Path(shutil.copytree(noise[2], tmp_path / "export"))
    _edit(export / "config.json", nimg=None)
    result = invoke("doctor", export)
    assert result.exit_code == 0 and "0 kimg" in result.output and "Traceback" not in result.output, result.output


def test_doctor_on_a_translator_export_whose_translator_is_not_a_record(translator_export: Path,
                                                                         tmp_path: Path) -> None:
    export = Path(shutil.copytree(translator_export, tmp_path / "export"))
    _edit(export / "config.json", translator="x")
    result = invoke("doctor", export)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "lists no directions" in result.output, result.output


def test_doctor_on_a_log_row_whose_kimg_is_text(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = Path(shutil.copytree(noise[1], tmp_path / "run"))
    with open(run / "log.jsonl", "a") as log:
        log.write(json.dumps({"tick": 99, "kimg": "abc"}) + "\n")
    result = invoke("doctor", run)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "kimg 'abc', not a number" in result.output, result.output


def test_evaluate_pr_on_three_images_is_refused_before_any_work(noise: tuple[Path, Path, Path]) -> None:
    error = one_error(invoke("evaluate", noise[1], "--metrics", "pr", "--n", "3", "--extractor", "random-conv"))
    assert "--n above 3" in error, error


def test_python_api_mistakes_are_config_errors(noise: tuple[Path, Path, Path]) -> None:
    generator = gf.load_generator(noise[1])
    with pytest.raises(ConfigError, match="batch"):
        generator.sample(2, batch=0)
    with pytest.raises(ConfigError, match="'tpu' is not a device"):
        gf.load_generator(noise[1], device="tpu")
    with pytest.raises(ConfigError, match="takes a TrainConfig, got int"):
        gf.train(123)  # type: ignore[arg-type]


def test_resuming_an_export_folder_is_refused_and_writes_nothing_there(noise: tuple[Path, Path, Path]) -> None:
    export = noise[2]
    before = _files(export)
    error = one_error(invoke("train", "--resume", export, "--no-progress"))
    assert "is an exported folder" in error and "pass the run folder" in error, error
    with pytest.raises(CheckpointError, match="is an exported folder"):
        gf.train(resume=export, progress=False)
    assert _files(export) == before and not (export / ".lock").exists()
