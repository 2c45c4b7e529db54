"""The detector's settings, recorded in DET/config.json: what it was trained on and how."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ganforge.config.setting import check_values, config_only, parse_fraction, require, setting
from ganforge.errors import ConfigError

BACKBONES = ("cnn", "lite0")
ATTACKS = ("none", "fgsm", "pgd")


@dataclass(frozen=True)
class DetectConfig:
    """`detect train`'s settings: each field's flag, help and default make the command's options (cli_options.py)."""

    real: list[str] = setting([], "Store or folder of real images (repeat for several).", kind="paths", shown="none")
    fake: list[str] = setting([], "Run, export, store or folder of generated images (repeat, or list several).",
                              kind="paths", shown="none")
    backbone: str = setting("cnn", "cnn: small, from scratch; lite0: ImageNet EfficientNet-Lite0 fine-tuned "
                            "(ganforge[projected]).", choices=BACKBONES)
    size: int = setting(64, "Images are resized to SIZE x SIZE RGB.", at_most=512)
    steps: int = setting(2000, "Optimizer steps.", at_most=10_000_000)
    batch: int = setting(32, "Images per step: half real, half generated.", at_most=4096)
    lr: float = setting(3e-4, "Adam learning rate.")
    images_per_source: int = setting(2000, "Images drawn from each real or fake source (all of a smaller one).",
                                     at_most=1_000_000)
    val_fraction: float = config_only(0.1, "Held out by image, for the accuracy each tick.")
    augment: bool = setting(True, "Blur, JPEG re-compression, crop and flip at random strengths (Wang et al. "
                            "2020).")
    adversarial: str = setting("none", "Also train on images attacked at --eps: none, fgsm or pgd.", choices=ATTACKS)
    eps: float = setting(2 / 255, "Adversarial training's L-infinity bound in [0, 1] pixel units, e.g. 2/255.",
                         kind="fraction", shown="2/255", at_most=0.5)
    attack_steps: int = config_only(5, "PGD steps for --adversarial pgd.")
    seed: int = setting(0, "Seeds the weights, the images drawn and every batch and augmentation.",
                        at_most=2**32 - 1)
    tick_steps: int = setting(100, "Steps per tick: one status line, validation accuracy and log row.")
    snap: int = setting(5, "Checkpoint every N ticks (and at the end).")
    keep: int = setting(3, "Most recent checkpoints kept.")
    device: str = setting("auto", "auto (cuda when available), cpu, cuda, cuda:N.")

    def __post_init__(self) -> None:
        require(bool(self.real) and bool(self.fake), "detect train needs --real and --fake sources")
        require(self.backbone in BACKBONES, f"--backbone must be {' or '.join(BACKBONES)}")
        require(self.adversarial in ATTACKS, f"--adversarial must be {', '.join(ATTACKS)}")
        require(16 <= self.size <= 512, "--size must be 16-512 px")
        require(1 <= self.steps <= 10_000_000 and 2 <= self.batch <= 4096 and self.batch % 2 == 0,
                "--steps must be 1-10,000,000 and --batch an even number from 2 to 4096")
        require(math.isfinite(self.lr) and self.lr > 0, "--lr must be a positive number")
        require(2 <= self.images_per_source <= 1_000_000, "--images-per-source must be 2-1,000,000")
        require(0 < self.val_fraction < 0.5, "--val-fraction must be in (0, 0.5)")
        require(math.isfinite(self.eps) and 0 <= self.eps <= 0.5, "--eps must be in [0, 0.5] (e.g. 2/255)")
        require(1 <= self.attack_steps <= 1000, "--attack-steps must be 1-1000")
        require(0 <= self.seed < 2**32, "--seed must be 0 to 2^32 - 1")
        require(self.tick_steps >= 1 and self.snap >= 1 and self.keep >= 1, "--tick-steps, --snap, --keep >= 1")
        check_values(self)  # after the checks above, whose messages say the range: types, finiteness (config.json)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(raw: Any) -> DetectConfig:
        if not isinstance(raw, dict):
            raise ConfigError("a detector's config.json must hold a JSON object")
        known = {f.name for f in dataclasses.fields(DetectConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown detector setting(s) {', '.join(unknown)}")
        try:
            return DetectConfig(**raw)
        except TypeError as exc:
            raise ConfigError(f"detector config: {exc}") from exc


def parse_eps(text: str) -> list[float]:
    """'1/255,2/255,0.01' -> [1/255, 2/255, 0.01]: L-infinity bounds in [0, 1] pixel units."""
    values = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            value = parse_fraction(part)
        except ValueError:
            raise ConfigError(f"--eps: cannot read {part!r}; write values like 1/255,2/255,4/255") from None
        if not (math.isfinite(value) and 0 <= value <= 0.5):
            raise ConfigError(f"--eps {part} is outside [0, 0.5]; eps is in [0, 1] pixel units, e.g. 8/255")
        values.append(value)
    if not values:
        raise ConfigError("--eps is empty; give values like 1/255,2/255")
    return values
