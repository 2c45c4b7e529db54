"""Exports of image-to-image runs: safetensors (bit-identical) and ONNX (both CycleGAN directions), opened by
`translate`; noise tools refuse them, and a config.json naming a file outside the folder is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.errors import CheckpointError, ConfigError
from ganforge.runs import load_generator, load_translator

from data_slices import digit_pairs_store, digits_fashion_store
from run_helpers import only_run

TINY = ["--g-width", "4", "--d-width", "4", "--batch", "4", "--kimg", "0.016", "--tick-kimg", "0.016", "--seed", "6",
        "--no-progress"]


def _run(root: Path, store: Path, model: str) -> Path:
    result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(root / model), "--model", model,
                                       *TINY])
    assert result.exit_code == 0, result.output
    return only_run(root / model)


def _export(run: Path, out: Path, fmt: str) -> str:
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(out), "--format", fmt])
    assert result.exit_code == 0, result.output
    return result.output


def test_safetensors_export_translates_exactly_as_the_run(tmp_path: Path) -> None:
    run = _run(tmp_path, digit_pairs_store(tmp_path), "pix2pix")
    output = _export(run, tmp_path / "export", "safetensors")
    assert "ganforge translate" in output and (tmp_path / "export" / "samples.png").is_file()
    meta = json.loads((tmp_path / "export" / "config.json").read_text())
    assert meta["translator"]["directions"] == {"a2b": "model.safetensors"} and meta["input"]["shape"] == [
        "batch", 1, 16, 16]
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_translator(tmp_path / "export").translator(images),
                           load_translator(run).translator(images))
    with pytest.raises(ConfigError, match="use `ganforge translate"):
        load_generator(tmp_path / "export")
    result = CliRunner().invoke(main, ["export", str(run), "--out", str(tmp_path / "ts"), "--format", "torchscript"])
    assert result.exit_code != 0 and "exports as safetensors or onnx" in result.output


def test_onnx_export_holds_both_cyclegan_directions(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    run = _run(tmp_path, digits_fashion_store(tmp_path), "cyclegan")
    _export(run, tmp_path / "onnx", "onnx")
    meta = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert meta["translator"]["directions"] == {"a2b": "generator.onnx", "b2a": "generator-b2a.onnx"}
    assert meta["check"]["max_abs_diff"] <= 1e-4
    images = torch.rand(5, 1, 16, 16) * 2 - 1  # a batch size unlike the traced one
    for direction in ("a2b", "b2a"):
        with torch.no_grad():
            exported = load_translator(tmp_path / "onnx", direction).translator(images)
            expected = load_translator(run, direction).translator(images)
        assert (exported - expected).abs().max() <= 1e-4
    result = CliRunner().invoke(main, ["translate", str(tmp_path / "onnx"), str(tmp_path / "onnx"), "--out",
                                       str(tmp_path / "out"), "--direction", "b2a"])
    assert result.exit_code == 0 and "translated 1 of" in result.output, result.output  # samples.png
    result = CliRunner().invoke(main, ["doctor", str(tmp_path / "onnx")])
    assert result.exit_code == 0 and "onnx translator b2a (cyclegan" in result.output, result.output


def test_an_export_naming_a_file_outside_its_folder_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, digit_pairs_store(tmp_path), "pix2pix")
    _export(run, tmp_path / "export", "safetensors")
    config = tmp_path / "export" / "config.json"
    meta = json.loads(config.read_text())
    meta["translator"]["directions"]["a2b"] = "../../etc/passwd"
    config.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="names no plain file in the folder"):
        load_translator(tmp_path / "export")
