"""Typed, frozen training configuration: the CLI fills it, the run folder records it, resume reads it back.

Every field has a default and a one-line reason. Unknown keys are rejected so a typo in a hand-edited
config.json is an error, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from ganforge.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "dcgan"  # model family from the registry (`ganforge.models.MODELS`)
    z_dim: int = 100  # latent size; 100 as in Radford et al. and the seeds
    g_width: int = 64  # G channels at the output resolution (DCGAN's ngf); MLP: hidden width unit
    d_width: int = 64  # D channels at the input resolution (DCGAN's ndf)
    d_dropout: float = 0.0  # dropout after each D activation (the Keras variant of seeds 001/003 uses 0.3)

    def __post_init__(self) -> None:
        _require(self.z_dim >= 1, "--z-dim must be at least 1")
        _require(self.g_width >= 1 and self.d_width >= 1, "--g-width and --d-width must be at least 1")
        _require(0.0 <= self.d_dropout < 1.0, "--d-dropout must be in [0, 1)")


@dataclass(frozen=True)
class LossConfig:
    name: str = "nonsaturating"  # adversarial loss from `ganforge.losses.LOSSES`
    label_smoothing: float = 0.0  # one-sided: D's target for reals becomes 1 - s (Salimans et al. 2016)
    label_flip: float = 0.0  # probability of flipping each of D's targets (seed 003's label noise)

    def __post_init__(self) -> None:
        _require(0.0 <= self.label_smoothing < 0.5, "--label-smoothing must be in [0, 0.5)")
        _require(0.0 <= self.label_flip < 0.5, "--label-flip must be in [0, 0.5)")


@dataclass(frozen=True)
class TrainConfig:
    data: str = ""  # store path (from `ganforge prepare`); empty = the embedded MNIST sample
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture
    loss: LossConfig = field(default_factory=LossConfig)  # adversarial objective and D-label tricks
    kimg: float = 100.0  # length of training in thousands of real images shown to D
    batch: int = 64  # images per D step and per G step
    lr_g: float = 2e-4  # Adam learning rate of G (Radford et al.)
    lr_d: float = 2e-4  # Adam learning rate of D
    beta1: float = 0.5  # Adam beta1; 0.5 instead of 0.9 stabilises GANs (Radford et al.)
    beta2: float = 0.999  # Adam beta2
    d_steps: int = 1  # D updates per G update (k in Goodfellow et al.'s Algorithm 1)
    ema_kimg: float = 0.0  # half-life of G's weight average in kimg (StyleGAN uses 10); 0 turns it off
    seed: int = 0  # seeds weights, data order, latents and the fixed sample grid
    tick_kimg: float = 4.0  # progress unit: one status line, sample grid and log row per tick
    snap: int = 5  # checkpoint every this many ticks (and at the end, and on SIGINT/SIGTERM)
    keep: int = 3  # number of most recent checkpoints kept on disk
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    out: str = "runs"  # parent folder of numbered run folders
    grid_size: int = 64  # images in the per-tick sample grid

    def __post_init__(self) -> None:
        _require(self.kimg > 0, "--kimg must be positive")
        _require(self.batch >= 1, "--batch must be at least 1")
        _require(self.lr_g > 0 and self.lr_d > 0, "--lr-g and --lr-d must be positive")
        _require(0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0, "Adam betas must be in [0, 1)")
        _require(self.d_steps >= 1, "--d-steps must be at least 1")
        _require(self.ema_kimg >= 0, "--ema-kimg must be zero (off) or positive")
        _require(self.tick_kimg > 0, "--tick-kimg must be positive")
        _require(self.snap >= 1, "--snap must be at least 1 tick")
        _require(self.keep >= 1, "--keep must be at least 1")
        _require(1 <= self.grid_size <= 1024, "--grid-size must be between 1 and 1024")

    @property
    def total_nimg(self) -> int:
        return int(round(self.kimg * 1000))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> TrainConfig:
        return from_dict(TrainConfig, raw)


def apply_overrides(config: TrainConfig, overrides: dict[tuple[str, ...], Any]) -> TrainConfig:
    """`config` with each value written at its path, e.g. {("model", "name"): "mlp", ("kimg",): 50}."""
    raw = config.to_dict()
    for path, value in overrides.items():
        *parents, leaf = path
        target = raw
        for key in parents:
            target = target[key]
        target[leaf] = value
    return TrainConfig.from_dict(raw)


def changed_settings(old: TrainConfig, new: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """{"loss.label_flip": (old, new), ...} for every setting that differs."""
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(old.to_dict()), flat(new.to_dict())
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def from_dict(cls: type[T], raw: dict[str, Any], where: str = "config") -> T:
    """Build a (nested) config dataclass from JSON data, rejecting unknown keys by name."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(known)}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        nested = _NESTED.get((cls.__name__, name))
        values[name] = from_dict(nested, value, f"{where}.{name}") if nested else value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


_NESTED: dict[tuple[str, str], type] = {("TrainConfig", "model"): ModelConfig, ("TrainConfig", "loss"): LossConfig}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
