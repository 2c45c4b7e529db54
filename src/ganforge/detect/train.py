"""`ganforge detect train`: the detector's training loop, with the run-folder conventions of `ganforge train`
(config.json, a status line and a log.jsonl row per tick, checksummed safetensors checkpoints, a lock, SIGINT
writes a checkpoint) and exact resume: the model, Adam, the seeded NumPy generator that draws every batch and
augmentation, and the torch RNG are all checkpointed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.data.store import is_store
from ganforge.detect.attack import attack
from ganforge.detect.augment import robust_augment
from ganforge.detect.config import DetectConfig
from ganforge.detect.data import FAKE, REAL, LabelledImages, combine, load_images, split_by_image, to_network
from ganforge.detect.networks import build_detector
from ganforge.device import flush_denormals, resolve_device
from ganforge.errors import CheckpointError, ConfigError, TrainingInterrupted
from ganforge.regular_files import append_regular, read_json
from ganforge.runs import checkpoint as ckpt
from ganforge.runs.lock import lock_run
from ganforge.runs.weights import check_weights
from ganforge.version import __version__

CONFIG_FILE, LOG_FILE = "config.json", "log.jsonl"
DETECTOR_FORMAT = 1
VALIDATION_LIMIT = 2000  # held-out images scored each tick


@dataclass
class Detector:
    """A trained detector, loaded: the network in eval mode and what it was trained on."""

    model: nn.Module
    config: DetectConfig
    step: int
    folder: Path

    @torch.no_grad()
    def probabilities(self, images_uint8: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """P(generated) for uint8 images [N, 3, S, S] at the detector's size, on the CPU."""
        device = next(self.model.parameters()).device
        return torch.cat([torch.sigmoid(self.model(to_network(chunk, device))).cpu()
                          for chunk in images_uint8.split(batch)]) if len(images_uint8) else torch.zeros(0)


def read_detector_config(folder: Path) -> DetectConfig:
    path = folder / CONFIG_FILE
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder} is not a detector folder ({path}: {exc}); pass the --out of "
                              "`ganforge detect train`") from exc
    if not isinstance(record, dict) or record.get("ganforge_detector") != DETECTOR_FORMAT:
        raise CheckpointError(f"{path} is not a ganforge detector's config; pass the --out of `ganforge detect train`")
    try:
        return DetectConfig.from_dict(record.get("detect"))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def load_detector(folder: Path, device: str = "cpu") -> Detector:
    """The newest intact checkpoint of a detector folder, in eval mode."""
    flush_denormals()  # attacks take gradients: denormals made them several times slower on the CPU
    config = read_detector_config(folder)
    resumed = ckpt.load_latest_intact(folder, lambda _: None, move_damaged=False)
    if resumed is None:
        raise CheckpointError(f"{folder} has no checkpoint yet; train it longer (`ganforge detect train --resume "
                              f"{folder}`)")
    path, tensors, meta = resumed
    model = build_detector(config.backbone)
    check_weights(path, tensors, model, "model.", f"move it out of {path.parent} to use the one before")
    ckpt.load_module("model", model, tensors)
    return Detector(model.to(resolve_device(device)).eval(), config, int(meta["step"]), folder)


def train_detector(config: DetectConfig | None, out: Path, *, resume: bool = False,
                   echo: Callable[[str], None] = print) -> Detector:
    """Train a new detector into the folder `out`, or (resume=True) continue the one there."""
    # Fine-tuning EfficientNet-Lite0 with Adam slowed from 1.5 to 12 s a step within six steps on this CPU as
    # moments fell into the denormal range; flushed, it stays at 1.2-1.5 s.
    flush_denormals()
    if resume:
        config = read_detector_config(out)
    elif config is None:
        raise ConfigError("detect train needs --real and --fake (or --resume DET)")
    elif os.path.lexists(out) and not out.is_dir():
        raise ConfigError(f"--out {out} is {'a store' if is_store(out) else 'a file'}, not a folder; name a new "
                          "folder for the detector")
    elif out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; choose a new folder, or --resume {out}")
    assert config is not None
    data = _load_data(config, echo)
    train_index, val_index = split_by_image(len(data), config.val_fraction, config.seed)
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
    with lock_run(out):
        if not resume:
            record = {"ganforge_detector": DETECTOR_FORMAT, "ganforge_version": __version__,
                      "detect": config.to_dict(),
                      "counts": {s: data.sources.count(s) for s in dict.fromkeys(data.sources)}}
            (out / CONFIG_FILE).write_text(json.dumps(record, indent=2))
        return _loop(config, out, data.subset(train_index), data.subset(val_index), echo)


def _load_data(config: DetectConfig, echo: Callable[[str], None]) -> LabelledImages:
    parts = [load_images(p, config.images_per_source, config.size, REAL) for p in config.real]
    parts += [load_images(p, config.images_per_source, config.size, FAKE, config.seed) for p in config.fake]
    data = combine(parts)
    echo(f"detector data: {int((data.labels == REAL).sum())} real images from {len(config.real)} source(s), "
         f"{int((data.labels == FAKE).sum())} generated from {len(config.fake)}, at {config.size} px")
    return data


