"""CycleGAN (Zhu et al., ICCV 2017): unpaired translation between two domains A and B.

Two generators, G: A -> B and F: B -> A, each Johnson et al.'s ResNet (c7s1-64, d128, d256, R256 x 9 at 256 px
and 6 at 128 px and below, u128, u64, c7s1-C; instance norm, reflection padding), and two 70x70 PatchGAN
discriminators, D_A on domain A and D_B on domain B (the paper's Appendix 7.2). The pair of generators is one
module (its forward runs every translation a step needs in one call, as data-parallel training requires), and
so is the pair of discriminators: each image comes with its domain, 0 for A and 1 for B, where a conditional D
takes its class, so the loop's shared D update trains both.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models.family import ModelFamily
from ganforge.models.patchgan import (
    PatchDiscriminator,
    check_min_side,
    init_weights,
    input_shape_of,
    instance_norm,
)

DOWNSAMPLINGS = 2  # d128, d256


def residual_blocks(height: int, width: int) -> int:
    """9 blocks at 256 px and above, 6 below (Zhu et al., Sec. 4 and Appendix 7.2)."""
    return 9 if min(height, width) >= 256 else 6


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), instance_norm(channels),
                                  nn.ReLU(), nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                  instance_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Images [B, C_in, H, W] -> images [B, C_out, H, W] in [-1, 1]; H and W multiples of 4."""

    def __init__(self, in_channels: int, out_channels: int, width_unit: int, blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, width_unit, 7),
                                   instance_norm(width_unit), nn.ReLU()]
        width = width_unit
        for _ in range(DOWNSAMPLINGS):
            layers += [nn.Conv2d(width, 2 * width, 3, 2, 1), instance_norm(2 * width), nn.ReLU()]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(blocks)]
        for _ in range(DOWNSAMPLINGS):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, 2, 1, output_padding=1), instance_norm(width // 2),
                       nn.ReLU()]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class CycleOutputs(NamedTuple):
    """Every image a CycleGAN step needs, from real_a [B, C, H, W] and real_b."""

    fake_b: torch.Tensor  # G(a)
    fake_a: torch.Tensor  # F(b)
    cycled_a: torch.Tensor  # F(G(a)): the forward cycle, which should give a back
    cycled_b: torch.Tensor  # G(F(b)): the backward cycle
    same_b: torch.Tensor  # G(b): the identity mapping, which should leave a B image as it is
    same_a: torch.Tensor  # F(a)


class CycleGenerators(nn.Module):
    """G (`a2b`) and F (`b2a`). Called with one batch it translates A to B (what `translate` and the sample
    grids use); with both domains' batches it returns the `CycleOutputs` of a training step."""

    def __init__(self, a2b: nn.Module, b2a: nn.Module) -> None:
        super().__init__()
        self.a2b, self.b2a = a2b, b2a

    def forward(self, real_a: torch.Tensor, real_b: torch.Tensor | None = None) -> torch.Tensor | CycleOutputs:
        fake_b = self.a2b(real_a)
        if real_b is None:
            return fake_b
        fake_a = self.b2a(real_b)
        return CycleOutputs(fake_b, fake_a, self.b2a(fake_b), self.a2b(fake_a), self.a2b(real_b), self.b2a(real_a))


class CycleDiscriminators(nn.Module):
    """D_A (`judge_a`) and D_B (`judge_b`): each image is judged by its domain's D. `domains` [B] holds 0 (A) or 1
    (B) per image; without it every image is taken to be a B image."""

    def __init__(self, judge_a: nn.Module, judge_b: nn.Module) -> None:
        super().__init__()
        self.judge_a, self.judge_b = judge_a, judge_b

    def forward(self, images: torch.Tensor, domains: torch.Tensor | None = None) -> torch.Tensor:
        if domains is None:
            return self.judge_b(images)
        # Both judges see every image and each keeps its own domain's verdicts: twice D's arithmetic (small beside
        # the generators'), but no boolean indexing, which would wait for the device, and no empty batches when a
        # pass holds one domain only. Gradients reach each judge from its own domain's images alone.
        in_b = domains.view(-1, *([1] * (images.dim() - 1))).bool()
        return torch.where(in_b, self.judge_b(images), self.judge_a(images))


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, ...]:
    channels, height, width = image_shape
    in_channels, in_height, in_width = input_shape_of(config, image_shape)
    if (in_channels, in_height, in_width) != image_shape:
        raise ConfigError(f"cyclegan translates between domains of one image shape (its identity loss feeds B images "
                          f"to G), but the store's domains are {in_channels}x{in_height}x{in_width} and "
                          f"{channels}x{height}x{width}; prepare both with one --resolution and --channels")
    check_min_side("cyclegan", height, width)
    if height % 4 or width % 4:
        raise ConfigError(f"cyclegan's generators halve the image twice, so its sides must be multiples of 4; got "
                          f"{width}x{height}: prepare the store with --resolution 128 or 256")
    blocks = residual_blocks(height, width)
    generators = CycleGenerators(*(ResnetGenerator(channels, channels, config.g_width, blocks) for _ in "GF"))
    judges = CycleDiscriminators(*(PatchDiscriminator(channels, height, width, config.d_width) for _ in "AB"))
    return generators, judges


FAMILY = ModelFamily(
    name="cyclegan", build=build, scheme="cycle", augments=False, truncation="none",
    description="Zhu et al. 2017: two ResNet G (A->B, B->A), two 70x70 PatchGAN D, LSGAN + cycle + identity loss, "
                "a history of 50 fakes per D",
    options=frozenset({"g_width", "d_width"}),
    loss_options=frozenset({"cycle_weight", "identity_weight", "pool_size", "adv_weight"}),
    losses=frozenset({"lsgan", "nonsaturating"}), pairings=frozenset({"unpaired", "paired"}),
    directions=("a2b", "b2a"),
    resolutions="both domains of one shape, sides multiples of 4, >= 16 px (9 residual blocks from 256 px, 6 below)",
    # LeastSquaresLoss keeps Mao et al.'s 1/2 in G's loss; CycleGAN's code minimises (D(G(x)) - 1)^2 without it,
    # so the adversarial weight 2 gives the paper's balance against lambda = 10.
    recipe=("Zhu et al. 2017: CycleGAN, LSGAN, cycle 10, identity 0.5, pool 50, Adam 2e-4 / 0.5, batch 1, learning "
            "rate decayed linearly to 0 over the second half",
            {("model", "name"): "cyclegan", ("loss", "name"): "lsgan", ("loss", "adv_weight"): 2.0, ("batch",): 1,
             ("lr_g",): 2e-4, ("lr_d",): 2e-4, ("beta1",): 0.5, ("lr_decay",): 0.5}))
