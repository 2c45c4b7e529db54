"""The building blocks of Progressive GAN (Karras et al. 2018, Sec. 4): equalized learning rate, pixelwise
feature normalisation, and the resampling that growing blends across.

Equalized learning rate (Sec. 4.1): weights are stored as N(0, 1) draws and multiplied at run time by He's
constant c = gain / sqrt(fan_in), biases start at zero. Adam's update is invariant to the weight's scale, so
every layer then learns at the same speed whatever its fan-in.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HE_GAIN = math.sqrt(2.0)  # for layers followed by LeakyReLU; the linear output layers use gain 1
LRELU_SLOPE = 0.2


class EqualizedConv2d(nn.Module):
    """'Same'-padded k x k convolution, stride 1, with its weight scaled by gain / sqrt(in_ch * k * k)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, gain: float = HE_GAIN, bias: bool = True) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError("EqualizedConv2d needs an odd kernel so that 'same' padding is symmetric")
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.fan_in = in_ch * kernel * kernel
        self.scale = gain / math.sqrt(self.fan_in)
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        out_ch, in_ch, k, _ = self.weight.shape
        return f"{in_ch}, {out_ch}, kernel={k}, scale={self.scale:.3g}"


class EqualizedLinear(nn.Module):
    """Fully-connected layer with its weight scaled by gain / sqrt(fan_in) at run time.

    `fan_in` defaults to `in_features`; G's first layer passes the fan-in of the paper's 4x4 convolution over
    the zero-padded 1x1 latent (16 * z_dim), which is what the original's gain sqrt(2)/4 on a dense layer means.
    """

    def __init__(self, in_features: int, out_features: int, gain: float = HE_GAIN, bias: bool = True,
                 fan_in: int | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.fan_in = fan_in if fan_in is not None else in_features
        self.scale = gain / math.sqrt(self.fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"{in_f}, {out_f}, scale={self.scale:.3g}"


class PixelNorm(nn.Module):
    """b = a / sqrt(mean_j a_j^2 + eps) over the channels of each pixel (Sec. 4.2, Eq. 2 with eps 1e-8)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + self.eps)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE)


def upsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour: each pixel becomes a factor x factor block (the paper's 'Upsample')."""
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


def downsample(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box filter: the mean of each factor x factor block (the paper's 'Downsample', average pooling)."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def fade(new: torch.Tensor, old: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha * new + (1 - alpha) * old, written out so that alpha = 0 returns `old` bit for bit (Fig. 2)."""
    return new * alpha + old * (1.0 - alpha)


def count_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


def paper_count(n: int) -> str:
    """A parameter count rounded as in the paper's Table 2: 4.2M, 590k, 9.2k, 513."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{round(n / 1e3)}k"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)
