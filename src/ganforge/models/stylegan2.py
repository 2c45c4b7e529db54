"""StyleGAN2 (Karras, Laine, Aittala, Hellsten, Lehtinen & Aila, CVPR 2020), config F, in plain PyTorch.

Generator (Fig. 2 (d), Fig. 7 "skip" G)
- mapping f: z [B, z_dim] (normalised to the unit second moment; with --cond, a class embedding normalised the
  same way is concatenated, as StyleGAN2-ADA does) -> 8 fully-connected layers of w_dim = z_dim with LeakyReLU
  and learning-rate multiplier 0.01 -> w. The running mean of w (decay 0.995 per training call) is the buffer
  `w_avg`: truncation in W pulls w toward it (StyleGAN, Eq. 3).
- synthesis g: a learned constant 4x4 input; per resolution r = 8..R a modulated 3x3 conv that upsamples and a
  modulated 3x3 conv, each with noise and LeakyReLU; at every resolution a modulated 1x1 toRGB whose output is
  added to the upsampled image so far (the skip architecture). The 4x4 block has one conv. The ws it reads:
  num_ws = 2 log2(R) - 2 (18 at 1024 px); a toRGB shares its w with the next block's first conv.
Discriminator (Fig. 7 "residual" D): fromRGB (1x1) at R; per resolution r = R..8 two 3x3 convs, the second
  halving the size, plus a downsampled 1x1 skip, summed and scaled by 1/sqrt(2); at 4x4 minibatch stddev
  (group 4, one feature), a 3x3 conv, a dense layer and the output. With --cond the output is a projection on a
  normalised class embedding (Miyato & Koyama 2018, as StyleGAN2-ADA), not a second mapping network.
Widths: channels(r) = min(fmap_max, fmap_base / r). Config F is fmap_base 32768, fmap_max 512: 512 up to 64 px,
  then 256, 128, 64, 32 at 1024 px; G has 30.4M and D 29.0M parameters at 1024 px, the paper's "30M" and "29M"
  (Sec. 4.2; config E's fmap_base 16384 gives its "25M" and "24M").
Training mode: fresh noise maps and, with probability `mixing_prob` (0.9, Sec. 2 of StyleGAN), two latents per
  image whose ws switch at a random layer (style mixing regularization). Evaluation: fixed noise maps, one w.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.family import ModelFamily
from ganforge.models.layers import MinibatchStdDev
from ganforge.models.progan_layers import paper_count
from ganforge.models.stylegan2_layers import (
    Conv2d,
    FullyConnected,
    Resample,
    SynthesisLayer,
    ToRGB,
    count_params,
    normalize_2nd_moment,
)

MAPPING_LAYERS = 8
MAPPING_LR_MUL = 0.01
W_AVG_BETA = 0.995  # w_avg <- mean(w) + 0.995 (w_avg - mean(w)) per training call
MIXING_PROB = 0.9
MBSTD_GROUP = 4
FMAP_BASE, FMAP_MAX = 32768, 512  # config F
MIN_RESOLUTION, MAX_RESOLUTION = 4, 1024


class LayerRow(NamedTuple):
    name: str
    shape: tuple[int, ...]  # output shape without the batch axis
    params: int


def channels(resolution: int, fmap_base: int = FMAP_BASE, fmap_max: int = FMAP_MAX) -> int:
    return max(1, min(fmap_max, fmap_base // resolution))


def check_shape(image_shape: tuple[int, int, int]) -> int:
    """The store's square power-of-two resolution, else a ConfigError saying how to prepare one."""
    _, height, width = image_shape
    if height != width:
        raise ConfigError(f"stylegan2 needs square images, but the store's are {width}x{height} px; prepare it "
                          "square, e.g. `ganforge prepare SRC --resolution 256 --crop pad`.")
    if not MIN_RESOLUTION <= height <= MAX_RESOLUTION or height & (height - 1):
        raise ConfigError(f"stylegan2 needs a power-of-two resolution from {MIN_RESOLUTION} to {MAX_RESOLUTION} px, "
                          f"but the store's images are {height} px; prepare the store at one, e.g. "
                          "`ganforge prepare SRC --resolution 256`.")
    return height


def mix_styles(ws: torch.Tensor, other: torch.Tensor, from_other: torch.Tensor) -> torch.Tensor:
    """ws [B, num_ws, w_dim] with the layers where `from_other` [num_ws] (bool) is true taken from `other`."""
    return torch.where(from_other.view(1, -1, 1), other, ws)


