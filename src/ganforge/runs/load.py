"""The one place that opens what training left behind: a run folder (its config and latest checkpoint) or an
exported folder, and picks the network to sample (the EMA generator when the run kept one, else G).

generate, evaluate, serve, export and the explore tools load through here; nothing else reads checkpoints
for them, and nothing here imports the training loop.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.device import resolve_device
from ganforge.errors import CheckpointError, ConfigError
from ganforge.images import MAX_IMAGE_PIXELS
from ganforge.models import build_networks, family_of
from ganforge.models.growing import Grows, build_schedule
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.exported import build_matching, is_export_folder, load_graph, read_export
from ganforge.runs.folder import read_record, read_run_config
from ganforge.runs.weights import check_weights

ImageShape = tuple[int, int, int]
_MOVE_ASIDE = "move it out of {folder} to use the one before"


class LoadedGenerator(NamedTuple):
    generator: nn.Module  # z [B, z_dim] -> images [B, C, H, W] in [-1, 1], eval mode
    config: TrainConfig  # the training run's resolved configuration
    nimg: int  # real images shown to D when the weights were saved


def sampling_generator(generator: nn.Module, generator_ema: nn.Module | None) -> nn.Module:
    """The network samples come from: G's weight average when the run keeps one (smoother, better FID), else G."""
    return generator_ema if generator_ema is not None else generator


def load_generator(path: Path | str, device: torch.device | str = "cpu") -> LoadedGenerator:
    """(G in eval mode, the run's config, images it was trained on) from a run folder or an exported folder.

    A run folder gives its latest checkpoint's EMA generator when the run kept one, else G. An exported folder
    (config.json with a "ganforge_export" key) gives what `ganforge export` wrote, in whichever format.
    """
    path, device = Path(path), resolve_device(device) if isinstance(device, str) else device
    if is_export_folder(path):
        meta, config = read_export(path)
        _refuse_translator(path, config)
        generator = load_graph(path, meta["format"], config, meta["dataset"], meta.get("file"))
        return LoadedGenerator(generator.to(device).eval(), config, int(meta.get("nimg", 0)))
    return load_run_generator(path, device)[0]


def load_run_generator(run_dir: Path, device: torch.device | str = "cpu", *,
                       translating: bool = False) -> tuple[LoadedGenerator, str]:
    """A run folder's generator and which weights it holds: "G_ema" when the run kept an average, else "G".
    An image-to-image run's G takes images, not z: it is refused unless `translating` (see `load_translator`)."""
    device = resolve_device(device) if isinstance(device, str) else device
    config, dataset = read_run_config(run_dir)
    if not translating:
        _refuse_translator(run_dir, config)
    latest, tensors, meta = _latest(run_dir, "train longer or wait for the first --snap")
    shape = _shape(dataset)
    prefix = "G_ema" if any(k.startswith("G_ema.") for k in tensors) else "G"
    shapes = {k.removeprefix(prefix + "."): tuple(t.shape) for k, t in tensors.items() if k.startswith(prefix + ".")}
    generator = build_matching(config.model, shape, shapes, run_dir / "config.json")
    check_weights(latest, tensors, generator, prefix + ".", _MOVE_ASIDE.format(folder=latest.parent))
    ckpt.load_module(prefix, generator, tensors)
    nimg = int(meta["counters"]["cur_nimg"])
    if isinstance(generator, Grows):  # a growing run mid-way: render at the resolution it has reached
        schedule = build_schedule(True, shape[1], config.batch, config.fade_kimg, config.stable_kimg,
                                  config.grow_start)
        phase = schedule.phase_at(max(0, nimg - 1))
        generator.set_phase(phase.resolution, phase.alpha)
    return LoadedGenerator(generator.to(device).eval(), config, nimg), prefix


def holds_translator(source: Path) -> bool:
    """Whether a run or exported folder holds an image-to-image generator (False when it cannot be read: the
    loaders report that)."""
    try:
        config = read_export(source)[1] if is_export_folder(source) else read_run_config(source)[0]
        return family_of(config.model.name).translates
    except (CheckpointError, ConfigError):
        return False


def _refuse_translator(source: Path, config: TrainConfig) -> None:
    if family_of(config.model.name).translates:
        raise ConfigError(f"{source} holds an image-to-image generator ({config.model.name}): it translates images "
                          f"instead of drawing them from z; use `ganforge translate {source} INPUTS/ --out OUTPUTS/` "
                          "(or `ganforge evaluate`)")


class LoadedTranslator(NamedTuple):
    translator: nn.Module  # inputs [B, C_in, H_in, W_in] -> outputs [B, C_out, H_out, W_out], in [-1, 1], eval mode
    config: TrainConfig
    nimg: int  # images shown to D when the weights were saved
    input_shape: ImageShape  # what it takes (a direction's source domain)
    output_shape: ImageShape  # what it makes


