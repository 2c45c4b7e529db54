"""Path-length regularization of a style-based G (Karras et al. 2020, StyleGAN2 Sec. 3.2, Eq. 4).

E_{w, y ~ N(0, I)} (||J_w^T y||_2 - a)^2, where J_w is the Jacobian of the image with respect to w and a the
running mean of the lengths (decay 0.01): a fixed-size step in W should change the image by a fixed amount,
whatever the direction. J_w^T y is one backward pass: the gradient of sum(g(w) * y) with respect to w, with y
scaled by 1/sqrt(H W) so that the length does not depend on the resolution. Lazy (Sec. 3.1): computed every
`every` G steps on half the batch and multiplied by `every`.

The mean a and the step count are the run's state: `state_dict()` goes into every checkpoint, so a resumed
run regularizes on the same steps against the same a.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ganforge.errors import CheckpointError

PL_DECAY = 0.01
PL_BATCH_SHRINK = 2  # the penalty sees half of the G batch (StyleGAN2's pl_minibatch_shrink)


class PathLengthPenalty:
    what = "path-length state"
    required_on_resume = False  # --pl-weight may be switched on at resume: a fresh mean then

    def __init__(self, weight: float, every: int, device: torch.device) -> None:
        self.weight, self.every = weight, every
        self.pl_mean = torch.zeros((), device=device)
        self.g_steps = 0  # G steps taken so far: the lazy phase

    def due(self) -> bool:
        return self.g_steps % self.every == 0

    def penalty(self, generator: nn.Module, latents: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The weighted penalty on the first half of `latents`; `generator(z, y, return_ws=True)` must return
        (images, ws) with ws in the graph."""
        size = max(1, latents.shape[0] // PL_BATCH_SHRINK)
        images, ws = generator(latents[:size], None if labels is None else labels[:size], return_ws=True)
        # randn of the shape, not randn_like: the same draws whatever the memory layout (channels_last).
        noise = torch.randn(images.shape, device=images.device, dtype=images.dtype)
        noise = noise / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * noise).sum(), ws, create_graph=True)
        if grad.dtype in (torch.float16, torch.bfloat16):
            grad = grad.float()
        lengths = grad.square().sum(2).mean(1).sqrt()  # [B]: ||J_w^T y|| averaged over the layers' ws
        with torch.no_grad():
            self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean().to(self.pl_mean.dtype), PL_DECAY))
        return (lengths - self.pl_mean).square().mean() * (self.weight * self.every)

    def step_done(self) -> None:
        self.g_steps += 1

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"pl_mean": float(self.pl_mean), "g_steps": self.g_steps}  # float32 -> JSON float -> exact

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.check(meta)
        self.pl_mean.fill_(float(meta["pl_mean"]))
        self.g_steps = meta["g_steps"]

    def check(self, meta: Any) -> None:
        state = meta if isinstance(meta, dict) else {}
        if set(state) != {"pl_mean", "g_steps"}:
            raise CheckpointError(f"path_length is {str(meta)[:40]}, not an object with 'pl_mean' and 'g_steps'")
        pl_mean, g_steps = state["pl_mean"], state["g_steps"]
        if not isinstance(pl_mean, float | int) or isinstance(pl_mean, bool) or not math.isfinite(pl_mean) \
                or pl_mean < 0:
            raise CheckpointError(f"path_length pl_mean is {pl_mean!r}, not a finite length >= 0")
        if not isinstance(g_steps, int) or isinstance(g_steps, bool) or g_steps < 0:
            raise CheckpointError(f"path_length g_steps is {g_steps!r}, not a count >= 0")
