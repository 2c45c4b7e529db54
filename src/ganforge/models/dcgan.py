"""DCGAN (Radford, Metz & Chintala 2016) at any resolution the store has: 28, 32, 64, 128, non-square too.

The paper's rules: no pooling, fractional-strided convolutions in G and strided ones in D; BatchNorm in both
except G's output and D's input layer; ReLU in G with Tanh at the output; LeakyReLU(0.2) in D; weights from
N(0, 0.02). The resolution is reached by `stages` doublings of a start size between 4 and 7 px
(28 = 7 * 2^2, 64 = 4 * 2^4), so channel counts follow the PyTorch example: G has g_width * 2^(stages-1)
channels at the start and g_width before the output layer; D mirrors it.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError


def plan_stages(height: int, width: int) -> tuple[int, int, int]:
    """(stages, start_height, start_width): the most doublings that keep the start size at least 4 px."""
    stages = 0
    while (height % 2 ** (stages + 1) == 0 and width % 2 ** (stages + 1) == 0
           and min(height, width) // 2 ** (stages + 1) >= 4):
        stages += 1
    if stages == 0:
        raise ConfigError(f"DCGAN cannot reach {width}x{height} px by doubling a 4-7 px start; prepare the store "
                          "at a size such as 28, 32, 64 or 128 (`ganforge prepare --resolution 64`).")
    return stages, height // 2**stages, width // 2**stages


class DcganGenerator(nn.Module):
    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], width: int) -> None:
        super().__init__()
        channels, height, img_width = image_shape
        stages, start_h, start_w = plan_stages(height, img_width)
        ch = width * 2 ** (stages - 1)
        # z [B, z_dim, 1, 1] -> [B, ch, start_h, start_w]: the "project and reshape" of the paper as a conv.
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, (start_h, start_w), 1, 0, bias=False),
                                   nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class DcganDiscriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], width: int, dropout: float) -> None:
        super().__init__()
        channels, height, img_width = image_shape
        stages, start_h, start_w = plan_stages(height, img_width)
        blocks: list[nn.Module] = [self._block(channels, width, batchnorm=False, dropout=dropout)]
        ch = width
        for _ in range(stages - 1):
            blocks.append(self._block(ch, ch * 2, batchnorm=True, dropout=dropout))
            ch *= 2
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(ch, 1, (start_h, start_w), 1, 0)
        self.apply(init_weights)

    @staticmethod
    def _block(in_ch: int, out_ch: int, *, batchnorm: bool, dropout: float) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        for block in self.blocks:
            x = block(x)
        return self.head(x).flatten()

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
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build(config: ModelConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    return (DcganGenerator(config.z_dim, image_shape, config.g_width),
            DcganDiscriminator(image_shape, config.d_width, config.d_dropout))