def load_translator(run_dir: Path | str, direction: str = "a2b", device: torch.device | str = "cpu"
                    ) -> LoadedTranslator:
    """An image-to-image run's latest generator (its average when the run kept one) for `direction`: "a2b"
    translates the store's inputs (A) to its targets (B); "b2a" the other way, for families that train both."""
    run_dir = Path(run_dir)
    export = is_export_folder(run_dir)
    meta, config = read_export(run_dir) if export else (None, read_run_config(run_dir)[0])
    dataset = meta["dataset"] if meta is not None else read_run_config(run_dir)[1]
    family = family_of(config.model.name)
    if not family.translates:
        raise ConfigError(f"{run_dir} holds a {config.model.name} generator, which draws images from noise; translate "
                          f"takes an image-to-image run (pix2pix, cyclegan, srgan): use `ganforge generate {run_dir}`")
    if direction not in family.directions:
        raise ConfigError(f"--direction {direction}: --model {family.name} learns {' and '.join(family.directions)}"
                          f" only; use --direction {family.directions[0]}")
    output_shape = _shape(dataset)
    input_shape = _shape({"shape": list(config.model.input_shape)})
    if meta is not None:
        made = output_shape if direction == "a2b" else input_shape
        generator, nimg = _exported_translator(run_dir, meta, config, direction, made), int(meta.get("nimg", 0))
    else:
        (generator, config, nimg), _ = load_run_generator(run_dir, device, translating=True)
        generator = generator if direction == "a2b" else generator.get_submodule(direction)  # CycleGAN's F
    if direction == "b2a":
        input_shape, output_shape = output_shape, input_shape
    return LoadedTranslator(generator.to(device).eval(), config, nimg, input_shape, output_shape)


def _exported_translator(folder: Path, meta: dict[str, Any], config: TrainConfig, direction: str,
                         output_shape: ImageShape) -> nn.Module:
    """A direction's network from an exported folder: the whole G's safetensors, or the direction's ONNX graph."""
    files = meta.get("translator", {}).get("directions", {}) if isinstance(meta.get("translator"), dict) else {}
    file = files.get(direction) if isinstance(files, dict) else None
    if not isinstance(file, str) or not re.fullmatch(r"[\w-][\w.-]*", file) or ".." in file:
        raise CheckpointError(f"{folder / 'config.json'} names no plain file in the folder for direction {direction}; "
                              "export it again")
    network = load_graph(folder, meta["format"], config, meta["dataset"], file, output_shape)
    if meta["format"] == "safetensors" and direction != "a2b":
        network = network.get_submodule(direction)
    return network


def load_discriminator(run_dir: Path, device: torch.device | str = "cpu") -> nn.Module:
    """A run's latest D in eval mode (for diagnostics such as the feature probe)."""
    config, dataset = read_run_config(run_dir)
    latest, tensors, _ = _latest(run_dir, "train longer before probing its discriminator")
    discriminator = build_networks(config.model, _shape(dataset)).discriminator
    check_weights(latest, tensors, discriminator, "D.", _MOVE_ASIDE.format(folder=latest.parent))
    ckpt.load_module("D", discriminator, tensors)
    return discriminator.to(device).eval()


def class_names(source: Path, config: TrainConfig) -> list[str]:
    """The classes a conditional run (or its export) draws, in label order: the store's label names from the
    folder's config.json, or "0".."K-1" when it has none; [] for an unconditional run."""
    if not config.model.conditional:
        return []
    return _recorded_names(source, config.model.num_classes) or [str(i) for i in range(config.model.num_classes)]


def _recorded_names(source: Path, count: int) -> list[str]:
    """The label names the folder's config.json records, when they are `count` strings; else [] (an old or
    hand-edited record: the indices are still valid names)."""
    dataset = read_record(source).get("dataset")
    names = dataset.get("label_names") if isinstance(dataset, dict) else None
    if not isinstance(names, list) or len(names) != count or not all(isinstance(n, str) for n in names):
        return []
    return names


def resolve_class(source: Path, config: TrainConfig, text: str) -> int:
    """--class NAME (a label name from the store, e.g. a subfolder) or its index -> the class index."""
    if not config.model.conditional:
        raise ConfigError(f"--class needs a class-conditional run; {source} was trained without --cond")
    names = _recorded_names(source, config.model.num_classes)
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < config.model.num_classes:
        return int(text)
    names = names or [str(i) for i in range(config.model.num_classes)]
    shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    raise ConfigError(f"--class {text!r} is not a class of {source}; choose one of: {shown}")


def _latest(run_dir: Path, hint: str) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise CheckpointError(f"{run_dir} has no checkpoint yet; {hint}.")
    return latest, *ckpt.load_checkpoint(latest)


def _shape(dataset: dict[str, Any]) -> ImageShape:
    shape = dataset.get("shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise CheckpointError(f"the run's config.json records no valid image shape ({shape!r}); it is damaged")
    if shape[1] * shape[2] > MAX_IMAGE_PIXELS:  # a fully convolutional G has the same weights at any size
        raise CheckpointError(f"the run's config.json records images of {'x'.join(map(str, shape))}, more than "
                              f"the {MAX_IMAGE_PIXELS:,} pixels per image ganforge makes (4096 x 4096); it was "
                              "edited, train or export again")
    return (shape[0], shape[1], shape[2])
