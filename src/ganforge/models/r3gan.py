"""R3GAN (Huang, Gokaslan, Kuleshov & Tompkin, NeurIPS 2024): "The GAN is dead; long live the GAN! A Modern GAN
Baseline". A relativistic loss with both zero-centred penalties (RpGAN + R1 + R2, `--loss rpgan`, `--r1-gamma`,
`--r2-gamma`) trains plain modernized ResNets, without the tricks StyleGAN piles up.

Networks (the paper's Sec. 3 and Fig. 4, as its `R3GAN/Networks.py` builds them)
- No normalization anywhere, no mapping network, no noise inputs, no equalized learning rate.
- Residual block, an inverted bottleneck: 1x1 conv expanding the channels 2x, leaky ReLU(0.2), 3x3 grouped conv
  (16 channels per group, the paper's cardinality), leaky ReLU, 1x1 conv back; the branch is added to its input.
- Fix-up initialisation: the branch's last conv starts at zero, so every block starts as the identity; the other
  two convs are He-initialised and scaled by L^(-1/4) (L^(-1/(2m-2)) with m = 3 convs per branch, L = the
  network's number of blocks), so the variance a trained network accumulates over its blocks stays bounded.
  The biases are the activations' (zero at init, added before each leaky ReLU): here the two convs before an
  activation carry them. Every other layer has none.
- Stages: two blocks at each resolution. Between stages, a 1x1 conv changes the channels and the [1, 3, 3, 1]
  low-pass filter resamples x2 (bilinear interpolation; the paper's `[1, 2, 1]` filter convolved with the x2 box),
  conv first in G and resampling first in D, so the conv always runs at the lower resolution.
- G: z (+ class embedding) -> a linear layer scaling a learned 4x4 basis per channel -> stages doubling to the image
  size -> 1x1 conv to the image channels. Its output is not squashed, as in the paper (and ganforge's stylegan2);
  `to_uint8` clips what it overshoots.
- D mirrors G: 1x1 conv from the image, stages halving to 4x4, then a depthwise 4x4 conv (one 4x4 "basis" per
  channel) to a vector and a linear layer to one logit.

Widths: channels at r px are width * min(8, 256 / r), for --g-width and --d-width alike; width 96 gives the paper's
768 channels up to 32 px, 384 at 64 px and 96 at 256 px (its CIFAR-10, FFHQ-64 and FFHQ-256 networks).

Deviations from the paper
- Conditional D: a projection head (Miyato & Koyama 2018) beside the unconditional logit, as ganforge's other
  families have; the paper keeps only the inner product of a class embedding with D's final features.
- Training schedules (see the recipe below): the paper cosine-anneals the learning rate, gamma and Adam's beta2
  over 20 Mimg; `--schedule cosine` draws the same shape over the run's --kimg, so a short run ends annealed too.
  Its EMA length grows with the images seen (here: --ema-rampup) and its augmentation probability follows a fixed
  ramp (here: ADA adapts it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.family import ModelFamily
from ganforge.models.layers import ProjectionHead
from ganforge.models.stylegan2_layers import Resample

EXPANSION = 2  # the branch's hidden channels / the block's channels
GROUP_SIZE = 16  # channels per group of the 3x3 conv (cardinality 96 at the paper's 768 channels)
BLOCKS_PER_STAGE = 2
CONVS_PER_BRANCH = 3  # m in the fix-up scaling L^(-1/(2m-2))
SLOPE = 0.2
LRELU_GAIN = math.sqrt(2 / (1 + SLOPE**2))  # He's gain for leaky ReLU(0.2)
MAX_MULT, BASE_RES = 8, 256  # channels at r px = width * min(MAX_MULT, BASE_RES / r)
MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024


def check_resolution(image_shape: tuple[int, int, int]) -> int:
    """The store's square power-of-two side, else a ConfigError naming the sizes that work."""
    _, height, width = image_shape
    if height != width or not MIN_RESOLUTION <= height <= MAX_RESOLUTION or height & (height - 1):
        raise ConfigError(f"r3gan cannot draw {width}x{height} px: it doubles a 4x4 basis, so the store must be square "
                          f"with a power-of-two side from {MIN_RESOLUTION} to {MAX_RESOLUTION} px (e.g. 32, 64 or "
                          "256); prepare one (`ganforge prepare SRC --resolution 64`).")
    return height


