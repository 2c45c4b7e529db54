"""Weights a network can take. `load_state_dict` casts each tensor to its parameter's dtype and copies NaN as it
is, so int32 or non-finite weights load without a word and draw blank images: these refuse them, naming the
file and the tensor. ganforge never writes either (a checkpoint with NaN is refused at save)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ganforge.errors import CheckpointError


def weight_problem(tensor: torch.Tensor, like: torch.Tensor) -> str | None:
    """Why `tensor` cannot stand in for `like` (a network's parameter or buffer), as a phrase; None if it can."""
    if tensor.is_floating_point() != like.is_floating_point():
        wanted = "floating point" if like.is_floating_point() else _dtype(like)
        return f"is {_dtype(tensor)}, not {wanted}"
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        return "holds NaN or infinity"
    return None


def check_weights(source: Path, tensors: Mapping[str, torch.Tensor], module: nn.Module, prefix: str,
                  fix: str) -> None:
    """Refuse, in one line naming `source`, the tensor and `fix` (what to do), weights of `module` (its names
    after `prefix` in `tensors`) that it cannot take; missing or misshapen ones are load_state_dict's to report."""
    for name, like in module.state_dict().items():
        tensor = tensors.get(prefix + name)
        if tensor is not None and (problem := weight_problem(tensor, like)) is not None:
            raise CheckpointError(f"{source}: tensor {prefix}{name} {problem}; ganforge never writes such weights "
                                  f"(the file was edited or damaged): {fix}")


def _dtype(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")
