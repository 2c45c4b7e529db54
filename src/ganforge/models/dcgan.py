"""DCGAN (Radford, Metz & Chintala 2016) at any resolution the store has: 28, 32, 64, 128, non-square too.

The paper's rules: no pooling, fractional-strided convolutions in G and strided ones in D; BatchNorm in both
except G's output and D's input layer; ReLU in G with Tanh at the output; LeakyReLU(0.2) in D; weights from
N(0, 0.02). The resolution is reached by `stages` doublings of a start size between 4 and 7 px
(28 = 7 * 2^2, 64 = 4 * 2^4), so channel counts follow the PyTorch example: G has g_width * 2^(stages-1)
channels at the start and g_width before the output layer; D mirrors it.

`extra_convs` (not in the paper) adds that many 3x3 stride-1 convolutions with BatchNorm at every resolution of
G and D, as ProGAN has two per resolution; G then makes its pixels with a 3x3 conv at full size, and D starts
with one. At 28 px the paper's nets have three layers in G and two in D, too shallow to draw clean digits in a
few CPU-minutes; one extra conv per resolution took the demo from about 50 % to 75 % confidently readable
digits (BENCHMARKS.md).
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.family import ModelFamily
from ganforge.models.layers import ConditionalBatchNorm, MinibatchStdDev, ProjectionHead, apply_spectral_norm


def plan_stages(height: int, width: int) -> tuple[int, int, int]:
    """(stages, start_height, start_width): the most doublings that keep the start size at least 4 px."""
    stages = 0
    while (height % 2 ** (stages + 1) == 0 and width % 2 ** (stages + 1) == 0
           and min(height, width) // 2 ** (stages + 1) >= 4):
        stages += 1
    if stages == 0:
        raise ConfigError(f"DCGAN cannot draw {width}x{height} px: it doubles a 4-7 px start at least once, so each "
                          "side must be 8 px or more and a 4-7 px start times a power of two; prepare the store at "
                          "a size such as 28, 32, 64 or 128 (`ganforge prepare --resolution 64`).")
    return stages, height // 2**stages, width // 2**stages


class DcganGenerator(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, img_width = image_shape
        stages, start_h, start_w = plan_stages(height, img_width)
        self.num_classes = config.num_classes if config.conditional else 0
        self.activation = nn.ReLU() if config.g_activation == "relu" else nn.LeakyReLU(0.2)
        extra = config.extra_convs
        ch = config.g_width * 2 ** (stages - 1)
        # z [B, z_dim, 1, 1] -> [B, ch, start_h, start_w]: the "project and reshape" of the paper as a conv.
        self.stem = nn.ConvTranspose2d(config.z_dim, ch, (start_h, start_w), 1, 0, bias=False)
        self.ups, norms, refines = nn.ModuleList(), [self._norm(ch)], [self._refine(ch, extra)]
        for _ in range(stages - 1):
            self.ups.append(_upsample(ch, ch // 2, config.g_upsample))
            norms.append(self._norm(ch // 2))
            ch //= 2
            refines.append(self._refine(ch, extra))
        self.norms = nn.ModuleList(norms)
        self.refines: nn.ModuleList | None = None
        if extra:
            # The last doubling gets its own features and refinements too; a 3x3 conv then makes the pixels.
            last = max(1, ch // 2)
            self.ups.append(_upsample(ch, last, config.g_upsample))
            self.norms.append(self._norm(last))
            refines.append(self._refine(last, extra))
            self.refines = nn.ModuleList(refines)
            self.to_image: nn.Module = nn.Conv2d(last, channels, 3, 1, 1)
        else:  # the paper's DCGAN: the last transposed conv makes the pixels (state-dict keys as in v0.1)
            self.to_image = _upsample(ch, channels, config.g_upsample)
        self.apply(init_weights)

    def _norm(self, features: int) -> nn.Module:
        if self.num_classes:
            return ConditionalBatchNorm(features, self.num_classes)
        return nn.BatchNorm2d(features)

    def _refine(self, features: int, count: int) -> nn.ModuleList:
        return nn.ModuleList(_Refine(features, self._norm(features), self.activation) for _ in range(count))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(z[:, :, None, None])
        for i, norm in enumerate(self.norms):
            if i > 0:
                x = self.ups[i - 1](x)
            x = self.activation(norm(x, labels) if self.num_classes else norm(x))
            if self.refines is not None:
                level: nn.ModuleList = self.refines[i]  # type: ignore[assignment]
                for refine in level:
                    x = refine(x, labels)
        return torch.tanh(self.to_image(x))


class _Refine(nn.Module):
    """A 3x3 stride-1 convolution, its (class-conditional) BatchNorm and G's activation, at one resolution."""

    def __init__(self, features: int, norm: nn.Module, activation: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(features, features, 3, 1, 1, bias=False)
        self.norm, self.activation = norm, activation

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x)
        return self.activation(self.norm(x, labels) if isinstance(self.norm, ConditionalBatchNorm) else self.norm(x))