def stage_widths(width: int, resolution: int) -> list[int]:
    """Channels at 4, 8, ..., `resolution` px."""
    sizes = [4 << i for i in range(int(math.log2(resolution)) - 1)]
    return [max(1, int(width * min(MAX_MULT, BASE_RES / size))) for size in sizes]


def cardinality(channels: int) -> int:
    """Groups of the 3x3 conv: about GROUP_SIZE channels each, and a divisor of `channels` (narrow CPU widths)."""
    groups = max(1, channels // GROUP_SIZE)
    while channels % groups:
        groups -= 1
    return groups


def he_init(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Conv2d | nn.Linear:
    """Weights from N(0, gain^2 / fan_in), biases zero (the paper's "MSR" initialiser)."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ResidualBlock(nn.Module):
    """x + branch(x), the branch an inverted bottleneck that is zero at init (fix-up)."""

    def __init__(self, channels: int, total_blocks: int) -> None:
        super().__init__()
        hidden = channels * EXPANSION
        gain = LRELU_GAIN * total_blocks ** (-1 / (2 * CONVS_PER_BRANCH - 2))
        self.expand = he_init(nn.Conv2d(channels, hidden, 1), gain)
        self.grouped = he_init(nn.Conv2d(hidden, hidden, 3, padding=1, groups=cardinality(hidden)), gain)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        nn.init.zeros_(self.project.weight)
        self.activation = nn.LeakyReLU(SLOPE)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.activation(self.grouped(self.activation(self.expand(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class Transition(nn.Module):
    """x2 up (G: 1x1 conv, then resample) or down (D: resample, then 1x1 conv); no conv when the width stays."""

    def __init__(self, in_ch: int, out_ch: int, *, up: bool) -> None:
        super().__init__()
        self.up = up
        self.resample = Resample()
        self.conv = he_init(nn.Conv2d(in_ch, out_ch, 1, bias=False)) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return self.resample.up(x if self.conv is None else self.conv(x))
        x = self.resample.down(x)
        return x if self.conv is None else self.conv(x)


class LatentBasis(nn.Module):
    """z -> [B, C, 4, 4]: a learned N(0, 1) 4x4 pattern per channel, each scaled by a linear function of z."""

    def __init__(self, z_in: int, channels: int) -> None:
        super().__init__()
        self.pattern = nn.Parameter(torch.randn(channels, 4, 4))
        self.scale = he_init(nn.Linear(z_in, channels, bias=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.pattern.unsqueeze(0) * self.scale(z)[:, :, None, None]


def _stage(channels: int, total_blocks: int) -> list[nn.Module]:
    return [ResidualBlock(channels, total_blocks) for _ in range(BLOCKS_PER_STAGE)]


class R3ganGenerator(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        widths = stage_widths(config.g_width, check_resolution(image_shape))
        total = BLOCKS_PER_STAGE * len(widths)
        self.embed: nn.Embedding | None = None
        z_in = config.z_dim
        if config.conditional:
            # The paper's one-hot linear layer, He-initialised: entries from N(0, 1 / classes).
            self.embed = nn.Embedding(config.num_classes, config.z_dim)
            nn.init.normal_(self.embed.weight, 0.0, 1 / math.sqrt(config.num_classes))
            z_in += config.z_dim
        self.basis = LatentBasis(z_in, widths[0])
        self.stages = nn.ModuleList(nn.Sequential(*([] if i == 0 else [Transition(widths[i - 1], w, up=True)]),
                                                  *_stage(w, total)) for i, w in enumerate(widths))
        self.to_image = he_init(nn.Conv2d(widths[-1], image_shape[0], 1, bias=False))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z [B, z_dim] (+ labels [B]) -> images [B, C, R, R], about [-1, 1] once trained (not clipped)."""
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.basis(z)
        for stage in self.stages:
            x = stage(x)
        return self.to_image(x)


class R3ganDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        widths = stage_widths(config.d_width, check_resolution(image_shape))[::-1]  # from R px down to 4 px
        total = BLOCKS_PER_STAGE * len(widths)
        self.from_image = he_init(nn.Conv2d(image_shape[0], widths[0], 1, bias=False))
        self.stages = nn.ModuleList(nn.Sequential(*_stage(w, total),
                                                  *([Transition(w, widths[i + 1], up=False)]
                                                    if i + 1 < len(widths) else []))
                                    for i, w in enumerate(widths))
        last = widths[-1]
        # 4x4 -> 1x1 with one 4x4 filter per channel: the transpose of G's basis.
        self.basis = he_init(nn.Conv2d(last, last, 4, groups=last, bias=False))
        self.head = he_init(nn.Linear(last, 1, bias=False))
        self.projection = ProjectionHead(last, config.num_classes) if config.conditional else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, C, R, R] (+ labels [B]) -> logits [B]."""
        x = self.from_image(images)
        for stage in self.stages:
            x = stage(x)
        features = self.basis(x).flatten(1)
        logits = self.head(features).flatten()
        if self.projection is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            logits = logits + self.projection(features, labels)
        return logits


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return R3ganGenerator(config, image_shape), R3ganDiscriminator(config, image_shape)


# The authors' FFHQ-64 preset (`train.py --preset FFHQ-64`, README: --batch 256 --aug 1). Its schedules run over
# 20 Mimg with cosine decay: lr 2e-4 -> 5e-5, gamma 2 -> 0.2, beta2 0.9 -> 0.99, EMA half-life 0 -> 500 kimg, ADA's
# p 0 -> 0.3 (fixed, not adaptive). `--schedule cosine` anneals lr, gamma and beta2 that way over the run's --kimg
# (training/schedule.py); the EMA ramp-up 0.025 caps the half-life at 2.5 % of the images seen, which meets the
# paper's ramp at 10 and 20 Mimg.
RECIPE = {("model", "name"): "r3gan", ("model", "z_dim"): 64, ("model", "g_width"): 96, ("model", "d_width"): 96,
          ("loss", "name"): "rpgan", ("loss", "r1_gamma"): 2.0, ("loss", "r2_gamma"): 2.0, ("loss", "r1_every"): 1,
          ("lr_g",): 2e-4, ("lr_d",): 2e-4, ("beta1",): 0.0, ("beta2",): 0.9, ("batch",): 256,
          ("ema_kimg",): 500.0, ("ema_rampup",): 0.025, ("augment", "name"): "ada", ("schedule",): "cosine"}

def _d_blocks(discriminator: nn.Module) -> list[nn.Module]:
    """FreezeD's blocks, from the input: the input convolution with the first stage, then each further stage."""
    first, *rest = discriminator.get_submodule("stages").children()
    return [nn.ModuleList([discriminator.get_submodule("from_image"), first]), *rest]


FAMILY = ModelFamily(
    name="r3gan", build=build, conditional=True, truncation="z",
    description="Huang et al. 2024: RpGAN + R1 + R2 on normalization-free ResNets (grouped inverted bottlenecks, "
                "fix-up init)",
    options=frozenset({"g_width", "d_width"}), d_blocks=_d_blocks,
    resolutions="square powers of two from 8 to 1024 px",
    notes={"spectral_norm": " (its networks have no normalization: R1 and R2 keep D in check)",
           "d_batchnorm": " (its networks have no normalization)", "mbstd": " (the paper's D has none)",
           "d_dropout": " (the paper's D has none)", "g_activation": " (leaky ReLU 0.2 throughout)",
           "g_upsample": " (it upsamples with the [1, 3, 3, 1] filter)",
           "extra_convs": " (its stages have two residual blocks each)",
           **{name: " (its widths are --g-width and --d-width)" for name in ("fmap_base", "fmap_max")}},
    recipe=("Huang et al. 2024, FFHQ-64 preset: RpGAN, R1 = R2 gamma 2 every step, Adam 2e-4 / (0, 0.9), z 64, "
            "width 96 (768 channels to 32 px), batch 256, ADA, G EMA 500 kimg with ramp-up 0.025, cosine schedule",
            RECIPE))
