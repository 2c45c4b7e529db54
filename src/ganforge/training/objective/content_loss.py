"""SRGAN's content loss (Ledig et al. 2017, Sec. 2.2.1): the distance between G's output and the target in a
feature space, so that G is not pushed to the blurry average that a pixel loss rewards.

The paper's VGG54 compares VGG19 ImageNet features; those weights cannot be fetched here, so "lite0" compares the
ImageNet EfficientNet-Lite0's (the `projected` extra's weights) at its four taps, strides 4 to 32: at each, the
mean squared error relative to the target features' mean square, averaged over the taps. The relative form
keeps the loss near the scale of a pixel MSE whatever a tap's magnitude (the paper rescales its VGG features by
1/12.75 for the same reason), so --content-weight and --adv-weight keep their meaning. "mse" compares pixels:
the paper's SRGAN-MSE. The feature network is frozen and not part of any checkpoint.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from ganforge.models.efficientnet_lite import load_pretrained
from ganforge.models.frozen_features import FrozenFeatures


class ContentLoss(Protocol):
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...


class PixelContentLoss:
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.float(), targets)


class FeatureContentLoss:
    def __init__(self, device: torch.device) -> None:
        self.network = FrozenFeatures(load_pretrained()).to(device)

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            wanted = self.network.features(targets)
        taps = self.network.features(outputs)
        return torch.stack([F.mse_loss(a.float(), b.float()) / (b.float().pow(2).mean() + 1e-8)
                            for a, b in zip(taps, wanted, strict=True)]).mean()


def build_content_loss(name: str, device: torch.device) -> ContentLoss:
    """The content loss `name` ("lite0" or "mse") names; "lite0" raises ConfigError with the install line when
    the optional weights are missing."""
    return FeatureContentLoss(device) if name == "lite0" else PixelContentLoss()
