"""The two detectors: a small CNN trained from scratch, and the ImageNet EfficientNet-Lite0 fine-tuned with a new
one-logit head. Both take float images [B, 3, S, S] in [0, 1] and return the logit that the image is generated."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.models import efficientnet_lite


class SmallCnn(nn.Module):
    """Four stride-2 conv blocks (32-256 channels, BatchNorm, LeakyReLU), global average pool, one logit."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.LeakyReLU(0.2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images * 2 - 1).mean((2, 3))).squeeze(1)


class Lite0Detector(nn.Module):
    """EfficientNet-Lite0 with its ImageNet weights (the `projected` extra), every layer trainable, its
    1000-class classifier replaced by one logit."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = efficientnet_lite.load_pretrained().requires_grad_(True).train()
        self.head = nn.Linear(efficientnet_lite.HEAD_CHANNELS, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        net = self.backbone
        x = net._stem(images * 2 - 1)
        for block in net._blocks:
            x = block(x)
        x = F.relu6(net._bn1(net._conv_head(x)))
        return self.head(x.mean((2, 3))).squeeze(1)


def build_detector(backbone: str) -> nn.Module:
    return Lite0Detector() if backbone == "lite0" else SmallCnn()
