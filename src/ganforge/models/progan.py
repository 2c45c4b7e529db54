"""Progressive GAN (Karras, Aila, Laine & Lehtinen 2018): G and D that grow from 4x4 to the store's resolution.

Table 2 of the paper, for a target resolution R = 2^k (4..1024) and image channels C:
  G: latent z (pixel-normalised onto the hypersphere) -> "conv 4x4" (a dense layer to ch x 4 x 4) -> conv 3x3;
     then per resolution r = 8..R: nearest upsample, two 3x3 convs; pixelwise normalisation after every conv,
     LeakyReLU(0.2); a linear 1x1 toRGB at every resolution.
  D: a 1x1 fromRGB (+ LeakyReLU) at every resolution; per resolution r = R..8: two 3x3 convs, 2x2 average pool;
     at 4x4: minibatch stddev (one extra feature map), conv 3x3, "conv 4x4" to ch x 1 x 1, linear output.
Widths follow the original's nf(): channels(r) = min(fmap_max, 2 * fmap_base / r), i.e. 512 up to 32 px, then
256, 128, 64, 32, 16 at 1024 px; with fmap_base 8192, fmap_max 512 G and D have 23.1M parameters at 1024 px.

Every resolution's layers exist from the start, so state_dicts (and checkpoints) never change shape. The
networks run at the phase set by `set_phase(resolution, alpha)`: G outputs, and D accepts, images at that
resolution; while a new resolution fades in (alpha < 1) its block is blended with the previous one (Fig. 2).
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.family import ModelFamily
from ganforge.models.layers import MinibatchStdDev
from ganforge.models.progan_layers import (
    EqualizedConv2d,
    EqualizedLinear,
    PixelNorm,
    count_params,
    downsample,
    fade,
    lrelu,
    paper_count,
    upsample,
)

FMAP_BASE = 8192  # the original's fmap_base: channels(r) = min(fmap_max, 2 * fmap_base / r)
FMAP_MAX = 512  # the original's fmap_max
MBSTD_GROUP = 4  # minibatch-stddev group size of the original (networks.py, D_paper)
MIN_RESOLUTION, MAX_RESOLUTION = 4, 1024


class LayerRow(NamedTuple):
    name: str
    shape: tuple[int, ...]  # output shape without the batch axis
    params: int  # trainable parameters


def check_resolution(resolution: int, where: str = "the store's images") -> int:
    """log2(resolution) for a power of two in 4..1024, else a ConfigError that says what to do."""
    if not (MIN_RESOLUTION <= resolution <= MAX_RESOLUTION) or resolution & (resolution - 1):
        raise ConfigError(f"progan needs a power-of-two resolution from {MIN_RESOLUTION} to {MAX_RESOLUTION} px, "
                          f"but {where} are {resolution} px; prepare the store at one, e.g. "
                          "`ganforge prepare SRC --resolution 128`.")
    return int(math.log2(resolution))


def channels(resolution: int, fmap_base: int = FMAP_BASE, fmap_max: int = FMAP_MAX) -> int:
    """Feature maps at a resolution: the original's nf(log2(resolution) - 1)."""
    return max(1, min(fmap_max, 2 * fmap_base // resolution))


class _Growing(nn.Module):
    """The phase both networks share: the resolution they run at and the fade-in weight of its newest block."""

    def __init__(self, target_resolution: int) -> None:
        super().__init__()
        self.target_resolution = target_resolution
        self.max_level = check_resolution(target_resolution) - 2  # level l runs at 4 * 2^l px
        self.resolution, self.alpha = target_resolution, 1.0  # a fully grown network until told otherwise

    def set_phase(self, resolution: int, alpha: float) -> None:
        if resolution & (resolution - 1) or not MIN_RESOLUTION <= resolution <= self.target_resolution:
            raise ConfigError(f"set_phase: resolution {resolution} is not a power of two from {MIN_RESOLUTION} to "
                              f"this network's {self.target_resolution} px")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"set_phase: the fade-in weight alpha must be in [0, 1], got {alpha}")
        self.resolution, self.alpha = int(resolution), float(alpha)

    @property
    def level(self) -> int:
        return int(math.log2(self.resolution)) - 2

    @property
    def fading(self) -> bool:
        return self.level > 0 and self.alpha < 1.0

    def extra_repr(self) -> str:
        return f"target={self.target_resolution}, resolution={self.resolution}, alpha={self.alpha:g}"


class LatentBlock(nn.Module):
    """z [B, z_dim] -> [B, ch, 4, 4]: pixel-normalised latent, the paper's 4x4 conv, then a 3x3 conv."""

    def __init__(self, z_dim: int, ch: int) -> None:
        super().__init__()
        # A 4x4 conv on a 1x1 input padded to 4x4 is a dense layer to ch * 16 with fan-in 16 * z_dim (the
        # original's gain sqrt(2)/4 on fan-in z_dim); its bias is per channel, as in the original.
        self.dense = EqualizedLinear(z_dim, ch * 16, bias=False, fan_in=16 * z_dim)
        self.dense_bias = nn.Parameter(torch.zeros(ch))
        self.conv = EqualizedConv2d(ch, ch, 3)
        self.norm = PixelNorm()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(self.norm(z)).view(z.shape[0], -1, 4, 4) + self.dense_bias.view(1, -1, 1, 1)
        x = self.norm(lrelu(x))
        return self.norm(lrelu(self.conv(x)))


class UpBlock(nn.Module):
    """[B, in_ch, r/2, r/2] -> [B, out_ch, r, r]: nearest upsample, two 3x3 convs, each LReLU + pixel norm."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_ch, out_ch, 3)
        self.conv1 = EqualizedConv2d(out_ch, out_ch, 3)
        self.norm = PixelNorm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(lrelu(self.conv0(upsample(x))))
        return self.norm(lrelu(self.conv1(x)))


class ProganGenerator(_Growing):
    def __init__(self, image_channels: int, target_resolution: int, z_dim: int = 512, fmap_base: int = FMAP_BASE,
                 fmap_max: int = FMAP_MAX) -> None:
        super().__init__(target_resolution)
        self.image_channels, self.z_dim = image_channels, z_dim
        self.widths = [channels(4 << level, fmap_base, fmap_max) for level in range(self.max_level + 1)]
        w = self.widths
        self.blocks = nn.ModuleList([LatentBlock(z_dim, w[0])]
                                    + [UpBlock(w[level - 1], w[level]) for level in range(1, self.max_level + 1)])
        # toRGB is linear (gain 1): G's output is not squashed, as in the original (no tanh).
        self.to_rgb = nn.ModuleList([EqualizedConv2d(width, image_channels, 1, gain=1.0) for width in w])

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, z_dim] -> images [B, C, r, r] at the current resolution r; labels are ignored."""
        level = self.level
        x = self.blocks[0](z)
        previous = x
        for block in self.blocks[1:level + 1]:
            previous, x = x, block(x)
        images = self.to_rgb[level](x)
        if self.fading:  # Fig. 2 (b): the new block's toRGB blended with the upsampled old one
            images = fade(images, upsample(self.to_rgb[level - 1](previous)), self.alpha)
        return images

    def layer_rows(self, resolution: int | None = None) -> list[LayerRow]:
        """Table 2's rows for G as it runs at `resolution` (default: fully grown)."""
        level = check_resolution(resolution or self.target_resolution) - 2
        w = self.widths
        first = cast(LatentBlock, self.blocks[0])
        rows = [LayerRow("Latent vector", (self.z_dim, 1, 1), 0),
                LayerRow("Conv 4x4", (w[0], 4, 4), count_params(first.dense) + first.dense_bias.numel()),
                LayerRow("Conv 3x3", (w[0], 4, 4), count_params(first.conv))]
        for lv in range(1, level + 1):
            res, up = 4 << lv, cast(UpBlock, self.blocks[lv])
            rows += [LayerRow("Upsample", (w[lv - 1], res, res), 0),
                     LayerRow("Conv 3x3", (w[lv], res, res), count_params(up.conv0)),
                     LayerRow("Conv 3x3", (w[lv], res, res), count_params(up.conv1))]
        res = 4 << level
        rows.append(LayerRow("Conv 1x1 (toRGB)", (self.image_channels, res, res), count_params(self.to_rgb[level])))
        return rows


class DownBlock(nn.Module):
    """[B, in_ch, r, r] -> [B, out_ch, r/2, r/2]: two 3x3 convs with LReLU, then 2x2 average pooling."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_ch, in_ch, 3)
        self.conv1 = EqualizedConv2d(in_ch, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return downsample(lrelu(self.conv1(lrelu(self.conv0(x)))))


class OutputBlock(nn.Module):
    """[B, ch, 4, 4] -> logits [B]: minibatch stddev, conv 3x3, the paper's 4x4 conv (dense), linear output."""

    def __init__(self, ch: int, out_ch: int, mbstd_group: int) -> None:
        super().__init__()
        self.mbstd = MinibatchStdDev(mbstd_group) if mbstd_group > 1 else None
        self.conv = EqualizedConv2d(ch + int(self.mbstd is not None), ch, 3)
        self.dense = EqualizedLinear(ch * 16, out_ch)  # = a 4x4 conv without padding: fan-in 16 * ch
        self.out = EqualizedLinear(out_ch, 1, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = lrelu(self.conv(x))
        x = lrelu(self.dense(x.flatten(1)))
        return self.out(x).view(-1)


class ProganDiscriminator(_Growing):
    def __init__(self, image_channels: int, target_resolution: int, fmap_base: int = FMAP_BASE,
                 fmap_max: int = FMAP_MAX, mbstd_group: int = MBSTD_GROUP) -> None:
        super().__init__(target_resolution)
        self.image_channels = image_channels
        self.widths = [channels(4 << level, fmap_base, fmap_max) for level in range(self.max_level + 1)]
        w = self.widths
        self.from_rgb = nn.ModuleList([EqualizedConv2d(image_channels, width, 1) for width in w])
        self.blocks = nn.ModuleList([OutputBlock(w[0], channels(2, fmap_base, fmap_max), mbstd_group)]
                                    + [DownBlock(w[level], w[level - 1]) for level in range(1, self.max_level + 1)])

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, C, r, r] at the current resolution r -> logits [B]; labels are ignored."""
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            raise ValueError(f"D runs at {self.resolution} px but got {tuple(images.shape[-2:])} images; "
                             "downsample the reals with GrowingSchedule.prepare_reals")
        level = self.level
        x = lrelu(self.from_rgb[level](images))
        if level > 0:
            x = self.blocks[level](x)
        if self.fading:  # Fig. 2 (b) mirrored: the new block blended with the old fromRGB on pooled images
            x = fade(x, lrelu(self.from_rgb[level - 1](downsample(images))), self.alpha)
        for lv in range(level - 1, 0, -1):
            x = self.blocks[lv](x)
        return self.blocks[0](x)

    def layer_rows(self, resolution: int | None = None) -> list[LayerRow]:
        """Table 2's rows for D as it runs at `resolution` (default: fully grown)."""
        level = check_resolution(resolution or self.target_resolution) - 2
        w, res = self.widths, 4 << level
        rows = [LayerRow("Input image", (self.image_channels, res, res), 0),
                LayerRow("Conv 1x1 (fromRGB)", (w[level], res, res), count_params(self.from_rgb[level]))]
        for lv in range(level, 0, -1):
            res, down = 4 << lv, cast(DownBlock, self.blocks[lv])
            rows += [LayerRow("Conv 3x3", (w[lv], res, res), count_params(down.conv0)),
                     LayerRow("Conv 3x3", (w[lv - 1], res, res), count_params(down.conv1)),
                     LayerRow("Downsample", (w[lv - 1], res // 2, res // 2), 0)]
        out = cast(OutputBlock, self.blocks[0])
        if out.mbstd is not None:
            rows.append(LayerRow("Minibatch stddev", (w[0] + 1, 4, 4), 0))
        rows += [LayerRow("Conv 3x3", (w[0], 4, 4), count_params(out.conv)),
                 LayerRow("Conv 4x4", (out.dense.weight.shape[0], 1, 1), count_params(out.dense)),
                 LayerRow("Fully-connected", (1, 1, 1), count_params(out.out))]
        return rows


def layer_table(network: ProganGenerator | ProganDiscriminator, resolution: int | None = None) -> str:
    """The paper's Table 2 for one network: layer, output shape, trainable parameters (exact and rounded)."""
    rows = network.layer_rows(resolution)
    title = "Generator" if isinstance(network, ProganGenerator) else "Discriminator"
    res = resolution or network.target_resolution
    lines = [f"{title} at {res}x{res} px", f"{'layer':<22}{'output shape':>16}{'params (rounded)':>21}"]
    for row in rows:
        params = f"{row.params:,} {paper_count(row.params):>6}" if row.params else "-"
        lines.append(f"{row.name:<22}{'x'.join(map(str, row.shape)):>16}{params:>21}")
    total = sum(row.params for row in rows)
    lines.append(f"{'Total trainable parameters':<38}{f'{total:,} {paper_count(total):>6}':>21}")
    rest = count_params(network) - total
    if rest:
        what = "toRGB" if isinstance(network, ProganGenerator) else "fromRGB"
        lines.append(f"(+ {rest:,} in the lower resolutions' {what} layers, used while growing)")
    return "\n".join(lines)


def summary(config: ModelConfig, image_shape: tuple[int, int, int]) -> str:
    """G's and D's layer tables at the store's resolution (for `ganforge train --model progan --summary`)."""
    with torch.device("meta"):  # shapes and counts only: no memory for 46M weights, no random draws
        generator, discriminator = networks(config, image_shape)
    return f"{layer_table(generator)}\n\n{layer_table(discriminator)}"


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return networks(config, image_shape)


def networks(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[ProganGenerator, ProganDiscriminator]:
    image_channels, height, width = image_shape
    if height != width:
        raise ConfigError(f"progan needs square images, but the store's are {width}x{height} px; prepare it "
                          "square, e.g. `ganforge prepare SRC --resolution 128 --crop pad`.")
    check_resolution(height)
    fmap_base, fmap_max = config.fmap_base, config.fmap_max
    mbstd_group = MBSTD_GROUP if config.mbstd else 0
    return (ProganGenerator(image_channels, height, config.z_dim, fmap_base, fmap_max),
            ProganDiscriminator(image_channels, height, fmap_base, fmap_max, mbstd_group))


def _grows_from(role: str, name: str, doublings: int) -> str | None:
    """Where a tensor of a ProGAN `doublings` times the source's resolution comes from: both networks index their
    blocks and RGB layers by level from 4 px up, so every tensor keeps its name, and the new top levels' are new."""
    return name


FAMILY = ModelFamily(
    name="progan", build=build, summary=summary, grows=True, truncation="none", grows_from=_grows_from,
    description="Karras et al. 2018: progressive growing from 4x4 with fade-ins, equalized LR, pixel norm",
    options=frozenset({"fmap_base", "fmap_max", "mbstd"}),
    resolutions="square powers of two from 4 to 1024 px",
    notes={name: " (its widths are --fmap-base and --fmap-max)" for name in ("g_width", "d_width")},
    recipe=("Karras et al. 2018: progressive growing 600+600 kimg per resolution, WGAN-GP with drift 0.001, "
            "Adam 1e-3 / (0, 0.99), z 512, minibatch stddev, G EMA",
            {("model", "name"): "progan", ("model", "z_dim"): 512, ("model", "mbstd"): True,
             ("loss", "name"): "wgan-gp", ("loss", "drift"): 0.001, ("lr_g",): 1e-3, ("lr_d",): 1e-3,
             ("beta1",): 0.0, ("beta2",): 0.99, ("ema_kimg",): 10.0, ("batch",): 64}))
