"""Reading a folder written by `ganforge export`: its config.json record and its generator, in any format.

Formats, safest first: safetensors holds tensors only and is rebuilt from the model registry; ONNX runs in
onnxruntime; TorchScript is a graph with code that `torch.jit.load` runs (load only files you trust).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from ganforge.config import ModelConfig, TrainConfig
from ganforge.errors import CheckpointError, ConfigError, GanforgeError
from ganforge.images import MAX_IMAGE_PIXELS
from ganforge.models import build_networks, family_of
from ganforge.regular_files import check_regular
from ganforge.runs.folder import CONFIG_FILE, is_image_shape, read_record
from ganforge.runs.onnx_generator import OnnxGenerator, check_made
from ganforge.runs.weights import check_weights

ImageShape = tuple[int, int, int]
# The safetensors file has the Hugging Face name; exports from before ganforge 0.2 named it generator.safetensors,
# and config.json's "file" says which.
FORMATS = {"safetensors": "model.safetensors", "onnx": "generator.onnx", "torchscript": "generator.pt"}
EXPORT_VERSION = 1
# `ganforge export --with-discriminator` writes D here, beside G, so an export can be fine-tuned (`train --init`).
DISCRIMINATOR_FILE = "discriminator.safetensors"


def is_export_folder(path: Path) -> bool:
    try:
        record = read_record(path)
    except CheckpointError:
        return False  # read_run_config reports what is wrong with the folder
    return "ganforge_export" in record


def read_export(folder: Path) -> tuple[dict[str, Any], TrainConfig]:
    """(the export's config.json record, the training config it carries), checked for a version we read."""
    meta = read_record(folder)
    where = folder / CONFIG_FILE
    if meta.get("ganforge_export") != EXPORT_VERSION or meta.get("format") not in FORMATS:
        raise CheckpointError(f"{where} is not an export this ganforge reads (version "
                              f"{meta.get('ganforge_export')!r}, format {meta.get('format')!r}); export it again")
    nimg, dataset = meta.get("nimg", 0), meta.get("dataset")
    if isinstance(nimg, bool) or not isinstance(nimg, int) or nimg < 0:
        raise CheckpointError(f"{where}: nimg is {nimg!r}, not a count of images; export it again")
    if not isinstance(dataset, dict) or not is_image_shape(dataset.get("shape")):
        raise CheckpointError(f"{where} records no valid image shape (dataset.shape); export it again")
    check_image_size(dataset["shape"], where, "dataset.shape")
    file = meta.get("file", FORMATS[meta["format"]])
    if not isinstance(file, str) or not re.fullmatch(r"[\w-][\w.-]*", file) or ".." in file:
        raise CheckpointError(f"{where}: file {file!r} is not a plain file name in the folder; export it again")
    if not isinstance(meta.get("train"), dict):
        raise CheckpointError(f"{where} has no training config (\"train\"); export it again")
    try:
        config = TrainConfig.from_dict(meta["train"])
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}; export it again") from exc
    if config.model.input_shape:
        check_image_size(config.model.input_shape, where, "train.model.input_shape")
    return meta, config


def check_image_size(shape: Any, where: Path, field: str) -> None:
    """Refuse a recorded (C, H, W) of more than MAX_IMAGE_PIXELS per image, before anything of that size is
    built, decoded or drawn."""
    channels, height, width = shape
    if height * width > MAX_IMAGE_PIXELS:
        raise CheckpointError(f"{where}: {field} says {channels}x{height}x{width} images, more than the "
                              f"{MAX_IMAGE_PIXELS:,} pixels per image ganforge makes (4096 x 4096); the record was "
                              "edited, export (or train) again")


def build_matching(model: ModelConfig, shape: ImageShape, tensor_shapes: dict[str, tuple[int, ...]],
                   where: Path) -> nn.Module:
    """The generator `model` describes, built only once its parameter names and shapes match `tensor_shapes`
    (read from a file's header): an edited config (g_width 3000) must not allocate gigabytes before failing."""
    with torch.device("meta"):
        skeleton = build_networks(model, shape).generator
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    for name in sorted(expected.keys() | tensor_shapes.keys()):
        if expected.get(name) != tensor_shapes.get(name):
            raise CheckpointError(f"{where}: tensor {name} is {_shown(tensor_shapes.get(name))} but the recorded "
                                  f"config builds {_shown(expected.get(name))}; the config or the weights were "
                                  "edited, export (or train) again")
    return build_networks(model, shape).generator


def _shown(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else f"[{', '.join(map(str, shape))}]"


def load_graph(folder: Path, fmt: str, config: TrainConfig, dataset: dict[str, Any], file: str | None = None,
               output_shape: ImageShape | None = None) -> nn.Module:
    """The exported generator file (`file`, by default the format's name) in `folder`, in eval mode on the CPU.
    `output_shape`: what it makes, when not the dataset's shape (a translator's b2a graph); an ONNX graph that
    makes anything else is refused."""
    path = folder / (file or FORMATS[fmt])
    try:
        check_regular(path)  # the readers below would block on a FIFO for good, or read /dev/zero forever
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the exported folder is incomplete, export it again") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: {exc.strerror}; export it again") from None
    try:
        if fmt == "safetensors":
            shape = dataset["shape"]
            with safe_open(str(path), "pt") as header:
                shapes = {name: tuple(header.get_slice(name).get_shape()) for name in header.keys()}
            generator = build_matching(config.model, (shape[0], shape[1], shape[2]), shapes, path)
            tensors = load_file(str(path))
            check_weights(path, tensors, generator, "", "export it again")
            generator.load_state_dict(tensors, strict=True)
            return generator.eval()
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still the format
                warnings.simplefilter("ignore", FutureWarning)
                graph = torch.jit.load(str(path), map_location="cpu").eval()
            shape = output_shape or tuple(dataset["shape"])
            return CheckedGraph(graph, path, (shape[0], shape[1], shape[2]),
                                takes_psi=family_of(config.model.name).truncation == "w")
        shape = output_shape or tuple(dataset["shape"])
        return OnnxGenerator(path, (shape[0], shape[1], shape[2]))
    except GanforgeError:
        raise
    except Exception as exc:  # safetensors, torch.jit and onnxruntime each raise their own error types
        raise CheckpointError(f"{path} cannot be loaded ({exc}); export it again") from exc


class CheckedGraph(nn.Module):
    """A TorchScript export behind the G(z[, psi=...]) interface (a style-based G is traced as graph(z, psi)), each
    output checked as an ONNX graph's is: a graph is a file a user hands in, and may make anything."""

    def __init__(self, graph: nn.Module, path: Path, output_shape: ImageShape, *, takes_psi: bool) -> None:
        super().__init__()
        self.graph, self.path, self.output_shape, self.takes_psi = graph, path, output_shape, takes_psi

    def forward(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        if self.takes_psi:
            made = self.graph(z, torch.full((1,), float(psi), device=z.device))
        elif psi != 1.0:
            raise ConfigError("this TorchScript generator truncates in z: pull the latents, not psi")
        else:
            made = self.graph(z)
        if not isinstance(made, torch.Tensor):
            raise CheckpointError(f"{self.path}: its graph made a {type(made).__name__}, not images; export it again "
                                  "with `ganforge export`")
        check_made(self.path, str(made.dtype), made.dtype == torch.float32, tuple(made.shape), len(z),
                   self.output_shape)
        return made
