"""Refuse a run that cannot fit in memory before anything is allocated: a lower bound of what training needs,
from the parameter counts (networks built on the meta device) and one batch of images, against what is free."""

from __future__ import annotations

import torch

from ganforge.data.store import available_ram_bytes
from ganforge.errors import ConfigError

# Each trained parameter is held as weight, gradient and Adam's two moments, in float32 (G's EMA copy is more).
BYTES_PER_PARAMETER = 4 * 4
# One step holds at least the reals, the fakes and their gradients, as float32: 4 copies of the batch's pixels.
BYTES_PER_PIXEL = 4 * 4


def free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return available_ram_bytes()


def check_fits(parameters: int, batch: int, image_shape: tuple[int, ...], device: torch.device,
               size_flags: str = "--g-width, --d-width or --z-dim") -> None:
    """ConfigError naming the flags to shrink when even the lower bound of training's memory exceeds what the
    device has free. Activations are not counted, so passing this check does not promise that a run fits."""
    free, where = free_bytes(device), "this machine" if device.type == "cpu" else str(device)
    weights = parameters * BYTES_PER_PARAMETER
    if weights > free:
        raise ConfigError(f"the networks have {parameters:,} parameters: training needs at least {_gb(weights)} for "
                          f"weights, gradients and Adam's moments, but {where} has {_gb(free)} free; use a smaller "
                          f"{size_flags}")
    pixels = batch * int(torch.Size(image_shape).numel()) * BYTES_PER_PIXEL
    if weights + pixels > free:
        raise ConfigError(f"--batch {batch}: one batch of {'x'.join(map(str, image_shape))} images needs at least "
                          f"{_gb(pixels)} besides {_gb(weights)} for the networks, but {where} has {_gb(free)} "
                          "free; use a smaller --batch (--batch-gpu N accumulates a large batch in passes of N)")


def _gb(count: int) -> str:
    return f"{count / 1e9:,.1f} GB"
