"""An EfficientNet-Lite's feature taps as a frozen network: each BatchNorm folded into the convolution before it.

A frozen network in eval mode normalises with fixed statistics, so BN(conv(x, W)) = conv(x, W * s) + (beta -
mean * s) with s = gamma / sqrt(var + eps), exactly (up to rounding). Folding removes every BatchNorm's forward
and, in G's step, its backward to the input: on this 2-core CPU Lite0's forward and backward (batch 16, 64 px,
bf16) took 60 ms unfolded. Under autocast the weights are cast once per dtype and kept, since autocast
caches casts only of weights that require grad and would otherwise copy all of them on every call. On the CPU
a pass that is differentiated (G's step) runs in fp32, whose backward is the faster one there.

Same inputs and outputs as `EfficientNetLite.features`, for any variant (Lite0, Lite1, Lite2: the blocks differ
in number and width only); the weights are buffers (nothing to train, nothing for
an optimizer or DDP to see) and the network is always in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.models.efficientnet_lite import EfficientNetLite, MBConvBlock, SameConv2d, same_padding


@dataclass(frozen=True)
class FoldedConv:
    """One convolution with its BatchNorm folded in: where its weight and bias buffers are, and how it runs."""

    name: str  # buffer prefix
    kernel: int
    stride: int
    groups: int
    relu6: bool


def _fold(conv: SameConv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight.detach() * scale.view(-1, 1, 1, 1)
    return weight.contiguous(), (bn.bias.detach() - bn.running_mean * scale).contiguous()


class FrozenFeatures(nn.Module):
    """images [B, 1 or 3, H, W] in [-1, 1] -> an EfficientNet-Lite's four feature taps (see `features`)."""

    def __init__(self, network: EfficientNetLite) -> None:
        super().__init__()
        self.variant = network.variant
        self._convs: list[FoldedConv] = []
        self._blocks: list[tuple[list[FoldedConv], bool]] = []  # (its convs, identity skip) per block
        self.tap_blocks = network.tap_blocks
        self._stem = self._add("stem", network._conv_stem, network._bn0, relu6=True)
        for index, block in enumerate(network._blocks):
            if index > self.tap_blocks[-1]:
                break  # the head and the blocks after the last tap are never computed
            assert isinstance(block, MBConvBlock)
            convs = []
            if block._expand_conv is not None and block._bn0 is not None:
                convs.append(self._add(f"b{index}_expand", block._expand_conv, block._bn0, relu6=True))
            convs.append(self._add(f"b{index}_depthwise", block._depthwise_conv, block._bn1, relu6=True))
            convs.append(self._add(f"b{index}_project", block._project_conv, block._bn2, relu6=False))
            self._blocks.append((convs, block.residual))
        self._cast: dict[torch.dtype, dict[str, torch.Tensor]] = {}
        self.requires_grad_(False)
        self.eval()

    def _add(self, name: str, conv: SameConv2d, bn: nn.BatchNorm2d, *, relu6: bool) -> FoldedConv:
        weight, bias = _fold(conv, bn)
        self.register_buffer(f"{name}_weight", weight)
        self.register_buffer(f"{name}_bias", bias)
        return FoldedConv(name, conv.kernel_size[0], conv.stride[0], conv.groups, relu6)

    def train(self, mode: bool = True) -> FrozenFeatures:
        return super().train(False)  # frozen: there is no training mode

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]  # torch's own signature is untyped
        self._cast.clear()  # the cached casts belong to the old device or layout
        return super()._apply(fn, recurse)

    def _weights(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Every buffer in `dtype`: the buffers themselves, or their cast, made once."""
        stored = dict(self.named_buffers())
        if next(iter(stored.values())).dtype == dtype:
            return stored
        if dtype not in self._cast:
            self._cast[dtype] = {name: buffer.to(dtype) for name, buffer in stored.items()}
        return self._cast[dtype]

    def _conv(self, x: torch.Tensor, conv: FoldedConv, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        if conv.stride == 1:
            padding = conv.kernel // 2
        else:  # TF "SAME" padding per input size, as SameConv2d does
            top, bottom = same_padding(x.shape[-2], conv.kernel, conv.stride)
            left, right = same_padding(x.shape[-1], conv.kernel, conv.stride)
            x, padding = F.pad(x, (left, right, top, bottom)), 0
        out = F.conv2d(x, weights[f"{conv.name}_weight"], weights[f"{conv.name}_bias"], conv.stride, padding, 1,
                       conv.groups)
        return F.relu6(out) if conv.relu6 else out

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """As `EfficientNetLite.features`: [B, c_i, H/s_i, W/s_i] for s = 4, 8, 16, 32 and c =
        `variant.feature_channels` (Lite0: 24, 40, 112, 320)."""
        device_type = images.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else images.dtype
        if device_type == "cpu" and dtype == torch.bfloat16 and images.requires_grad and torch.is_grad_enabled():
            # G's step differentiates through this network: on the CPU, oneDNN's bf16 backward of the depthwise
            # convolutions made that pass slower than fp32 (49.5 against 35.0 ms, batch 16 at 64 px).
            dtype = torch.float32
        weights = self._weights(dtype)
        with torch.autocast(device_type, enabled=False):  # the weights are already in the autocast dtype
            x = EfficientNetLite.to_network_input(images).to(dtype)
            x = self._conv(x, self._stem, weights)
            taps = []
            for index, (convs, residual) in enumerate(self._blocks):
                h = x
                for conv in convs:
                    h = self._conv(h, conv, weights)
                x = h + x if residual else h
                if index in self.tap_blocks:
                    taps.append(x)
        return taps

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.features(images)
