"""`ganforge export RUN` for image-to-image runs: the translator as safetensors or ONNX, checked after writing.

safetensors holds the whole G (CycleGAN's both directions) and is rebuilt from the model registry; ONNX holds one
graph per direction (`generator.onnx` for a2b, `generator-b2a.onnx`), images [batch, C, H, W] in [-1, 1] in and
out, each compared with the torch network in onnxruntime on random inputs before the export counts as done.
The folder opens with `ganforge translate EXPORT ...` and `ganforge serve EXPORT` like the run folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ganforge.config import TrainConfig
from ganforge.errors import CheckpointError, ConfigError
from ganforge.export.folder import (
    ONNX_TOLERANCE,
    UNVERIFIED,
    export_folder,
    finish_folder,
    onnxruntime_version,
    write_onnx,
)
from ganforge.models import family_of
from ganforge.runs import load_run_generator
from ganforge.runs.exported import EXPORT_VERSION, FORMATS, load_graph
from ganforge.runs.folder import read_record
from ganforge.version import __version__

TRANSLATOR_FORMATS = ("safetensors", "onnx")
CHECK_INPUTS = 3  # random images each written graph is compared on (not the traced batch of 2: dynamic batch)
SAMPLES_FILE = "samples.png"


def direction_file(fmt: str, direction: str) -> str:
    """The file a direction's graph is in: the format's own name for a2b; ONNX adds one graph per direction."""
    if fmt == "onnx" and direction != "a2b":
        return FORMATS["onnx"].replace(".onnx", f"-{direction}.onnx")
    return FORMATS[fmt]


def export_translator(run_dir: Path, out: Path, fmt: str) -> tuple[Path, str, dict[str, Any]]:
    """Write the export into `out` (new or empty; the caller checked); (main file, weights, check)."""
    if fmt not in TRANSLATOR_FORMATS:
        raise ConfigError(f"--format {fmt}: an image-to-image run exports as {' or '.join(TRANSLATOR_FORMATS)}")
    (generator, config, nimg), weights = load_run_generator(run_dir, "cpu", translating=True)
    dataset = read_record(run_dir).get("dataset", {})
    directions = family_of(config.model.name).directions
    with export_folder(out):
        check = _write(out, fmt, generator.eval(), config, dataset, directions)
        files = {d: direction_file(fmt, d) for d in directions}
        meta = {
            "ganforge_export": EXPORT_VERSION, "format": fmt, "file": files["a2b"], "weights": weights,
            "translator": {"directions": files}, "image_shape": dataset.get("shape"), "nimg": nimg,
            "input": {"name": "images", "shape": ["batch", *config.model.input_shape], "range": [-1.0, 1.0]},
            "output": {"name": "outputs", "shape": ["batch", *dataset.get("shape", [])], "range": [-1.0, 1.0]},
            "train": config.to_dict(), "dataset": dataset, "source_run": str(run_dir), "check": check,
            "ganforge_version": __version__, "torch_version": torch.__version__,
        }
        _copy_samples(run_dir, out)
        _write_card(out, run_dir, meta)
        finish_folder(out, meta)
    return out / files["a2b"], weights, check


def _write(out: Path, fmt: str, generator: nn.Module, config: TrainConfig, dataset: dict[str, Any],
           directions: tuple[str, ...]) -> dict[str, Any]:
    shapes = {"a2b": tuple(config.model.input_shape), "b2a": tuple(dataset.get("shape", ()))}
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, str(out / FORMATS[fmt]))
        reloaded = load_graph(out, fmt, config, dataset)
        return {"method": "safetensors reload", **_compare(generator, reloaded, directions, shapes, 0.0)}
    for direction in directions:
        write_onnx(_network(generator, direction), (torch.zeros(2, *shapes[direction]),), ["images"], "outputs",
                   out / direction_file(fmt, direction))
    version = onnxruntime_version()
    if version is None:
        return {**UNVERIFIED, "directions": list(directions)}
    worst = 0.0
    for direction in directions:
        graph = load_graph(out, fmt, config, dataset, direction_file(fmt, direction))
        worst = max(worst, _compare(_network(generator, direction), graph, ("a2b",), {"a2b": shapes[direction]},
                                    ONNX_TOLERANCE)["max_abs_diff"])
    return {"method": "onnxruntime", "directions": list(directions), "inputs": CHECK_INPUTS, "max_abs_diff": worst,
            "tolerance": ONNX_TOLERANCE, "onnxruntime_version": version}


def _network(generator: nn.Module, direction: str) -> nn.Module:
    return generator if direction == "a2b" else generator.get_submodule(direction)


@torch.no_grad()
def _compare(reference: nn.Module, exported: nn.Module, directions: tuple[str, ...],
             shapes: dict[str, tuple[int, ...]], tolerance: float) -> dict[str, Any]:
    """Max |exported - reference| over each direction on random inputs in [-1, 1]."""
    worst = 0.0
    for direction in directions:
        images = torch.rand(CHECK_INPUTS, *shapes[direction], generator=torch.Generator().manual_seed(0)) * 2 - 1
        difference = (_network(exported, direction)(images) - _network(reference, direction)(images)).abs().max()
        worst = max(worst, float(difference))
    if not worst <= tolerance:
        raise CheckpointError(f"the exported translator differs from the run's by {worst:.3g} (allowed "
                              f"{tolerance:g}); please report this with the run's config.json")
    return {"directions": list(directions), "max_abs_diff": worst}


def _copy_samples(run_dir: Path, out: Path) -> None:
    """The run's last input | output | target grid, when it is a regular file inside the run folder."""
    latest = run_dir / "samples" / "latest.png"
    if latest.is_file() and not latest.is_symlink() and latest.resolve().is_relative_to(run_dir.resolve()):
        shutil.copyfile(latest, out / SAMPLES_FILE)


def _write_card(out: Path, run_dir: Path, meta: dict[str, Any]) -> None:
    train, dataset = meta["train"], meta["dataset"]
    shapes = " -> ".join("x".join(map(str, shape)) for shape in (meta["input"]["shape"][1:],
                                                                  meta["output"]["shape"][1:]))
    lines = [f"# {run_dir.name}: a {train['model']['name']} image-to-image translator trained with ganforge", "",
             f"![held-out inputs, outputs and targets]({SAMPLES_FILE})" if (out / SAMPLES_FILE).exists() else "",
             "", "**Every output is a synthetic image**, made by a neural network from its input; label it as such.",
             "", "| | |", "|---|---|",
             f"| model | {train['model']['name']}, {shapes} (CxHxW), in [-1, 1]; directions "
             f"{', '.join(meta['translator']['directions'])} |",
             f"| trained on | {dataset.get('name', '?')}: {dataset.get('count', '?')} {dataset.get('pairing', '')} "
             f"inputs, content fingerprint `{str(dataset.get('fingerprint', '?'))[:16]}` |",
             f"| training length | {meta['nimg'] / 1000:.1f} kimg of {train['kimg']:g} planned |",
             f"| files | {', '.join(f'`{f}`' for f in meta['translator']['directions'].values())} ({meta['format']}) |",
             f"| made by | ganforge {meta['ganforge_version']}, torch {meta['torch_version']} |", "",
             f"Use it: `ganforge translate {out.name} inputs/ --out outputs/`.", ""]
    (out / "README.md").write_text("\n".join(lines))
