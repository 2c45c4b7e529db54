"""Projected GAN discriminator (Sauer, Chitta, Mueller & Geiger, NeurIPS 2021, "Projected GANs Converge Faster").

D(x) = heads(CSM(CCM(F(x)))):
- F: a frozen ImageNet EfficientNet-Lite (`efficientnet_lite.py`; Lite0 by default, `--features lite1|lite2`
  for the wider, deeper ones) tapped at strides 4, 8, 16, 32 (Lite0 and Lite1: 24, 40, 112, 320 channels;
  Lite2: 24, 48, 120, 352), its BatchNorms folded into its convolutions (`frozen_features.py`). Never trained,
  and not a registered submodule: its parameters on the tapped path (Lite0 2.96M, Lite1 3.72M, Lite2 4.36M) stay
  out of `parameters()` (Adam and DDP see only the heads) and out of `state_dict()` (checkpoints stay small, and a
  checkpoint cannot alter them); `_apply` carries it along with `.to()`, `.cuda()`, `.half()`.
- CCM (Sec. 3.2, cross-channel mixing): a random 1x1 conv per scale, from F's channels to 64, 128, 256, 512.
- CSM (cross-scale mixing, the paper's "proj_type 2"): U-Net-like, from the deepest scale up, each level
  is a random 3x3 conv of its CCM output plus the bilinearly upsampled level below; a conv halves the
  channels so the sum fits the shallower level: outputs 64, 64, 128, 256 channels at strides 4, 8, 16, 32.
  CCM and CSM are fixed random projections held as buffers, so a resumed run gets the same ones.
- Heads (Sec. 3.1, multi-scale D): one small trainable D per scale, spectrally normalised strided convs
  with BatchNorm and LeakyReLU(0.2) (the authors' DownBlock) down to 4-7 px, then a conv of up to 4x4 to
  patch logits. `forward` returns every head's logits concatenated, [B, K]; losses take elementwise means.
  With `--mbstd` (not the authors'), each head appends the minibatch standard deviation (Karras et al. 2018)
  before its logits: without it each head judges every sample alone, so a batch of near-twins, each one
  plausible, passes as well as a varied batch.
With `--pixel-head` (not the authors'), one more head judges the images themselves, resized to 16 px
(PixelHead): the feature heads see F's ImageNet-normalised features, and a G whose samples narrowed to two
palettes at 32 px kept passing them (BENCHMARKS.md, "What narrows the 32 px faces").
Class conditioning (the authors' SingleDiscCond): each head adds the projection <embed(y), cls(h)> / sqrt(d)
(Miyato & Koyama 2018) to its logits. Augmentation (DiffAugment) is the training loop's job, not D's.

G is FastGAN's (`fastgan.py`). Because D resizes stores under 64 px up to 64 before F, G may also stop at
2 or 3 doublings of its 4-7 px start (`GENERATOR_SIZES`: 16-28 and 32-56 px, e.g. 28 px digits or 32 px
CIFAR-like images), where it has no skip-layer excitation (that starts at 64 px). A deviation: the authors'
FastGAN G starts at 64 px.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.efficientnet_lite import FEATURE_STRIDES, LITE0, VARIANTS, LiteVariant, load_pretrained
from ganforge.models.family import ModelFamily, Overrides
from ganforge.models.fastgan import FastganGenerator, SizeRule
from ganforge.models.frozen_features import FrozenFeatures
from ganforge.models.layers import MinibatchStdDev, apply_spectral_norm

ImageShape = tuple[int, int, int]

PROJECTION_WIDTH = 64  # CCM channels at stride 4, doubled per scale (the authors' cout=64, expand=True)
HEAD_MAX_WIDTH = 512  # widest head layer (the authors' channel table tops out at 512)
CMAP_DIM = 64  # conditional projection size (the authors' cmap_dim)
MIN_FEATURE_SIDE = 32  # F's stride-32 map needs at least one pixel
# Below this shorter side the default resizes up to it (see default_feature_resolution).
NATIVE_MIN_SIDE = 64
# G's sizes: FastGAN's, and from 2 doublings (16 px) up, since D sees small images resized to NATIVE_MIN_SIDE.
GENERATOR_SIZES = SizeRule("Projected GAN", 2, "16, 28, 32, 64, 256 or 32x48", 32)


def default_feature_resolution(height: int, width: int) -> int | None:
    """F sees the images at their own size from 64 px up (None), and smaller ones resized to 64 px.

    The paper resizes everything to 224 px. Measured here (2-core CPU, batch 16, fp32, CPU ms of one thread,
    G step = D forward + backward to the input, D step = reals and fakes forward + backward to the heads):
    64 px native 148 + 157 ms against 1,439 + 1,599 ms at 224 (10x); 128 px native 557 + 640 ms against
    1,619 + 1,805 ms (2.9x); bf16 autocast narrows it to 7.5x and 2.4x. At 64 px F's maps are 16, 8, 4 and 2
    px, which the heads still judge; below 64 px the deepest map vanishes (1 px at 32), so small stores
    (MNIST's 28 px) are resized up to 64. `--feature-resolution 224` is the paper's setting.
    """
    return None if min(height, width) >= NATIVE_MIN_SIDE else NATIVE_MIN_SIDE


def feature_size(height: int, width: int, feature_resolution: int | None) -> tuple[int, int]:
    """(H, W) the feature network sees: the shorter side scaled to `feature_resolution`, aspect kept."""
    if feature_resolution is None:
        return height, width
    scale = feature_resolution / min(height, width)
    return max(feature_resolution, round(height * scale)), max(feature_resolution, round(width * scale))


class FixedConv(nn.Module):
    """A random convolution that is never trained: weight and bias are buffers (in the state dict, so a
    resume restores them; not parameters, so no optimizer sees them). PyTorch's default Conv2d
    initialisation, uniform in +-1/sqrt(fan_in), as the authors' randomly initialised CCM/CSM."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, in_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__()
        conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
        assert conv.bias is not None
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", conv.bias.detach().clone())
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class RandomProjection(nn.Module):
    """CCM then CSM over F's four maps; [B, 24|40|112|320, ...] (Lite0) -> [B, 64|64|128|256, ...], same sizes."""

    def __init__(self, in_channels: tuple[int, ...], width: int = PROJECTION_WIDTH) -> None:
        super().__init__()
        mixed = [width * 2**i for i in range(len(in_channels))]  # 64, 128, 256, 512
        self.ccm = nn.ModuleList(FixedConv(c_in, c_out, 1) for c_in, c_out in zip(in_channels, mixed, strict=True))
        # Level i's 3x3 conv maps to level i-1's width, so its upsampled output adds to CCM i-1; level 0 keeps 64.
        self.csm = nn.ModuleList(FixedConv(c, mixed[max(i - 1, 0)], 3) for i, c in enumerate(mixed))
        self.out_channels = tuple(mixed[max(i - 1, 0)] for i in range(len(mixed)))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        channel_mixed = [ccm(f) for ccm, f in zip(self.ccm, features, strict=True)]
        out: list[torch.Tensor] = [self.csm[-1](channel_mixed[-1])]
        for i in range(len(channel_mixed) - 2, -1, -1):  # deepest to shallowest
            up = F.interpolate(out[0], size=channel_mixed[i].shape[-2:], mode="bilinear", align_corners=False)
            out.insert(0, self.csm[i](channel_mixed[i] + up))
        return out


def _down_block(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    # The authors' DownBlock: conv 4x4 stride 2 (or 3x3 stride 1 for a map already small), BN, LeakyReLU(0.2).
    kernel = 4 if stride == 2 else 3
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride, 1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2, inplace=True))


