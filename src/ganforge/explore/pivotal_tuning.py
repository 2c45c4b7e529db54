"""Pivotal tuning (Roich et al. 2022, "Pivotal Tuning for Latent-based Editing of Real Images"): after a projection
has found the latent that comes closest to a photo (the pivot), the generator's own weights are fine-tuned for a
few hundred steps so that G(pivot) reproduces the photo, with the latent held fixed.

A projection alone trades fidelity for editability: latents that reproduce a photo closely lie off the region the
generator was trained on, and edits of them break. Tuning G around an in-distribution pivot gets both, because a
small change of the weights moves the neighbourhood of the pivot, and the directions found on the original G still
act there. The paper tunes with LPIPS + L2 at learning rate 3e-4 for 350 steps; here the loss is the projection's
own (pixel MSE + feature loss). Its optional locality regulariser (keeping G's other images as they were) is not
applied: the tuned G is meant for editing this one photo, and is written apart from the run (`tuned/`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ganforge.config import TrainConfig
from ganforge.export.folder import export_folder, finish_folder
from ganforge.export.generator import write_samples
from ganforge.runs.exported import EXPORT_VERSION, FORMATS
from ganforge.runs.folder import read_record
from ganforge.version import __version__

TUNE_LR = 3e-4  # the paper's learning rate
TUNED_FOLDER = "tuned"


def tune_around_pivot(generator: nn.Module, draw: Callable[[], torch.Tensor],
                      loss_of: Callable[[torch.Tensor], torch.Tensor], steps: int, lr: float = TUNE_LR) -> list[float]:
    """Fine-tune `generator`'s float parameters in place for `steps` Adam steps on loss_of(draw()) (draw renders
    the fixed pivot); the loss per step. The generator is left frozen again."""
    parameters = [p for p in generator.parameters() if p.is_floating_point()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_of(draw()).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())  # read once at the end
    generator.requires_grad_(False)
    return [float(v) for v in losses]


def write_tuned_export(folder: Path, generator: nn.Module, config: TrainConfig, nimg: int, source: Path,
                       tuning: dict[str, Any]) -> None:
    """`folder` as a safetensors export of the tuned generator (its noise maps included), so that `ganforge
    generate`, `serve` and `--edit` can draw with it; config.json records the source and the tuning."""
    dataset = read_record(source).get("dataset", {})
    with export_folder(folder):
        file = FORMATS["safetensors"]
        save_file({k: v.detach().contiguous() for k, v in generator.state_dict().items()}, str(folder / file))
        write_samples(folder / "samples.png", generator, config)
        finish_folder(folder, {
            "ganforge_export": EXPORT_VERSION, "format": "safetensors", "file": file,
            "weights": "pivotal-tuned", "z_dim": config.model.z_dim, "image_shape": dataset.get("shape"),
            "nimg": nimg, "train": config.to_dict(), "dataset": dataset, "source_run": str(source.resolve()),
            "pivotal_tuning": tuning,
            "ganforge_version": __version__, "torch_version": torch.__version__,
        })
