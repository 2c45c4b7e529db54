"""FastGAN (Liu, Zhu, Song & Elgammal, ICLR 2021): "Towards Faster and Stabilized GAN Training for
High-fidelity Few-shot Image Synthesis", from 64 to 1024 px, non-square too.

Levels. The image is a start of at least 4 px per side (4x4, 4x6, 5x5, ...) doubled `stages` times, 4 to 8
times (`plan_levels`; Projected GAN, whose D resizes small images, lets this G double 2 or 3 times, down to 16 px:
`SizeRule`); level s has the start size times 2^s. The paper's names are the levels of a 4 px start:
level 0 = "4 px", 1 = "8 px", 4 = "64 px", 8 = "1024 px". Channel tables are indexed by level, so a 64x96 store
uses the same widths as 64x64.

Generator (Sec. 3.1, Fig. 3)
- stem: z [B, z_dim, 1, 1] -> transposed conv to the start size -> BatchNorm -> GLU, which halves the channels.
- up blocks: nearest x2, 3x3 conv, BatchNorm, GLU. Blocks into levels 1, 3, 5, 7 (8, 32, 128, 512 px) are the
  paper's 'UpBlockComp': two conv-BN-GLU steps, each with noise injection x + w * N(0, 1), w learned from 0.
- skip-layer excitation (SLE, Eq. 1): a low-resolution map, average-pooled to 4x4, a 4x4 conv to 1x1,
  LeakyReLU(0.1), a 1x1 conv and a sigmoid gives one weight per channel of a map 16 times larger. SLE goes from
  level s - 4 into level s for s = 4..7 (4 -> 64, 8 -> 128, 16 -> 256, 32 -> 512 px), as in the authors' code;
  the paper's figure draws the last three. Missing levels are skipped, so 64 px keeps 4 -> 64 only,
  128 px has 4 -> 64 and 8 -> 128, and a G of 2 or 3 doublings (16-56 px, Projected GAN's) has none.
- output: 3x3 conv and tanh; [B, C, H, W] in [-1, 1].

Discriminator (Sec. 3.2, Fig. 4)
- big path: the image is brought to level min(stages, 6) ("256 px": strided 4x4 convs above it, a 3x3 conv at
  or below it), then residual 'DownBlockComp's (a strided conv path averaged with an avg-pool + 1x1 conv
  shortcut) halve it down to level 1 ("8 px"); SLE from level t + 3 into level t for t = 1..3 where both exist
  (256 -> 32, 128 -> 16, 64 -> 8 px). Head: 1x1 conv, BN, LeakyReLU, 4x4 valid conv -> 5x5 patch logits.
- small path: the image average-pooled to level min(5, stages - 1) (128 px, or half size below 256 px) through
  strided convs to level 1 and a 4x4 valid conv -> 5x5 patch logits. D returns both flattened: [B, K].
- self-supervision: three small decoders (nearest x2, conv, BN, GLU per step; 3x3 conv, tanh) rebuild the real
  image from the 8 px features, a random quarter of it from the matching quarter of the 16 px features, and
  the small path's input from its 8 px features (`forward_with_reconstruction`, real images only).

Deviations from the paper
- Reconstruction loss: pixel L1 + MSE against the average-pooled real image, not LPIPS: LPIPS needs pretrained
  VGG/AlexNet weights, which ganforge neither ships nor downloads; pixel losses still make D keep the image
  content in its features, which is what the task is for.
- Widths: g_width and d_width play the paper's ngf and ndf (64 in the paper; z_dim 256); the decoders use
  d_width / 2 (the paper's 32). Below 256 px, D starts with a 3x3 conv at full size as the paper does at 256 px,
  and its small path sees the image at half size; the part decoder stops at the quarter's own size.
- The small path takes the average-pooled image instead of G's second 128 px output, so G has one output.
- Conditional (--cond): a learned class embedding (z_dim wide) concatenated to z in G and a projection term
  (Miyato & Koyama 2018) on D's sum-pooled 8 px features, added to every patch logit. The paper is unconditional.
- Fixed by the design: BatchNorm and spectral norm on every conv in G and D, GLU in G, LeakyReLU(0.2) in D; the
  family (`FAMILY`) takes only --g-width and --d-width, so validation refuses the other model flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.dcgan import init_weights
from ganforge.models.family import ModelFamily
from ganforge.models.layers import ProjectionHead, apply_spectral_norm

G_MULT = (16, 8, 4, 2, 2, 1, 0.5, 0.25, 0.125)  # G channels / g_width at levels 0..8: the authors' nfc_multi
DECODER_MULT = {2: 4, 3: 2, 4: 2, 5: 1}  # decoder channels / (d_width / 2) at the level each up step reaches
MIN_STAGES, MAX_STAGES = 4, 8  # 64 and 1024 px from a 4 px start


@dataclass(frozen=True)
class SizeRule:
    """Which sizes a G on these levels takes, and how a refusal names them. FastGAN's own D needs 4 doublings
    (its SLE and decoders reach from 8 px to 64 px); a D that resizes its input (Projected GAN's) needs fewer."""

    model: str  # who refuses, as the message names it
    min_stages: int  # fewest doublings of the start: 4 is 64 px, 2 is 16 px
    examples: str  # sizes the message offers, the smallest first
    resolution: int  # the `ganforge prepare --resolution` the message suggests


FASTGAN_SIZES = SizeRule("FastGAN", MIN_STAGES, "64, 256, 1024 or 64x96", 256)


def plan_levels(height: int, width: int, sizes: SizeRule = FASTGAN_SIZES) -> tuple[int, int, int]:
    """(stages, start_height, start_width): the most doublings that keep the start at least 4 px, from
    `sizes.min_stages` to 8 of them."""
    stages = 0
    while (height % 2 ** (stages + 1) == 0 and width % 2 ** (stages + 1) == 0
           and min(height, width) // 2 ** (stages + 1) >= 4):
        stages += 1
    if not sizes.min_stages <= stages <= MAX_STAGES:
        raise ConfigError(f"{sizes.model} cannot use the store's {width}x{height} px: each side must be a start of "
                          f"4 px or more doubled {sizes.min_stages} to {MAX_STAGES} times ({4 << sizes.min_stages} to "
                          f"{4 << MAX_STAGES} px on the short side, e.g. {sizes.examples}); prepare the store at such "
                          f"a size (`ganforge prepare --resolution {sizes.resolution}`) or use --model dcgan.")
    return stages, height >> stages, width >> stages


def _width(base: int, mult: float) -> int:
    return max(1, int(base * mult))


def _d_width(d_width: int, level: int) -> int:
    """D's channels at a level: ndf * 2^(4 - level), 512 at 8 px ... 8 at 512 px for ndf 64 (the authors' nfc)."""
    return _width(d_width, 2.0 ** (4 - level))


def _small_width(d_width: int, level: int) -> int:
    """Channels of D's small path: half the big path's at the same level."""
    return max(1, _d_width(d_width, level) // 2)


class NoiseInjection(nn.Module):
    """x + w * n, n ~ N(0, 1) per pixel and shared by the channels, w learned from 0 (UpBlockComp, after
    StyleGAN's noise inputs). Training draws n from the global torch RNG, which checkpoints save, so resume is
    exact. In eval mode n is one fixed map per layer and size, as StyleGAN2's constant noise: a seed then renders
    the same image whatever its batch and whatever was drawn before, and an exported graph holds no random op.
    The map is made from a seed, not stored, so checkpoints are as before."""

    def __init__(self, salt: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.salt = salt  # tells apart the fixed maps of two layers at one size
        self._fixed: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    def fixed_noise(self, x: torch.Tensor) -> torch.Tensor:
        """[1, 1, H, W]: this layer's eval-mode noise at x's size, the same in every process."""
        height, width = int(x.shape[2]), int(x.shape[3])  # tracing for an export gives the sizes as tensors
        key = (height, width, x.device, x.dtype)
        if key not in self._fixed:
            seed = (height * 65_537 + width) * 16 + self.salt
            # numpy's generator, not torch's: a trace for an export keeps the map as a constant, where a torch
            # draw would record a random op holding a Generator, which TorchScript cannot save.
            drawn = np.random.default_rng(seed).standard_normal((1, 1, height, width), dtype=np.float32)
            self._fixed[key] = torch.from_numpy(drawn).to(x.device, x.dtype)
        return self._fixed[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.fixed_noise(x)
        # In x's dtype: an fp32 weight would promote a bf16 map to fp32 and the BatchNorm and GLU after it too
        # (measured: the bf16 G step 40 % slower on the CPU).
        return x + self.weight.to(x.dtype) * noise


def _conv_bn_glu(in_ch: int, out_ch: int, *, noise: int | None) -> list[nn.Module]:
    """`noise`: None, or the salt of the noise injection after the conv."""
    # The conv makes 2 * out_ch channels; GLU gates one half by the sigmoid of the other (Dauphin et al. 2017).
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch * 2, 3, 1, 1, bias=False)]
    if noise is not None:
        layers.append(NoiseInjection(noise))
    return layers + [nn.BatchNorm2d(out_ch * 2), nn.GLU(dim=1)]


def up_block(in_ch: int, out_ch: int, *, comp: bool) -> nn.Sequential:
    """Nearest x2 then conv-BN-GLU; `comp` is the paper's UpBlockComp: noise and a second conv-BN-GLU."""
    layers = [nn.Upsample(scale_factor=2, mode="nearest"), *_conv_bn_glu(in_ch, out_ch, noise=0 if comp else None)]
    if comp:
        layers += _conv_bn_glu(out_ch, out_ch, noise=1)
    return nn.Sequential(*layers)


class SkipExcitation(nn.Module):
    """SLE (Eq. 1): y = F(x_low, {W_i}) * x_high, with F a per-channel gate computed from the low-res map."""

    def __init__(self, low_ch: int, high_ch: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), nn.Conv2d(low_ch, high_ch, 4, 1, 0, bias=False), nn.LeakyReLU(0.1),
            nn.Conv2d(high_ch, high_ch, 1, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)  # gate [B, C_high, 1, 1]


class FastganGenerator(nn.Module):
    # --channels-last leaves this G contiguous: each GLU splits the channels, which in channels-last are the
    # innermost dimension, so both halves become strided and BatchNorm + GLU ran 5x slower (bf16, 2-core CPU);
    # the whole G step was 157 ms against 114 contiguous at g width 16, 1,457 against 1,227 at 64.
    channels_last = False

    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int],
                 sizes: SizeRule = FASTGAN_SIZES) -> None:
        super().__init__()
        channels, height, width = image_shape
        stages, start_h, start_w = plan_levels(height, width, sizes)
        # Levels 0-3 (the paper's 4-32 px) are 16, 8, 4 and 2 x g_width at any size: a 32 px G ends on 2 x g_width.
        ch = [_width(config.g_width, mult) for mult in G_MULT[: stages + 1]]
        self.embed = nn.Embedding(config.num_classes, config.z_dim) if config.conditional else None
        z_in = config.z_dim * (2 if self.embed is not None else 1)
        self.stem = nn.Sequential(nn.ConvTranspose2d(z_in, ch[0] * 2, (start_h, start_w), 1, 0, bias=False),
                                  nn.BatchNorm2d(ch[0] * 2), nn.GLU(dim=1))
        self.ups = nn.ModuleList(up_block(ch[s - 1], ch[s], comp=s % 2 == 1) for s in range(1, stages + 1))
        self.sle = nn.ModuleDict({str(s): SkipExcitation(ch[s - 4], ch[s]) for s in range(4, min(stages, 7) + 1)})
        self.to_image = nn.Conv2d(ch[stages], channels, 3, 1, 1)
        self.apply(init_weights)
        apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.stem(z[:, :, None, None])
        levels = [x]  # levels[s]: the feature map at level s, kept for SLE
        for s, up in enumerate(self.ups, start=1):
            x = up(x)
            if str(s) in self.sle:
                x = self.sle[str(s)](levels[s - 4], x)
            levels.append(x)
        return torch.tanh(self.to_image(x))


def _down(in_ch: int, out_ch: int, *, batchnorm: bool = True) -> list[nn.Module]:
    """The paper's DownBlock: 4x4 stride-2 conv, BatchNorm, LeakyReLU(0.2)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_ch))
    return layers + [nn.LeakyReLU(0.2)]


class DownBlockComp(nn.Module):
    """Halves the size on two paths averaged: strided 4x4 conv + 3x3 conv, and avg-pool + 1x1 conv (a shortcut)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.main = nn.Sequential(*_down(in_ch, out_ch), nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))
        self.direct = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_ch, out_ch, 1, 1, 0, bias=False),
                                    nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


