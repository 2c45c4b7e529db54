"""The detector's settings, recorded in DET/config.json: what it was trained on and how."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ganforge.errors import ConfigError
from ganforge.setting import require

BACKBONES = ("cnn", "lite0")
ATTACKS = ("none", "fgsm", "pgd")


@dataclass(frozen=True)
class DetectConfig:
    real: list[str] = field(default_factory=list)  # stores or folders of real images
    fake: list[str] = field(default_factory=list)  # runs, exports, stores or folders of generated images
    backbone: str = "cnn"  # cnn: small, from scratch; lite0: ImageNet EfficientNet-Lite0, fine-tuned
    size: int = 64  # every image is resized to size x size RGB
    steps: int = 2000  # optimizer steps
    batch: int = 32  # half real, half generated
    lr: float = 3e-4  # Adam
    images_per_source: int = 2000  # images drawn from each real or fake source (all of a smaller one)
    val_fraction: float = 0.1  # held out by image, for the accuracy each tick
    augment: bool = True  # blur, JPEG re-compression, crop and flip at random strengths (Wang et al.)
    adversarial: str = "none"  # none, fgsm or pgd: train on attacked images too
    eps: float = 2 / 255  # the adversarial perturbation's L-infinity bound, in [0, 1] pixel units
    attack_steps: int = 5  # PGD steps for --adversarial pgd
    seed: int = 0
    tick_steps: int = 100
    snap: int = 5  # ticks between checkpoints
    keep: int = 3
    device: str = "auto"

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
            top, _, bottom = part.partition("/")
            value = float(top) / float(bottom) if bottom else float(top)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"--eps: cannot read {part!r}; write values like 1/255,2/255,4/255") from None
        if not (math.isfinite(value) and 0 <= value <= 0.5):
            raise ConfigError(f"--eps {part} is outside [0, 0.5]; eps is in [0, 1] pixel units, e.g. 8/255")
        values.append(value)
    if not values:
        raise ConfigError("--eps is empty; give values like 1/255,2/255")
    return values
