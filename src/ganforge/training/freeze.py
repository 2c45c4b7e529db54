"""FreezeD (Mo, Cho & Shin 2020, "Freeze the Discriminator"): when fine-tuning, D's first blocks, which see low-level
image statistics that transfer between data sets, keep the source's weights and only the later ones adapt, so a
few hundred images do not overfit the whole of D. `--freeze-g-mapping` keeps a style-based G's mapping network too.

Frozen parameters lose `requires_grad` and are left out of the optimizer, so nothing ever changes them. Each family
declares its D's blocks from the input inwards (`ModelFamily.d_blocks`).
"""

from __future__ import annotations

from torch import nn

from ganforge.config import TrainConfig
from ganforge.errors import ConfigError
from ganforge.models.family import ModelFamily


def frozen_modules(config: TrainConfig, family: ModelFamily, generator: nn.Module,
                   discriminator: nn.Module) -> list[nn.Module]:
    """The modules `config` freezes, checked against what the family declares (ConfigError naming the flag)."""
    frozen: list[nn.Module] = []
    if config.freeze_d > 0:
        if family.d_blocks is None:
            raise ConfigError(f"--freeze-d: --model {family.name} declares no discriminator blocks to freeze; drop "
                              "the flag")
        blocks = family.d_blocks(discriminator)
        if config.freeze_d > len(blocks):
            raise ConfigError(f"--freeze-d {config.freeze_d}: --model {family.name}'s D has {len(blocks)} blocks "
                              f"at this resolution; pass at most {len(blocks)} (its head trains in any case)")
        frozen += blocks[: config.freeze_d]
    if config.freeze_g_mapping:
        if family.g_mapping is None:
            raise ConfigError(f"--freeze-g-mapping: --model {family.name}'s G has no mapping network (--model "
                              "stylegan2 has); drop the flag")
        frozen.append(family.g_mapping(generator))
    return frozen


def freeze(modules: list[nn.Module]) -> None:
    """Stop training `modules`' parameters (call before the optimizers are built: they take trainable ones only)."""
    for module in modules:
        module.requires_grad_(False)