def _upsample(in_ch: int, out_ch: int, mode: str) -> nn.Module:
    if mode == "resize":
        # Nearest-neighbour resize then a 3x3 conv: no uneven kernel overlap, so no checkerboard (Odena et al. 2016).
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False))
    # Kernel 4 is divisible by stride 2, which keeps the overlap even (seed 003's advice).
    return nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1, bias=False)


class DcganDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, img_width = image_shape
        stages, start_h, start_w = plan_stages(height, img_width)
        batchnorm = config.d_batchnorm and not config.spectral_norm  # SN-GAN's D has no BatchNorm either
        width, dropout, extra = config.d_width, config.d_dropout, config.extra_convs
        blocks: list[nn.Module] = []
        if extra:  # a full-resolution layer first (no BatchNorm on D's input), so the first doubling may have it
            blocks.append(nn.Sequential(
                self._layer(channels, width // 2 or 1, 1, batchnorm=False, dropout=dropout),
                *(self._layer(width // 2 or 1, width // 2 or 1, 1, batchnorm=batchnorm, dropout=dropout)
                  for _ in range(extra - 1))))
        in_ch, ch = (width // 2 or 1) if extra else channels, width
        for stage in range(stages):
            # The paper's D: strided convs only, no BatchNorm on the input layer (`extra` adds 3x3 refinements).
            layers = [self._layer(in_ch, ch, 2, batchnorm=batchnorm and (stage > 0 or extra > 0), dropout=dropout)]
            layers += [self._layer(ch, ch, 1, batchnorm=batchnorm, dropout=dropout) for _ in range(extra)]
            blocks.append(nn.Sequential(*layers) if extra else layers[0])
            in_ch, ch = ch, ch * 2
        ch = in_ch
        self.blocks = nn.ModuleList(blocks)
        self.mbstd = MinibatchStdDev() if config.mbstd else None
        self.head = nn.Conv2d(ch + int(config.mbstd), 1, (start_h, start_w), 1, 0)
        self.projection = (ProjectionHead((ch + int(config.mbstd)) * start_h * start_w, config.num_classes)
                           if config.conditional else None)
        self.apply(init_weights)
        if config.spectral_norm:
            apply_spectral_norm(self)

    @staticmethod
    def _layer(in_ch: int, out_ch: int, stride: int, *, batchnorm: bool, dropout: float) -> nn.Sequential:
        """A 4x4 stride-2 conv (a doubling down) or a 3x3 stride-1 one, then BatchNorm, LeakyReLU, dropout."""
        kernel = 4 if stride == 2 else 3
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, 1, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = images
        for block in self.blocks:
            x = block(x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        logits = self.head(x).flatten()
        if self.projection is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            logits = logits + self.projection(x, labels)
        return logits

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Every block's activations max-pooled to 4x4 and concatenated: the DCGAN paper's feature probe."""
        pooled, x = [], images
        for block in self.blocks:
            x = block(x)
            pooled.append(nn.functional.adaptive_max_pool2d(x, 4).flatten(1))
        return torch.cat(pooled, dim=1)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) convolutions and N(1, 0.02) BatchNorm scales, as in Radford et al., Section 4."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return DcganGenerator(config, image_shape), DcganDiscriminator(config, image_shape)


FAMILY = ModelFamily(
    name="dcgan", build=build, description="Radford et al. 2016: strided-convolution G and D with BatchNorm",
    options=frozenset({"g_width", "d_width", "d_dropout", "g_activation", "d_batchnorm", "spectral_norm", "mbstd",
                       "g_upsample", "extra_convs"}),
    resolutions="any size reachable by doubling a 4-7 px start (28, 32, 64, 128, non-square)", conditional=True,
    d_blocks=lambda d: list(d.get_submodule("blocks").children()))