class ScaleHead(nn.Module):
    """One scale's trainable D: halve the map while its shorter side is >= 8 px (widths double from the
    input's, capped at 512), or one stride-1 block when it is already smaller, so every head is non-linear;
    then (with `mbstd`, a minibatch-stddev map first) a valid conv of up to 4x4 gives patch logits [B, 1, h', w']."""

    def __init__(self, in_ch: int, height: int, width: int, num_classes: int, mbstd: bool = False) -> None:
        super().__init__()
        blocks, ch = [], in_ch
        while min(height, width) >= 8:
            blocks.append(_down_block(ch, min(2 * ch, HEAD_MAX_WIDTH), stride=2))
            ch, height, width = min(2 * ch, HEAD_MAX_WIDTH), height // 2, width // 2
        if not blocks:
            blocks.append(_down_block(ch, min(2 * ch, HEAD_MAX_WIDTH), stride=1))
            ch = min(2 * ch, HEAD_MAX_WIDTH)
        self.main = nn.Sequential(*blocks)
        self.mbstd = MinibatchStdDev() if mbstd else None
        ch += int(mbstd)
        kernel = (min(4, height), min(4, width))
        self.out = nn.Conv2d(ch, 1, kernel, bias=False)
        self.cls = nn.Conv2d(ch, CMAP_DIM, kernel, bias=False) if num_classes else None
        self.embed = nn.Embedding(num_classes, CMAP_DIM) if num_classes else None
        self.num_logits = (height - kernel[0] + 1) * (width - kernel[1] + 1)
        apply_spectral_norm(self)  # every conv, as in the authors' heads; the embedding is left as is

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.main(x)
        if self.mbstd is not None:
            h = self.mbstd(h)
        logits = self.out(h)
        if self.cls is not None and self.embed is not None and labels is not None:
            class_map = self.embed(labels)[:, :, None, None]  # [B, CMAP_DIM, 1, 1]
            logits = logits + (self.cls(h) * class_map).sum(1, keepdim=True) / math.sqrt(CMAP_DIM)
        return logits.flatten(1)


