"""Hostile exports and output paths: an export whose config.json lies about its weights or its image count, the
ONNX format without its extra, an --out under a file. One line each, and no half-written folder left behind."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from cli_helpers import one_error
from ganforge.cli import main

from run_helpers import noise_run_and_export

TRAIN = ["--model", "dcgan", "--g-width", "4", "--d-width", "4", "--batch", "8", "--kimg", "0.025",
         "--tick-kimg", "0.025", "--seed", "1", "--no-progress"]


@pytest.fixture(scope="module")
def run_and_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    _, run, export = noise_run_and_export(tmp_path_factory.mktemp("export-hostile"), TRAIN)
    return run, export


def _set(*path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        for key in path[:-1]:
            record = record[key]
        record[path[-1]] = value
    return edit


LIES = {
    "nimg as text": (_set("nimg", value="abc"), "nimg is 'abc', not a count of images"),
    "zero height": (_set("dataset", "shape", value=[1, 0, 16]), "records no valid image shape"),
    "train not an object": (_set("train", value=[1]), "has no training config"),
    "g_width 3000": (_set("train", "model", "g_width", value=3000), "but the recorded config builds"),
}


@pytest.mark.parametrize("case", list(LIES))
def test_an_export_whose_config_lies_is_refused_before_building_a_network(run_and_export: tuple[Path, Path],
                                                                          tmp_path: Path, case: str) -> None:
    edit, problem = LIES[case]
    copy = Path(shutil.copytree(run_and_export[1], tmp_path / "export"))
    record = json.loads((copy / "config.json").read_text())
    edit(record)
    (copy / "config.json").write_text(json.dumps(record))
    error = one_error(CliRunner().invoke(main, ["generate", str(copy), "--n", "2", "--out", str(tmp_path / "g.png")]))
    assert str(copy) in error and problem in error, error
    assert not (tmp_path / "g.png").exists()


def test_onnx_without_its_extra_is_one_line_and_leaves_no_folder(run_and_export: tuple[Path, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    out = tmp_path / "onnx-export"
    error = one_error(CliRunner().invoke(main, ["export", str(run_and_export[0]), "--format", "onnx",
                                                 "--out", str(out)]))
    assert error == "error: --format onnx needs the onnx package: pip install 'ganforge[onnx]'"
    assert not out.exists()


def test_generate_into_a_folder_under_a_file_is_one_line(run_and_export: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    error = one_error(CliRunner().invoke(main, ["generate", str(run_and_export[0]), "--n", "2",
                                                 "--out", str(tmp_path / "a-file" / "images") + "/"]))
    assert f"{tmp_path / 'a-file'} is a file, not a folder" in error, error  # named before any image is drawn


def test_a_generator_that_draws_nan_is_refused_not_written_as_black_images(run_and_export: tuple[Path, Path],
                                                                           tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    export = Path(shutil.copytree(run_and_export[1], tmp_path / "export"))
    tensors = load_file(str(export / "model.safetensors"))
    variances = [name for name in tensors if name.endswith("running_var")]
    assert variances, "the export's G has no BatchNorm to damage"
    for name in variances:  # finite weights that still divide by the square root of a negative number
        tensors[name] = -tensors[name].abs() - 1
    save_file(tensors, str(export / "model.safetensors"))
    error = one_error(CliRunner().invoke(main, ["generate", str(export), "--seeds", "0-1", "--out",
                                                str(tmp_path / "g.png")]))
    assert "NaN or infinite pixels" in error, error
    assert not (tmp_path / "g.png").exists()


def test_a_new_export_replaces_an_earlier_one_whole_or_leaves_it_as_it_was(run_and_export: tuple[Path, Path],
                                                                            tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from ganforge.export import generator as export_module

    run, out = run_and_export[0], tmp_path / "export"
    runner = CliRunner()
    result = runner.invoke(main, ["export", str(run), "--with-discriminator", "--out", str(out)])
    assert result.exit_code == 0 and (out / "discriminator.safetensors").is_file(), result.output
    result = runner.invoke(main, ["export", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "discriminator.safetensors").exists()  # the earlier export's D is not left to be pushed
    assert "discriminator" not in json.loads((out / "config.json").read_text())
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def failing_card(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_module, "write_model_card", failing_card)
    with pytest.raises(RuntimeError, match="disk full"):
        export_module.export_generator(run, out, "safetensors", with_discriminator=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # nothing set aside is left behind


class _Flat(torch.nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0], 784)


class _Colour(torch.nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0], 3, 8, 8)


class _Counts(torch.nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(z.shape[0], 1, 16, 16, dtype=torch.int64)


@pytest.mark.parametrize("graph, problem", [(_Flat, "made an array of shape [1, 784] for 1 input(s)"),
                                            (_Colour, "makes images of 3x8x8 (CxHxW), but the export's"),
                                            (_Counts, "made torch.int64 values, not float32 images")])
def test_a_torchscript_graph_making_other_than_the_recorded_images_is_refused(run_and_export: tuple[Path, Path],
                                                                              tmp_path: Path, graph: type,
                                                                              problem: str) -> None:
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(run_and_export[0]), "--format", "torchscript", "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    torch.jit.script(graph()).save(str(out / "generator.pt"))
    error = one_error(CliRunner().invoke(main, ["generate", str(out), "--seeds", "0-1", "--out",
                                                str(tmp_path / "g.png")]))
    assert problem in error and "generator.pt" in error, error
    assert not (tmp_path / "g.png").exists()
