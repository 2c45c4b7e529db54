"""The building blocks of StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, CVPR 2020).

Equalized learning rate throughout (Karras et al. 2018, Sec. 4.1): weights are stored as N(0, 1) / lr_mul draws
and scaled at run time by lr_mul / sqrt(fan_in); the mapping network's lr_mul of 0.01 (StyleGAN, Sec. 2) makes
its effective learning rate 100 times smaller. Activations are LeakyReLU(0.2) times sqrt(2), so that a layer
keeps unit second moment (the He gain sits in the activation, not the weight).

Resampling uses the separable [1, 3, 3, 1] filter (Zhang 2019) in plain PyTorch: x2 upsampling is a strided
transposed convolution followed by the filter, x2 downsampling the filter followed by a strided convolution
(StyleGAN2, Appendix B), so no custom CUDA op is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATION_GAIN = math.sqrt(2.0)
LRELU_SLOPE = 0.2
DEMODULATION_EPS = 1e-8  # StyleGAN2 Eq. 3's epsilon


def lrelu_gain(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, LRELU_SLOPE) * ACTIVATION_GAIN


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean(x^2)) per sample: z (and a class embedding) onto the sphere of radius sqrt(dim)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _fir_kernel() -> torch.Tensor:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()  # [4, 4], sums to 1: a blur that keeps the mean


class Resample(nn.Module):
    """x2 up or down with the [1, 3, 3, 1] filter, per channel: channels are folded into the batch, so one
    [1, 1, 4, 4] kernel serves any width (and exported graphs see a kernel of fixed shape)."""

    kernel: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        # Not persistent: a constant of the architecture, not a weight; checkpoints and exports stay lean.
        self.register_buffer("kernel", _fir_kernel().view(1, 1, 4, 4), persistent=False)

    def _per_channel(self, x: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        batch, channels = x.shape[:2]
        y = op(x.reshape(batch * channels, 1, *x.shape[2:]))
        return y.reshape(batch, channels, *y.shape[2:])

    def blur(self, x: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
        """[B, C, H, W] -> [B, C, H + 2 pad - 3, W + 2 pad - 3]."""
        kernel = (self.kernel * gain).to(x.dtype)
        return self._per_channel(x, lambda y: F.conv2d(F.pad(y, (pad, pad, pad, pad)), kernel))

    def up(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C, 2H, 2W]: zeros between pixels, then the filter scaled by 4 (the gain of x2 in 2D).

        A transposed convolution with the 4x4 kernel, stride 2 and padding 1 does both in one call."""
        kernel = (self.kernel * 4).to(x.dtype)
        return self._per_channel(x, lambda y: F.conv_transpose2d(y, kernel, stride=2, padding=1))

    def down(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C, H/2, W/2]: the filter, keeping every second pixel."""
        kernel = self.kernel.to(x.dtype)
        return self._per_channel(x, lambda y: F.conv2d(y, kernel, stride=2, padding=1))


class FullyConnected(nn.Module):
    """Equalized dense layer: y = x (W * lr_mul / sqrt(in)) + b * lr_mul, with W ~ N(0, 1 / lr_mul^2)."""

    def __init__(self, in_features: int, out_features: int, *, activate: bool = False, lr_mul: float = 1.0,
                 bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        return lrelu_gain(x) if self.activate else x

    def extra_repr(self) -> str:
        out_f, in_f = self.weight.shape
        return f"{in_f}, {out_f}, lr_mul={self.lr_mul:g}, activate={self.activate}"


class Conv2d(nn.Module):
    """Equalized k x k convolution for D, optionally halving the resolution (filter, then stride 2)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, bias: bool = True, activate: bool = True,
                 down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.activate, self.down, self.kernel = activate, down, kernel
        self.resample = Resample() if down else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.weight_gain
        if self.resample is not None and self.kernel == 1:  # the residual skip: filter-downsample, then 1x1
            x = F.conv2d(self.resample.down(x), weight, self.bias)
        elif self.resample is not None:  # blur keeps H + 1, the valid stride-2 conv then gives H/2
            x = F.conv2d(self.resample.blur(x, pad=2), weight, self.bias, stride=2)
        else:
            x = F.conv2d(x, weight, self.bias, padding=self.kernel // 2)
        return lrelu_gain(x) if self.activate else x

    def extra_repr(self) -> str:
        out_ch, in_ch, k, _ = self.weight.shape
        return f"{in_ch}, {out_ch}, kernel={k}, down={self.down}, activate={self.activate}"


class ModulatedConv2d(nn.Module):
    """StyleGAN2's weight (de)modulation (Sec. 2.2, Eqs. 1-3).

    w'_ijk = s_i w_ijk (Eq. 1), then w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps) (Eq. 3): with unit-variance
    inputs, each output feature map has unit variance again, whatever the style s. For one sample the modulated
    weight is convolved directly; for a batch the same result comes from one shared weight with the styles on
    the activations (`_per_activation`), as the reference trains: at 512 channels it measured 1.3-1.7x faster
    than the paper's grouped convolution (one weight per sample, groups = B) on this CPU, at 128-256 channels
    about even (BENCHMARKS.md, StyleGAN2).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, *, demodulate: bool = True,
                 up: bool = False) -> None:
        super().__init__()
        # The affine map A of Fig. 2: w -> one scale per input channel, starting at 1 (bias_init 1).
        self.affine = FullyConnected(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.up, self.kernel = demodulate, up, kernel
        self.resample = Resample() if up else None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B, in, H, W], w [B, w_dim] -> [B, out, H, W] (2H, 2W when up)."""
        batch, in_ch = x.shape[:2]
        styles = self.affine(w)  # [B, in]
        weight = self.weight * self.weight_gain  # [out, in, k, k]
        modulated = weight.unsqueeze(0) * styles.view(batch, 1, in_ch, 1, 1)  # Eq. 1: [B, out, in, k, k]
        demod = None
        if self.demodulate:  # Eq. 3: [B, out]
            demod = (modulated.square().sum(dim=(2, 3, 4)) + DEMODULATION_EPS).rsqrt()
        # Exports take the shared-weight form too: a graph for any batch size (a batch of 1 would be traced in).
        if torch.jit.is_tracing() or batch > 1:
            return self._per_activation(x, styles, weight, demod)
        if demod is not None:
            modulated = modulated * demod.view(batch, -1, 1, 1, 1)
        sample_weight = modulated[0]  # [out, in, k, k]
        if self.resample is not None:
            x = F.conv_transpose2d(x, sample_weight.transpose(0, 1), stride=2)  # 2H + 1 for a 3x3 kernel
            # The filter trims it to 2H; gain 4 restores the magnitude the inserted zeros took (3 in 4 pixels).
            return self.resample.blur(x, pad=1, gain=4.0)
        return F.conv2d(x, sample_weight, padding=self.kernel // 2)

    def _per_activation(self, x: torch.Tensor, styles: torch.Tensor, weight: torch.Tensor,
                        demod: torch.Tensor | None) -> torch.Tensor:
        """The same result with one shared weight: scale the input channels by s, convolve, then scale the output
        channels by the demodulation factor (convolution is linear; StyleGAN2 Sec. 2.2)."""
        x = x * styles.view(*styles.shape, 1, 1)
        if self.resample is not None:
            x = self.resample.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2), pad=1, gain=4.0)
        else:
            x = F.conv2d(x, weight, padding=self.kernel // 2)
        return x if demod is None else x * demod.view(*demod.shape, 1, 1)

    def extra_repr(self) -> str:
        out_ch, in_ch, k, _ = self.weight.shape
        return f"{in_ch}, {out_ch}, kernel={k}, demodulate={self.demodulate}, up={self.up}"


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv, per-pixel noise times a learned strength (Fig. 2 (d): B), bias, LeakyReLU.

    Training draws fresh noise; evaluation uses a fixed map per layer (a buffer drawn at construction), so a seed
    gives the same image every time, in any batch."""

    noise_const: torch.Tensor

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, *, up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))  # starts at 0: the net learns how much noise to use
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        if self.training:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        x = x + noise * self.noise_strength + self.bias.view(1, -1, 1, 1)
        return lrelu_gain(x)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels without demodulation (the output's scale matters), plus a bias."""

    def __init__(self, in_ch: int, image_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, image_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(image_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


def count_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)