PIXEL_SIDE = 16  # the pixel head's input's shorter side: colours and layout, no texture
PIXEL_WIDTH = 64  # its first conv's channels, as the stride-4 feature head's input


class PixelHead(nn.Module):
    """A trainable D on the images' own pixels, averaged over whole blocks (or resized, antialiased, where the
    size is no multiple) to a shorter side of PIXEL_SIDE: a spectrally normalised 3x3 conv to PIXEL_WIDTH
    channels, then a ScaleHead. At every store size it adds one logit for a square image (a few for a wide one),
    so its share of D's loss stays about a fifth."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, mbstd: bool = False) -> None:
        super().__init__()
        shorter = min(height, width)
        self.size = (round(height * PIXEL_SIDE / shorter), round(width * PIXEL_SIDE / shorter))
        # a whole factor (32, 64, 128 px...: a plain mean over blocks), else 0: an antialiased resize
        factor = height // self.size[0]
        self.factor = factor if (height, width) == (factor * self.size[0], factor * self.size[1]) else 0
        self.stem = nn.Sequential(nn.Conv2d(channels, PIXEL_WIDTH, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        apply_spectral_norm(self.stem)
        self.head = ScaleHead(PIXEL_WIDTH, *self.size, num_classes, mbstd)
        self.num_logits = self.head.num_logits

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.factor:
            resized = F.avg_pool2d(images, self.factor) if self.factor > 1 else images
        else:
            resized = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False,
                                    antialias=self.size[0] < images.shape[-2])
        return self.head(self.stem(resized), labels)


class ProjectedDiscriminator(nn.Module):
    """images [B, C, H, W] in [-1, 1] (+ labels [B]) -> logits [B, K], K = sum of the heads' positions."""

    feature_network: FrozenFeatures  # held outside the module tree (see the module docstring)

    def __init__(self, image_shape: ImageShape, feature_resolution: int | None, num_classes: int = 0,
                 variant: LiteVariant = LITE0, mbstd: bool = False, pixel_head: bool = False) -> None:
        super().__init__()
        channels, height, width = image_shape
        if channels not in (1, 3):
            raise ConfigError(f"--model projected needs grey or RGB images, not {channels} channels")
        self.feature_resolution = feature_resolution
        net_h, net_w = feature_size(height, width, feature_resolution)
        if min(net_h, net_w) < MIN_FEATURE_SIDE:
            raise ConfigError(f"--model projected needs images of at least {MIN_FEATURE_SIDE} px for its feature "
                              f"network, got {width}x{height}; pass --feature-resolution 64 to resize them")
        # object.__setattr__ bypasses nn.Module's registration: not a child, so no parameters or state-dict keys.
        object.__setattr__(self, "feature_network", FrozenFeatures(load_pretrained(variant)))
        self.projection = RandomProjection(variant.feature_channels)
        self.num_classes = num_classes
        heads = [ScaleHead(c, -(-net_h // stride), -(-net_w // stride), num_classes, mbstd)  # "SAME" rounds up
                 for c, stride in zip(self.projection.out_channels, FEATURE_STRIDES, strict=True)]
        self.heads = nn.ModuleList(heads)
        # None adds no state-dict keys: checkpoints without the head load as before
        self.pixel_head = PixelHead(channels, height, width, num_classes, mbstd) if pixel_head else None
        self.num_logits = sum(head.num_logits for head in heads) + (self.pixel_head.num_logits
                                                                    if self.pixel_head is not None else 0)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]  # torch's own signature is untyped
        # .to(device / dtype / memory_format), .cuda(), .half() all end here: move the frozen net along.
        super()._apply(fn, recurse)
        self.feature_network._apply(fn, recurse)
        return self

    def extra_repr(self) -> str:
        frozen = sum(b.numel() for b in self.feature_network.buffers())
        return (f"feature_network=FrozenFeatures({self.feature_network.variant.title}, {frozen:,} weights, not in "
                f"state_dict), feature_resolution={self.feature_resolution}, logits={self.num_logits}")

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        if self.feature_resolution is None:
            return images
        size = feature_size(images.shape[-2], images.shape[-1], self.feature_resolution)
        if size == tuple(images.shape[-2:]):
            return images
        # Antialias only when shrinking; upsampling (the paper's small images to 224) is plain bilinear.
        return F.interpolate(images, size=size, mode="bilinear", align_corners=False,
                             antialias=size[0] < images.shape[-2])

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and labels is None:
            raise ValueError("a conditional discriminator needs labels")
        features = self.feature_network.features(self.resize(images))
        mixed = self.projection(features)
        logits = [head(x, labels) for head, x in zip(self.heads, mixed, strict=True)]
        if self.pixel_head is not None:
            logits.append(self.pixel_head(images, labels))
        return torch.cat(logits, dim=1)


def build_discriminator(config: ModelConfig, image_shape: ImageShape,
                        feature_resolution: int | None | Literal["auto"] = "auto") -> ProjectedDiscriminator:
    """The Projected GAN D for a store's (C, H, W). Reads only `features` (which EfficientNet-Lite F is),
    `feature_resolution`, `mbstd`, `pixel_head`, `conditional` and `num_classes` of the config: the rest of the
    architecture is the paper's, so --d-width, --spectral-norm, --d-batchnorm, --d-dropout do not apply.
    `feature_resolution`: "auto" = the config's (`default_feature_resolution` where it is 0), None = the images' own
    size, or the shorter side to resize to before the feature network (224 in the paper)."""
    if feature_resolution == "auto":
        feature_resolution = config.feature_resolution or default_feature_resolution(image_shape[1], image_shape[2])
    return ProjectedDiscriminator(image_shape, feature_resolution, config.num_classes if config.conditional else 0,
                                  VARIANTS[config.features], config.mbstd, config.pixel_head)


def build(config: ModelConfig, image_shape: ImageShape) -> tuple[nn.Module, nn.Module]:
    """Projected GAN's default pairing: a FastGAN generator (from 16 px) and the projected discriminator."""
    return FastganGenerator(config, image_shape, GENERATOR_SIZES), build_discriminator(config, image_shape)


def _d_blocks(discriminator: nn.Module) -> list[nn.Module]:
    """FreezeD's blocks: the feature network is frozen already; block k is every scale head's k-th down block."""
    heads = [list(head.get_submodule("main").children()) for head in discriminator.get_submodule("heads").children()]
    if getattr(discriminator, "pixel_head", None) is not None:  # its stem freezes with its first block
        first, *rest = discriminator.get_submodule("pixel_head.head.main").children()
        heads.append([nn.ModuleList([discriminator.get_submodule("pixel_head.stem"), first]), *rest])
    depth = max(len(layers) for layers in heads)
    return [nn.ModuleList([layers[k] for layers in heads if len(layers) > k]) for k in range(depth)]


def ada_warning(overrides: Overrides) -> tuple[Overrides, str | None]:
    """ADA keeps its p at 0 here, so say so: its overfitting measure E[sign(D(real))] runs over D's patch logits,
    which stayed at 60-80 % positive (r_t 0.2-0.55, below the 0.6 target) while G collapsed on 100 faces
    (BENCHMARKS.md, "Fine-tuning"), so the run trained without augmentation."""
    if overrides.get(("augment", "name")) != "ada":
        return overrides, None
    return overrides, ("--augment ada on Projected GAN: ADA's p follows sign(D(real)) over D's patch logits, which "
                       "stay below its target, so p stays near 0 (measured: a 100-face fine-tune collapsed, "
                       "BENCHMARKS.md, \"Fine-tuning\"); --augment diffaugment is the paper's choice")


FAMILY = ModelFamily(
    name="projected", build=build, conditional=True,
    description="Sauer et al. 2021: FastGAN G, D on a frozen ImageNet EfficientNet-Lite0's random projections "
                "(needs ganforge[projected]; --features lite1 or lite2: ganforge[projected-large])",
    options=frozenset({"g_width", "features", "feature_resolution", "mbstd", "pixel_head"}), d_blocks=_d_blocks,
    adjust=ada_warning,
    # Few-shot fine-tuning from the 60-minute anime run to 100 light-haired faces: FID 69.0 and recall 0.10 with
    # every head training, 78.2 and 0.01 with the first block frozen (BENCHMARKS.md, "Fine-tuning").
    few_shot_freeze_share=0.0,
    resolutions="16 to 1024 px by doubling a 4-7 px start, non-square too (below 64 px D sees them resized to 64)",
    notes={"d_width": " (its D's widths are set by the feature network's projections)"},
    # The authors' configuration: hinge loss, DiffAugment color,translation,cutout, Adam 2e-4 / (0, 0.99),
    # batch 64, z 256 for the FastGAN generator, and a G EMA.
    recipe=("Sauer et al. 2021: Projected GAN (FastGAN G) with hinge loss, DiffAugment color,translation,cutout, "
            "Adam 2e-4 / (0, 0.99), z 256, batch 64, G EMA 10 kimg",
            {("model", "name"): "projected", ("model", "z_dim"): 256, ("loss", "name"): "hinge",
             ("augment", "name"): "diffaugment", ("augment", "policy"): "color,translation,cutout",
             ("lr_g",): 2e-4, ("lr_d",): 2e-4, ("beta1",): 0.0, ("beta2",): 0.99, ("batch",): 64,
             ("ema_kimg",): 10.0, ("ema_rampup",): 0.05}))
