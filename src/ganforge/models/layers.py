"""Layers shared by model families: minibatch stddev, class-conditional BatchNorm, projection, spectral norm."""

from __future__ import annotations

import torch
from torch import nn


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the stddev of each feature over groups of `group_size` samples, averaged
    (Karras et al. 2018, Sec. 3). D can then see when a batch of fakes lacks variety (mode collapse)."""

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        group = min(self.group_size, batch)
        while batch % group:  # the largest group size <= group_size that divides the batch
            group -= 1
        # [G, B/G, ...] -> stddev over the group axis -> mean over everything but the sample -> [B/G]
        grouped = x.reshape(group, batch // group, *x.shape[1:])
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().flatten(1).mean(1)
        feature = std.repeat(group)  # sample i belongs to group column i % (B/G), as in the reshape
        shape = (batch, 1, *x.shape[2:])
        return torch.cat([x, feature.view(batch, *([1] * (x.dim() - 1))).expand(shape)], dim=1)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine; the scale and shift come from the class (de Vries et al. 2017,
    Miyato & Koyama 2018). Unconditional calls (labels=None) use the class-average scale and shift."""

    def __init__(self, features: int, num_classes: int, dims: int = 2) -> None:
        super().__init__()
        self.norm = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(features, affine=False)
        self.scale = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        extra = [1] * (x.dim() - 2)
        scale, shift = self.scale(labels), self.shift(labels)
        return self.norm(x) * scale.view(*scale.shape, *extra) + shift.view(*shift.shape, *extra)


class ProjectionHead(nn.Module):
    """D's output for a class: psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, Eq. 3)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, features)
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (self.embed(labels) * features.flatten(1)).sum(1)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every conv and linear layer (Miyato et al. 2018); u vectors are buffers, so
    checkpoints carry them."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module