class MappingNetwork(nn.Module):
    w_avg: torch.Tensor
    def __init__(self, z_dim: int, num_classes: int = 0) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, z_dim, num_classes
        self.embed = FullyConnected(num_classes, self.w_dim) if num_classes else None
        in_features = z_dim + (self.w_dim if num_classes else 0)
        self.layers = nn.Sequential(*[FullyConnected(in_features if i == 0 else self.w_dim, self.w_dim,
                                                     activate=True, lr_mul=MAPPING_LR_MUL)
                                      for i in range(MAPPING_LAYERS)])
        self.register_buffer("w_avg", torch.zeros(self.w_dim))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, psi: float | torch.Tensor = 1.0, *,
                track: bool = True) -> torch.Tensor:
        """z [B, z_dim] (+ labels [B]) -> w [B, w_dim], truncated toward w_avg by psi (1 = not at all); psi may be
        a [1] tensor, an input of an exported graph.

        In training mode `track` updates w_avg with this batch's mean w."""
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this conditional generator needs class labels")
            onehot = F.one_hot(labels.long(), self.num_classes).to(z.dtype)
            x = torch.cat([x, normalize_2nd_moment(self.embed(onehot))], dim=1)
        w = self.layers(x)
        if self.training and track:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, W_AVG_BETA))
        if isinstance(psi, torch.Tensor):  # traced for export: always applied, psi = 1 included
            return self.w_avg.to(w.dtype) + psi.to(w.dtype).view(-1, 1) * (w - self.w_avg.to(w.dtype))
        if psi != 1.0:
            w = self.w_avg.to(w.dtype).lerp(w, psi)
        return w


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, resolution: int, image_channels: int, fmap_base: int, fmap_max: int) -> None:
        super().__init__()
        self.resolution, self.image_channels, self.w_dim = resolution, image_channels, w_dim
        self.levels = int(math.log2(resolution)) - 1  # blocks at 4, 8, ..., R px
        self.num_ws = 2 * self.levels
        width = [channels(4 << level, fmap_base, fmap_max) for level in range(self.levels)]
        self.widths = width
        self.const = nn.Parameter(torch.randn(width[0], 4, 4))
        self.convs = nn.ModuleList([SynthesisLayer(width[0], width[0], w_dim, 4)])
        for level in range(1, self.levels):
            res = 4 << level
            self.convs.append(SynthesisLayer(width[level - 1], width[level], w_dim, res, up=True))
            self.convs.append(SynthesisLayer(width[level], width[level], w_dim, res))
        self.to_rgb = nn.ModuleList([ToRGB(w, image_channels, w_dim) for w in width])
        self.resample = Resample()

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> images [B, C, R, R] (not squashed; about [-1, 1] once trained)."""
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = self.convs[0](x, ws[:, 0])
        image = self.to_rgb[0](x, ws[:, 1])
        for level in range(1, self.levels):
            x = self.convs[2 * level - 1](x, ws[:, 2 * level - 1])
            x = self.convs[2 * level](x, ws[:, 2 * level])
            image = self.resample.up(image) + self.to_rgb[level](x, ws[:, 2 * level + 1])
        return image


class StyleGAN2Generator(nn.Module):
    def __init__(self, image_channels: int, resolution: int, z_dim: int = 512, num_classes: int = 0,
                 fmap_base: int = FMAP_BASE, fmap_max: int = FMAP_MAX, mixing_prob: float = MIXING_PROB) -> None:
        super().__init__()
        self.z_dim, self.mixing_prob = z_dim, mixing_prob
        self.mapping = MappingNetwork(z_dim, num_classes)
        self.synthesis = SynthesisNetwork(z_dim, resolution, image_channels, fmap_base, fmap_max)
        self.num_ws = self.synthesis.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def styles(self, z: torch.Tensor, labels: torch.Tensor | None = None, psi: float | torch.Tensor = 1.0
               ) -> torch.Tensor:
        """z -> ws [B, num_ws, w_dim]: one w per layer, with style mixing in training mode."""
        ws = self.mapping(z, labels, psi).unsqueeze(1).repeat(1, self.num_ws, 1)
        if self.training and self.mixing_prob > 0 and self.num_ws > 1:
            # One crossover layer per batch, drawn on the device (no host sync): with probability 1 - p it is
            # num_ws, i.e. no mixing. The second latent does not move w_avg.
            device = z.device
            cutoff = torch.randint(1, self.num_ws, (), device=device)
            cutoff = torch.where(torch.rand((), device=device) < self.mixing_prob, cutoff, self.num_ws)
            other = self.mapping(torch.randn_like(z), labels, psi, track=False).unsqueeze(1)
            ws = mix_styles(ws, other.expand_as(ws), torch.arange(self.num_ws, device=device) >= cutoff)
        return ws

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, psi: float | torch.Tensor = 1.0,
                return_ws: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """z [B, z_dim] (+ labels [B]) -> images [B, C, R, R]; psi truncates in W toward w_avg. With `return_ws`,
        (images, ws): the path-length penalty differentiates the images with respect to ws."""
        ws = self.styles(z, labels, psi)
        images = self.synthesis(ws)
        return (images, ws) if return_ws else images

    def layer_rows(self) -> list[LayerRow]:
        syn, rows = self.synthesis, []
        for i, layer in enumerate(self.mapping.layers):
            rows.append(LayerRow(f"Mapping FC {i + 1}", (self.mapping.w_dim,), count_params(layer)))
        if self.mapping.embed is not None:
            rows.insert(0, LayerRow("Class embedding", (self.mapping.w_dim,), count_params(self.mapping.embed)))
        w = syn.widths
        rows.append(LayerRow("Const", (w[0], 4, 4), syn.const.numel()))
        rows.append(LayerRow("ModConv 3x3", (w[0], 4, 4), count_params(syn.convs[0])))
        rows.append(LayerRow("toRGB", (syn.image_channels, 4, 4), count_params(syn.to_rgb[0])))
        for level in range(1, syn.levels):
            res = 4 << level
            rows.append(LayerRow("ModConv 3x3 up", (w[level], res, res), count_params(syn.convs[2 * level - 1])))
            rows.append(LayerRow("ModConv 3x3", (w[level], res, res), count_params(syn.convs[2 * level])))
            rows.append(LayerRow("toRGB (+ upsampled)", (syn.image_channels, res, res),
                                 count_params(syn.to_rgb[level])))
        return rows


class DiscriminatorBlock(nn.Module):
    """[B, in, r, r] -> [B, out, r/2, r/2]: (skip(x) + conv1(conv0(x))) / sqrt(2) (StyleGAN2 Fig. 7 (c))."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv0 = Conv2d(in_ch, in_ch, 3)
        self.conv1 = Conv2d(in_ch, out_ch, 3, down=True)
        self.skip = Conv2d(in_ch, out_ch, 1, bias=False, activate=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1/sqrt(2) keeps the sum of two unit-variance paths at unit variance.
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class StyleGAN2Discriminator(nn.Module):
    def __init__(self, image_channels: int, resolution: int, num_classes: int = 0, fmap_base: int = FMAP_BASE,
                 fmap_max: int = FMAP_MAX, mbstd_group: int = MBSTD_GROUP) -> None:
        super().__init__()
        self.resolution, self.image_channels = resolution, image_channels
        levels = int(math.log2(resolution)) - 1
        self.widths = [channels(4 << level, fmap_base, fmap_max) for level in range(levels)]
        w = self.widths
        self.from_rgb = Conv2d(image_channels, w[-1], 1)
        self.blocks = nn.ModuleList([DiscriminatorBlock(w[level], w[level - 1]) for level in range(levels - 1, 0, -1)])
        self.mbstd = MinibatchStdDev(mbstd_group)
        self.conv = Conv2d(w[0] + 1, w[0], 3)
        self.dense = FullyConnected(w[0] * 16, w[0], activate=True)
        self.cmap_dim = w[0] if num_classes else 1
        self.out = FullyConnected(w[0], self.cmap_dim)
        self.embed = FullyConnected(num_classes, self.cmap_dim) if num_classes else None
        self.num_classes = num_classes

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, C, R, R] (+ labels [B]) -> logits [B]."""
        x = self.from_rgb(images)
        for block in self.blocks:
            x = block(x)
        x = self.conv(self.mbstd(x))
        x = self.out(self.dense(x.flatten(1)))
        if self.embed is None:
            return x.view(-1)
        if labels is None:
            raise ValueError("this conditional discriminator needs class labels")
        cmap = normalize_2nd_moment(self.embed(F.one_hot(labels.long(), self.num_classes).to(x.dtype)))
        return (x * cmap).sum(1) / math.sqrt(self.cmap_dim)

    def layer_rows(self) -> list[LayerRow]:
        w, res = self.widths, self.resolution
        rows = [LayerRow("fromRGB 1x1", (w[-1], res, res), count_params(self.from_rgb))]
        for block, level in zip(self.blocks, range(len(w) - 1, 0, -1), strict=True):
            res = 4 << level
            assert isinstance(block, DiscriminatorBlock)
            rows += [LayerRow("Conv 3x3", (w[level], res, res), count_params(block.conv0)),
                     LayerRow("Conv 3x3 down", (w[level - 1], res // 2, res // 2), count_params(block.conv1)),
                     LayerRow("Skip 1x1 down", (w[level - 1], res // 2, res // 2), count_params(block.skip))]
        rows += [LayerRow("Minibatch stddev", (w[0] + 1, 4, 4), 0),
                 LayerRow("Conv 3x3", (w[0], 4, 4), count_params(self.conv)),
                 LayerRow("Fully-connected", (w[0],), count_params(self.dense)),
                 LayerRow("Fully-connected (output)", (self.cmap_dim,), count_params(self.out))]
        if self.embed is not None:
            rows.append(LayerRow("Class embedding (projection)", (self.cmap_dim,), count_params(self.embed)))
        return rows


def layer_table(title: str, rows: list[LayerRow]) -> str:
    lines = [title, f"{'layer':<30}{'output shape':>16}{'params':>14}{'rounded':>9}"]
    for row in rows:
        params = f"{row.params:,}" if row.params else "-"
        rounded = paper_count(row.params) if row.params else ""
        lines.append(f"{row.name:<30}{'x'.join(map(str, row.shape)):>16}{params:>14}{rounded:>9}")
    total = sum(row.params for row in rows)
    lines.append(f"{'Total trainable parameters':<46}{total:>14,}{paper_count(total):>9}")
    return "\n".join(lines)


def summary(config: ModelConfig, image_shape: tuple[int, int, int]) -> str:
    """G's and D's layer tables (for `ganforge train --model stylegan2 --summary`)."""
    with torch.device("meta"):  # shapes and counts only: no memory for 59M weights, no random draws
        generator, discriminator = networks(config, image_shape)
    res = generator.synthesis.resolution
    return (f"{layer_table(f'Generator at {res}x{res} px ({generator.num_ws} ws)', generator.layer_rows())}\n\n"
            f"{layer_table(f'Discriminator at {res}x{res} px', discriminator.layer_rows())}")


def networks(config: ModelConfig, image_shape: tuple[int, int, int]
             ) -> tuple[StyleGAN2Generator, StyleGAN2Discriminator]:
    resolution = check_shape(image_shape)
    classes = config.num_classes if config.conditional else 0
    return (StyleGAN2Generator(image_shape[0], resolution, config.z_dim, classes, config.fmap_base, config.fmap_max),
            StyleGAN2Discriminator(image_shape[0], resolution, classes, config.fmap_base, config.fmap_max))


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return networks(config, image_shape)


RECIPE_F = {("model", "name"): "stylegan2", ("model", "z_dim"): 512, ("model", "fmap_base"): FMAP_BASE,
            ("model", "fmap_max"): FMAP_MAX, ("loss", "name"): "nonsaturating", ("loss", "r1_gamma"): 10.0,
            ("loss", "r1_every"): 16, ("loss", "pl_weight"): 2.0, ("loss", "pl_every"): 4, ("lr_g",): 2e-3,
            ("lr_d",): 2e-3, ("beta1",): 0.0, ("beta2",): 0.99, ("batch",): 32, ("ema_kimg",): 10.0}

def _grows_from(role: str, name: str, doublings: int) -> str | None:
    """Where a tensor of a network `doublings` times the source's resolution comes from. G's layers are named by
    resolution from 4 px up, so they keep their names and the new top ones are new; D's blocks are numbered from
    the input, so the source's block i is block i + doublings here, and the new input layers are new."""
    if role != "D":
        return name
    if name.startswith("from_rgb."):
        return None
    if name.startswith("blocks."):
        _, index, rest = name.split(".", 2)
        source = int(index) - doublings
        return f"blocks.{source}.{rest}" if source >= 0 else None
    return name


