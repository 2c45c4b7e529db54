"""The images a detector learns from and is scored on: reals from stores or folders, fakes drawn from ganforge
runs or exports (seeds recorded) or read from stores or folders, all resized to one RGB size, each labelled
(1 = generated) and tagged with its source so that results can be reported per generator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.errors import DataError
from ganforge.generator import load_generator
from ganforge.metrics.sources import as_source
from ganforge.runs.exported import is_export_folder

REAL, FAKE = 0.0, 1.0


@dataclass
class LabelledImages:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    labels: torch.Tensor  # float32 [N]: 0 real, 1 generated
    sources: list[str]  # per image: the source it came from (a run, export, store or folder)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> LabelledImages:
        chosen = torch.as_tensor(index, dtype=torch.long)
        return LabelledImages(self.images[chosen], self.labels[chosen], [self.sources[i] for i in index.tolist()])


def is_generator_source(path: Path) -> bool:
    """A run folder or an exported folder: its images are drawn, not read."""
    return path.is_dir() and ((path / "checkpoints").is_dir() or is_export_folder(path))


def load_images(path: str | Path, count: int, size: int, label: float, seed: int = 0,
                skip: int = 0) -> LabelledImages:
    """`count` images of `path` (all of a smaller store or folder) at size x size RGB, labelled `label`.

    A run or export draws seeds seed..seed+count-1 (classes in turn for a conditional one); a store or folder
    gives its images from position `skip` on (evaluation skips those a detector trained on)."""
    path = Path(path)
    if is_generator_source(path):
        images = load_generator(path).sample(count, seed=seed)
    else:
        source = as_source(path)  # each batch resized as it comes: large photos never all sit in memory at once
        images = torch.cat([resize(batch, size) for batch in source.batches(256, skip + count)])[skip:]
    if len(images) < 2:
        held = f" after the first {skip}, which the detector trained on" if skip else ""
        raise DataError(f"{path} gave {len(images)} image(s){held}; a detector needs at least 2 per source")
    return LabelledImages(resize(images, size), torch.full((len(images),), label), [str(path)] * len(images))


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, 1|3, H, W] -> uint8 [N, 3, size, size] (antialiased bilinear; grey repeated into RGB)."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images.contiguous()
    # torch resizes the width first, into [N, C, height, size] floats: for an image far taller than wide (1 x
    # 5,000,000 px: 15 GB) resizing the height first keeps that intermediate within the output's size.
    steps = [(size, width), (size, size)] if height * size > max(height * width, size * size) else [(size, size)]
    out = []
    for chunk in images.split(256):
        floats = chunk.float()
        for step in steps:
            floats = F.interpolate(floats, size=step, mode="bilinear", antialias=True, align_corners=False)
        out.append(floats)
    return torch.cat(out).round().clamp(0, 255).to(torch.uint8)


def combine(parts: list[LabelledImages]) -> LabelledImages:
    return LabelledImages(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                          [s for p in parts for s in p.sources])


def split_by_image(count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: a seeded permutation, so a resume gets the same split."""
    order = np.random.default_rng(seed).permutation(count)
    validation = max(1, int(round(count * val_fraction)))
    return np.sort(order[validation:]), np.sort(order[:validation])


def to_network(images_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float [B, 3, S, S] in [0, 1] on `device`: the space attacks perturb in."""
    return images_uint8.to(device).float().div_(255.0)


def held_out(detector: Any, path: str | Path) -> int:
    """How many leading images of a real source to skip when scoring a detector: those it trained on (all of
    its first images_per_source) when it trained on that source, none otherwise."""
    trained_on = {str(Path(p)) for p in detector.config.real}
    return detector.config.images_per_source if str(Path(path)) in trained_on else 0
