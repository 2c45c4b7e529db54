"""L-infinity attacks on a detector, in [0, 1] pixel space: FGSM (Goodfellow et al. 2015, one signed-gradient
step of size eps) and PGD (Madry et al. 2018: `steps` steps of eps/4, each projected back into the eps-ball
around the original and into [0, 1]). Each pushes images toward the wrong answer: fakes toward "real", reals
toward "generated". eps = 0 returns the images unchanged, bit for bit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """images [B, 3, S, S] in [0, 1], labels [B] (1 = generated) -> attacked images, |delta| <= eps."""
    if eps == 0:
        return images.clone()
    return (images + eps * _loss_gradient(model, images, labels).sign()).clamp(0, 1).detach()


def pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 10,
        step_size: float | None = None) -> torch.Tensor:
    """`steps` FGSM steps of `step_size` (eps/4 by default), each projected into the eps-ball and [0, 1]."""
    if eps == 0:
        return images.clone()
    alpha = step_size if step_size is not None else eps / 4
    attacked = images.clone()
    for _ in range(steps):
        attacked = attacked + alpha * _loss_gradient(model, attacked, labels).sign()
        attacked = torch.min(torch.max(attacked, images - eps), images + eps).clamp(0, 1).detach()
    return attacked


def attack(name: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
           steps: int = 10) -> torch.Tensor:
    return fgsm(model, images, labels, eps) if name == "fgsm" else pgd(model, images, labels, eps, steps)


def _loss_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d(detector's loss)/d(images), with the model in eval mode (BatchNorm statistics fixed) and its own
    gradients left untouched."""
    was_training = model.training
    model.eval()
    x = images.detach().requires_grad_(True)
    loss = F.binary_cross_entropy_with_logits(model(x), labels.to(x.dtype))
    (gradient,) = torch.autograd.grad(loss, x)
    model.train(was_training)
    return gradient