def _d_blocks(discriminator: nn.Module) -> list[nn.Module]:
    """FreezeD's blocks, from the input: from_rgb with the first residual block, then each further one."""
    first, *rest = discriminator.get_submodule("blocks").children()
    return [nn.ModuleList([discriminator.get_submodule("from_rgb"), first]), *rest]


FAMILY = ModelFamily(
    name="stylegan2", build=build, summary=summary, conditional=True, truncation="w",
    path_length=True, d_blocks=_d_blocks, grows_from=_grows_from, g_mapping=lambda g: g.get_submodule("mapping"),
    description="Karras et al. 2020 (config F): mapping network, modulated convs, noise, skip G, residual D",
    options=frozenset({"fmap_base", "fmap_max"}),
    resolutions="square powers of two from 4 to 1024 px",
    notes={**{name: " (its widths are --fmap-base and --fmap-max)" for name in ("g_width", "d_width")},
           "mbstd": " (its D always has minibatch stddev)"},
    # Config F as StyleGAN2-ADA's `--cfg stylegan2` runs it (its Table of configurations): the lazy intervals
    # are ganforge's --r1-every and --pl-every; Adam's lr and betas are not rescaled for them (the paper's c).
    recipe=("Karras et al. 2020, config F: non-saturating loss, style mixing 0.9, R1 gamma 10 every 16 D steps, "
            "path length 2 every 4 G steps, Adam 2e-3 / (0, 0.99), z = w 512, fmap_base 32768, batch 32, "
            "G EMA 10 kimg",
            RECIPE_F))
