"""Exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019).

The decay is set by a half-life in images, as in StyleGAN2-ADA, so it means the same at any batch size:
beta = 0.5 ** (batch / (ema_kimg * 1000)). With a ramp-up the half-life is also capped at `rampup` times the
images seen so far, so the average forgets the random initial weights quickly. Buffers (BatchNorm statistics)
are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema_copy(generator: nn.Module) -> nn.Module:
    ema = copy.deepcopy(generator).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, generator: nn.Module, batch: int, ema_kimg: float, rampup: float,
               cur_nimg: int) -> None:
    ema_nimg = ema_kimg * 1000.0
    if rampup > 0:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    # One multi-tensor kernel per list rather than one launch per tensor: the step's host work stays small.
    averaged: list[torch.Tensor] = list(ema.parameters())
    current: list[torch.Tensor] = list(generator.parameters())
    if len(averaged) != len(current):
        raise ValueError(f"the EMA copy has {len(averaged)} parameters, G {len(current)}")
    if averaged:
        torch._foreach_lerp_(averaged, current, 1.0 - beta)
    copies, sources = list(ema.buffers()), list(generator.buffers())
    if len(copies) != len(sources):
        raise ValueError(f"the EMA copy has {len(copies)} buffers, G {len(sources)}")
    if copies:
        torch._foreach_copy_(copies, sources)
