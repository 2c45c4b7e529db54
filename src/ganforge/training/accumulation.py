"""Gradient accumulation: one optimizer step over a device's share of the batch, run as several smaller passes.

Every loss and penalty is a mean over samples, so weighting each pass by its share of the samples and summing
the gradients gives the full batch's gradient (up to summation order). What differs is what is computed per
pass by design: BatchNorm statistics and minibatch-stddev groups see the pass, and random draws (augmentation,
dropout, label flips) are made per pass. Under DDP only the last pass all-reduces the gradients (`no_sync`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class StepBatch:
    """One step's inputs on this device: its share of the global batch, and how many passes to run it in."""

    reals: torch.Tensor
    labels: torch.Tensor | None
    latents: torch.Tensor
    rounds: int = 1


def rounds_for(per_device_batch: int, batch_gpu: int, smallest_pass: int = 1) -> int:
    """Passes to run `per_device_batch` images at most `batch_gpu` at a time (0: all at once), preferring a
    count that splits them evenly: one input shape for cuDNN and torch.compile to tune, and the same BatchNorm
    and minibatch-stddev group sizes in every pass. No pass gets fewer than `smallest_pass` images (BatchNorm
    needs 2), even if one then holds a few more than `batch_gpu`."""
    if batch_gpu <= 0 or batch_gpu >= per_device_batch:
        return 1
    most = max(1, per_device_batch // smallest_pass)
    fewest = min(math.ceil(per_device_batch / batch_gpu), most)
    even = (r for r in range(fewest, min(2 * fewest, most + 1)) if per_device_batch % r == 0)
    return next(even, fewest)


def split(tensor: torch.Tensor, rounds: int) -> tuple[torch.Tensor, ...]:
    """Near-equal consecutive parts (sizes differ by at most one)."""
    return tensor.tensor_split(rounds) if rounds > 1 else (tensor,)


def split_optional(tensor: torch.Tensor | None, rounds: int) -> tuple[torch.Tensor | None, ...]:
    return (None,) * rounds if tensor is None else split(tensor, rounds)


def passes(rounds: int, *tensors: torch.Tensor | None) -> Iterator[tuple[bool, float, tuple[torch.Tensor | None, ...]]]:
    """(is_last, weight, parts) per pass: the parts of each tensor (None stays None), weighted by their share."""
    parts = [split_optional(t, rounds) for t in tensors]
    total = next(t.shape[0] for t in tensors if t is not None)
    for index, chunk in enumerate(zip(*parts, strict=True)):
        size = next(t.shape[0] for t in chunk if t is not None)
        yield index == rounds - 1, size / total, chunk


@contextlib.contextmanager
def gradient_sync(last: bool, *modules: nn.Module) -> Iterator[None]:
    """Inside, DDP modules skip their gradient all-reduce unless this is the last pass of the step."""
    with contextlib.ExitStack() as stack:
        if not last:
            for module in modules:
                if isinstance(module, DistributedDataParallel):
                    stack.enter_context(module.no_sync())
        yield