def decoder(in_ch: int, channels: int, ups: int, base: int) -> nn.Sequential:
    """A self-supervision decoder: from 8 px level features, `ups` up blocks (to level 1 + ups), conv, tanh."""
    layers: list[nn.Module] = []
    for level in range(2, 2 + ups):
        layers.append(up_block(in_ch, _width(base, DECODER_MULT[level]), comp=False))
        in_ch = _width(base, DECODER_MULT[level])
    return nn.Sequential(*layers, nn.Conv2d(in_ch, channels, 3, 1, 1), nn.Tanh())


def _quarter(x: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Quarter `part` (a one-element index tensor) of a map: 0 top-left, 1 top-right, 2 bottom-left, 3
    bottom-right. Selected on the device, so the drawn index is never read back to the host."""
    h, w = x.shape[2] // 2, x.shape[3] // 2
    quarters = torch.stack([x[:, :, top: top + h, left: left + w] for top in (0, h) for left in (0, w)])
    return quarters.index_select(0, part.to(x.device, non_blocking=True)).squeeze(0)


def _pixel_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # The target is average-pooled to the decoder's size (always an integer factor); no gradient flows into it.
    target = F.adaptive_avg_pool2d(target.detach(), (reconstruction.shape[2], reconstruction.shape[3]))
    return F.l1_loss(reconstruction, target) + F.mse_loss(reconstruction, target)


class FastganDiscriminator(nn.Module):
    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = image_shape
        stages, _, _ = plan_levels(height, width)
        ndf = config.d_width
        self.stages, self.top = stages, min(stages, 6)  # top: the level the residual blocks start from ("256 px")
        stem: list[nn.Module] = []
        if stages > self.top:  # 512 and 1024 px: strided convs down to 256 px, BatchNorm after the first
            in_ch = channels
            for level in range(stages - 1, self.top - 1, -1):
                stem += _down(in_ch, _d_width(ndf, level), batchnorm=bool(stem))
                in_ch = _d_width(ndf, level)
        else:
            stem = [nn.Conv2d(channels, _d_width(ndf, self.top), 3, 1, 1), nn.LeakyReLU(0.2)]
        self.stem = nn.Sequential(*stem)
        # downs[i] takes level top - i to top - i - 1, ending at level 1 (8 px).
        self.downs = nn.ModuleList(DownBlockComp(_d_width(ndf, s), _d_width(ndf, s - 1))
                                   for s in range(self.top, 1, -1))
        self.sle = nn.ModuleDict({str(t): SkipExcitation(_d_width(ndf, t + 3), _d_width(ndf, t))
                                  for t in (1, 2, 3) if t + 3 <= self.top})
        self.head = nn.Sequential(nn.Conv2d(_d_width(ndf, 1), ndf * 16, 1, 1, 0, bias=False), nn.BatchNorm2d(ndf * 16),
                                  nn.LeakyReLU(0.2), nn.Conv2d(ndf * 16, 1, 4, 1, 0))
        # Small path: half D's channels per level, from the image at level min(5, stages - 1) down to level 1.
        self.small_level = min(5, stages - 1)
        small = _down(channels, _small_width(ndf, self.small_level - 1), batchnorm=False)
        for level in range(self.small_level - 1, 1, -1):
            small += _down(_small_width(ndf, level), _small_width(ndf, level - 1))
        self.small = nn.Sequential(*small)
        self.small_head = nn.Conv2d(_small_width(ndf, 1), 1, 4, 1, 0)
        # Decoders end at level min(5, ...): 128 px as in the paper, or the target's own size below that.
        base = max(1, ndf // 2)
        self.decoder_big = decoder(_d_width(ndf, 1), channels, min(4, stages - 1), base)
        self.decoder_part = decoder(_d_width(ndf, 2), channels, min(4, stages - 2), base)
        self.decoder_small = decoder(_small_width(ndf, 1), channels, self.small_level - 1, base)
        self.projection = ProjectionHead(_d_width(ndf, 1), config.num_classes) if config.conditional else None
        self.apply(init_weights)
        apply_spectral_norm(self)

    def _paths(self, images: torch.Tensor) -> tuple[dict[int, torch.Tensor], torch.Tensor, torch.Tensor]:
        """({level: big-path features}, small-path features at level 1, the small path's input image)."""
        x = self.stem(images)
        levels = {self.top: x}
        for level, down in zip(range(self.top - 1, 0, -1), self.downs, strict=True):
            x = down(x)
            if str(level) in self.sle:
                x = self.sle[str(level)](levels[level + 3], x)
            levels[level] = x
        small_image = F.avg_pool2d(images, 2 ** (self.stages - self.small_level))
        return levels, self.small(small_image), small_image

    def _logits(self, levels: dict[int, torch.Tensor], small: torch.Tensor,
                labels: torch.Tensor | None) -> torch.Tensor:
        # [B, 1, 5, 5] big and small patch logits (5x9 etc. when non-square) -> [B, K]
        logits = torch.cat([self.head(levels[1]).flatten(1), self.small_head(small).flatten(1)], dim=1)
        if self.projection is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            logits = logits + self.projection(levels[1].sum(dim=(2, 3)), labels)[:, None]
        return logits

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, *,
                with_reconstruction: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Patch logits [B, K]; with `with_reconstruction` (real images, in D's step), also the self-supervised
        loss. A keyword of forward, not a method of its own, so a DDP wrapper syncs its gradients."""
        if with_reconstruction:
            return self.forward_with_reconstruction(images, labels)
        levels, small, _ = self._paths(images)
        return self._logits(levels, small, labels)

    def forward_with_reconstruction(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, reconstruction loss) for real images: D's self-supervised task (Sec. 3.2, Eq. 3 with pixel
        L1 + MSE in place of LPIPS). The quarter is drawn from `generator` (a CPU one) or the global torch RNG,
        which checkpoints save, so a resumed run draws the same quarters."""
        levels, small, small_image = self._paths(images)
        part = torch.randint(4, (1,), generator=generator)
        loss = (_pixel_loss(self.decoder_big(levels[1]), images)
                + _pixel_loss(self.decoder_part(_quarter(levels[2], part)), _quarter(images, part))
                + _pixel_loss(self.decoder_small(small), small_image))
        return self._logits(levels, small, labels), loss


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return FastganGenerator(config, image_shape), FastganDiscriminator(config, image_shape)


FAMILY = ModelFamily(
    name="fastgan", build=build, scheme="gan-selfsupervised", conditional=True,
    description="Liu et al. 2021: light G with skip-layer excitation, self-supervised D (few-shot, fast)",
    options=frozenset({"g_width", "d_width"}),
    d_blocks=lambda d: [d.get_submodule("stem"), *d.get_submodule("downs").children()],
    resolutions="64 to 1024 px by doubling a 4-7 px start, non-square too",
    notes={"spectral_norm": " (its D always has spectral norm)", "d_batchnorm": " (its D always has BatchNorm)",
           "g_activation": " (its G uses GLU)"},
    # The paper's recipe: hinge loss, DiffAugment (color, translation, cutout), Adam 2e-4 / (0.5, 0.999), z 256,
    # and an EMA of G with decay 0.999 per step of 8 images, i.e. a half-life of about 5.5 kimg.
    recipe=("Liu et al. 2021: FastGAN with hinge loss, DiffAugment color,translation,cutout, Adam 2e-4 / "
            "(0.5, 0.999), z 256, batch 8, G EMA",
            {("model", "name"): "fastgan", ("model", "z_dim"): 256, ("loss", "name"): "hinge",
             ("augment", "name"): "diffaugment", ("augment", "policy"): "color,translation,cutout",
             ("lr_g",): 2e-4, ("lr_d",): 2e-4, ("beta1",): 0.5, ("beta2",): 0.999, ("batch",): 8,
             ("ema_kimg",): 5.5}))