def _loop(config: DetectConfig, out: Path, train: LabelledImages, val: LabelledImages,
          echo: Callable[[str], None]) -> Detector:
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = build_detector(config.backbone).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    step, sums = 0, {"loss": 0.0, "correct": 0.0, "seen": 0.0}
    resumed = ckpt.load_latest_intact(out, echo)
    if resumed is not None:
        path, tensors, meta = resumed
        step, sums = _restore(path, tensors, meta, model, optimizer, rng, config)
        echo(f"resumed from {path} at step {step}")
    by_class = [np.flatnonzero(train.labels.numpy() == label) for label in (REAL, FAKE)]
    stop: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: stop.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)}
    started, steps_at_start = time.perf_counter(), step
    try:
        while step < config.steps and not stop:
            half = config.batch // 2
            index = np.concatenate([rng.choice(by_class[0], half), rng.choice(by_class[1], half)])
            images = train.images[torch.as_tensor(index)]
            if config.augment:
                images = robust_augment(images, rng)
            x, y = to_network(images, device), train.labels[torch.as_tensor(index)].to(device)
            if config.adversarial != "none":  # clean and attacked halves, as adversarial training usually mixes
                x = torch.cat([x, attack(config.adversarial, model, x, y, config.eps, config.attack_steps)])
                y = torch.cat([y, y])
            model.train()
            logits = model(x)
            loss = F.binary_cross_entropy_with_logits(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            sums["loss"] += float(loss.detach()) * len(y)
            sums["correct"] += float(((logits > 0).float() == y).sum())
            sums["seen"] += len(y)
            if step % config.tick_steps == 0 or step == config.steps:
                _tick(model, out, config, step, sums, val, device, time.perf_counter() - started,
                      step - steps_at_start, echo, optimizer, rng)
                sums = {"loss": 0.0, "correct": 0.0, "seen": 0.0}
        if stop and step < config.steps:
            _save(out, model, optimizer, rng, step, sums, config)
            raise TrainingInterrupted(stop[0], f"at step {step}, checkpoint written; continue with `ganforge detect "
                                      f"train --resume {out}`")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    echo(f"done: {step} steps. Score images with `ganforge detect {out} IMAGES...`, evaluate with `ganforge "
         f"detect eval {out} --real STORE --fake RUN`")
    return Detector(model.eval(), config, step, out)


def _tick(model: nn.Module, out: Path, config: DetectConfig, step: int, sums: dict[str, float],
          val: LabelledImages, device: torch.device, seconds: float, steps_done: int,
          echo: Callable[[str], None], optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> None:
    detector = Detector(model.eval(), config, step, out)
    validation = val.subset(np.arange(min(len(val), VALIDATION_LIMIT)))
    predicted = (detector.probabilities(validation.images) > 0.5).float()
    val_accuracy = float((predicted == validation.labels).float().mean())
    record = {"tick": step // config.tick_steps, "step": step, "loss": sums["loss"] / max(1, sums["seen"]),
              "train_accuracy": sums["correct"] / max(1, sums["seen"]), "val_accuracy": val_accuracy,
              "img_per_s": steps_done * config.batch / max(seconds, 1e-9)}
    append_regular(out / LOG_FILE, json.dumps(record) + "\n")  # a FIFO there must not block training
    echo(f"tick {record['tick']:<4d} step {step:<7d} loss {record['loss']:.4f} train acc "
         f"{record['train_accuracy']:.1%} val acc {val_accuracy:.1%} img/s {record['img_per_s']:.0f}")
    if record["tick"] % config.snap == 0 or step == config.steps:
        _save(out, model, optimizer, rng, step, {"loss": 0.0, "correct": 0.0, "seen": 0.0}, config)


def _save(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, rng: np.random.Generator, step: int,
          sums: dict[str, float], config: DetectConfig) -> None:
    opt_tensors, opt_meta = ckpt.optimizer_tensors("opt", optimizer)
    tensors = {**ckpt.module_tensors("model", model), **opt_tensors, "rng.torch": torch.get_rng_state()}
    meta = {"step": step, "sums": sums, "rng_numpy": rng.bit_generator.state, "opt": opt_meta,
            "detect": config.to_dict()}
    ckpt.save_checkpoint(ckpt.checkpoint_path(out, step), tensors, meta)
    ckpt.prune_checkpoints(out, config.keep)


def _restore(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], model: nn.Module,
             optimizer: torch.optim.Optimizer, rng: np.random.Generator,
             config: DetectConfig) -> tuple[int, dict[str, float]]:
    try:
        step, sums, state = meta["step"], meta["sums"], meta["rng_numpy"]
        if not (isinstance(step, int) and 0 <= step <= config.steps and isinstance(sums, dict)
                and set(sums) == {"loss", "correct", "seen"} and state.get("bit_generator") == "PCG64"):
            raise ValueError("its step, tick sums or random state are not what a detector checkpoint holds")
        check_weights(path, tensors, model, "model.", f"move it out of {path.parent} to resume from the one before")
        ckpt.load_module("model", model, tensors)
        ckpt.load_optimizer("opt", optimizer, tensors, meta["opt"])
        rng.bit_generator.state = state
        torch.set_rng_state(tensors["rng.torch"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} cannot be resumed ({exc}); move it out of {path.parent} to resume from the "
                              "one before") from exc
    return step, {k: float(v) for k, v in sums.items()}
