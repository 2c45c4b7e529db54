"""Typed, frozen training configuration: the CLI fills it, the run folder records it, resume reads it back.

Every field has a default and a one-line reason. Unknown keys are rejected so a typo in a hand-edited
config.json is an error, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

from ganforge.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "dcgan"  # model family from the registry (`ganforge.models.MODELS`)
    z_dim: int = 100  # latent size; 100 as in Radford et al. and the seeds
    g_width: int = 64  # G channels at the output resolution (DCGAN's ngf); MLP: hidden width unit
    d_width: int = 64  # D channels at the input resolution (DCGAN's ndf)
    d_dropout: float = 0.0  # dropout after each D activation (the Keras variant of seeds 001/003 uses 0.3)
    g_activation: str = "relu"  # G's hidden activation: "relu" (Radford et al.) or "lrelu" (the Keras GAN of seed 003)
    d_batchnorm: bool = True  # BatchNorm in D's hidden layers; off for WGAN-GP, whose penalty is per-sample
    spectral_norm: bool = False  # spectral normalisation of D's layers, BatchNorm dropped (Miyato et al. 2018)
    mbstd: bool = False  # minibatch-stddev feature before D's output against mode collapse (Karras et al. 2018)
    g_upsample: str = "transposed"  # "transposed" convs or "resize" (nearest + conv, against checkerboards)
    conditional: bool = False  # class-conditional: conditional BatchNorm in G, projection D (Miyato & Koyama)
    num_classes: int = 0  # set from the store's labels when conditional
    fmap_base: int = 8192  # ProGAN: channels at stage s (4 px = 1) are min(fmap_max, fmap_base / 2^s)
    fmap_max: int = 512  # ProGAN: channel cap (512 in the paper)

    def __post_init__(self) -> None:
        _require(self.z_dim >= 1, "--z-dim must be at least 1")
        _require(self.g_upsample in ("transposed", "resize"), "--g-upsample must be transposed or resize")
        _require(self.g_activation in ("relu", "lrelu"), "--g-activation must be relu or lrelu")
        _require(not self.conditional or self.num_classes >= 2,
                 "--cond needs a store with at least 2 classes (`ganforge prepare --labels folders`)")
        _require(self.g_width >= 1 and self.d_width >= 1, "--g-width and --d-width must be at least 1")
        _require(0.0 <= self.d_dropout < 1.0, "--d-dropout must be in [0, 1)")


@dataclass(frozen=True)
class LossConfig:
    name: str = "nonsaturating"  # adversarial loss from `ganforge.losses.LOSSES`
    label_smoothing: float = 0.0  # one-sided: D's target for reals becomes 1 - s (Salimans et al. 2016)
    label_flip: float = 0.0  # probability of flipping each of D's targets (seed 003's label noise)
    gp_lambda: float = 10.0  # gradient-penalty weight for wgan-gp (Gulrajani et al. 2017)
    gp_mode: str = "two-sided"  # "two-sided" (||grad|| - 1)^2 or "one-sided" max(0, ||grad|| - 1)^2
    drift: float = 0.0  # epsilon * E[D(x)^2] keeping critic outputs near 0 (ProGAN uses 0.001)
    clip: float = 0.01  # weight-clipping bound c for --loss wgan (Arjovsky et al. 2017)
    r1_gamma: float = 0.0  # R1 penalty gamma/2 E||grad D(x_real)||^2 (Mescheder et al. 2018); 0 = off
    r1_every: int = 16  # lazy regularisation: apply R1 every N D steps, scaled by N (StyleGAN2)
    instance_noise: float = 0.0  # std of Gaussian noise added to D's inputs, annealed linearly to 0 (Sonderby et al.)
    instance_noise_kimg: float = 0.0  # anneal length in kimg; 0 = the whole run
    recon_weight: float = 1.0  # adversarial autoencoder: weight of the pixel MSE against the adversarial term

    def __post_init__(self) -> None:
        _require(0.0 <= self.label_smoothing < 0.5, "--label-smoothing must be in [0, 0.5)")
        _require(0.0 <= self.label_flip < 0.5, "--label-flip must be in [0, 0.5)")
        _require(self.gp_mode in ("two-sided", "one-sided"), "--gp-mode must be two-sided or one-sided")
        _require(self.gp_lambda >= 0 and self.drift >= 0 and self.r1_gamma >= 0 and self.instance_noise >= 0,
                 "--gp-lambda, --drift, --r1-gamma and --instance-noise must not be negative")
        _require(self.clip > 0, "--clip must be positive")
        _require(self.r1_every >= 1, "--r1-every must be at least 1")


@dataclass(frozen=True)
class AugmentConfig:
    name: str = "none"  # "none", "diffaugment" (Zhao et al. 2020) or "ada" (Karras et al. 2020)
    target: float = 0.6  # ADA: target of E[sign(D(x_real))], the overfitting heuristic r_t
    ada_kimg: float = 500.0  # ADA: kimg for p to move by 1 at full speed
    policy: str = "color,translation,cutout"  # DiffAugment operations

    def __post_init__(self) -> None:
        _require(self.name in ("none", "diffaugment", "ada"), "--augment must be none, diffaugment or ada")
        _require(0.0 < self.target < 1.0, "--ada-target must be in (0, 1)")
        _require(self.ada_kimg > 0, "--ada-kimg must be positive")


@dataclass(frozen=True)
class TrainConfig:
    data: str = ""  # store path (from `ganforge prepare`); empty = the embedded MNIST sample
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture
    loss: LossConfig = field(default_factory=LossConfig)  # adversarial objective, penalties, D-label tricks
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # differentiable augmentation before D
    kimg: float = 100.0  # length of training in thousands of real images shown to D
    batch: int = 64  # images per D step and per G step (the global batch, whatever the number of processes)
    # Images per forward/backward pass on each device: 0 = its whole share of the batch, N = passes of at most N
    # with gradient accumulation, "auto" = the largest that fits in the device's memory.
    batch_gpu: int | Literal["auto"] = 0
    sync_bn: bool = False  # multi-process: BatchNorm statistics over the global batch (SyncBatchNorm), not per rank
    lr_g: float = 2e-4  # Adam learning rate of G (Radford et al.)
    lr_d: float = 2e-4  # Adam learning rate of D
    beta1: float = 0.5  # Adam beta1; 0.5 instead of 0.9 stabilises GANs (Radford et al.)
    beta2: float = 0.999  # Adam beta2
    d_steps: int = 1  # D updates per G update (k in Goodfellow et al.'s Algorithm 1)
    ema_kimg: float = 0.0  # half-life of G's weight average in kimg (StyleGAN uses 10); 0 turns it off
    ema_rampup: float = 0.0  # early on, cap the half-life at this fraction of images seen (StyleGAN2: 0.05); 0 = off
    fade_kimg: float = 600.0  # progressive growing: fade-in length per new resolution (Karras et al. 2018)
    stable_kimg: float = 600.0  # progressive growing: stabilisation length per resolution
    seed: int = 0  # seeds weights, data order, latents and the fixed sample grid
    tick_kimg: float = 4.0  # progress unit: one status line, sample grid and log row per tick
    snap: int = 5  # checkpoint every this many ticks (and at the end, and on SIGINT/SIGTERM)
    keep: int = 3  # number of most recent checkpoints kept on disk
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    out: str = "runs"  # parent folder of numbered run folders
    grid_size: int = 64  # images in the per-tick sample grid
    precision: str = "fp32"  # "fp32", "bf16" (autocast; ~1.7x on CPUs with AVX512-BF16) or "fp16" (+ grad scaling)
    channels_last: bool = False  # NHWC memory layout for convolutions (faster with oneDNN and tensor cores)
    compile: bool = False  # torch.compile G and D (pays off on GPUs; on this 2-core CPU it did not)
    metrics: str = ""  # scored during training, e.g. "fid,kid" (logged to log.jsonl and TensorBoard); "" = none
    metrics_every: int = 10  # ticks between evaluations
    metrics_n: int = 5000  # generated images per evaluation (and real images for the cached statistics)
    metrics_extractor: str = "inception"  # feature network: "inception" (standard FID weights) or "random-conv"

    def __post_init__(self) -> None:
        _require(self.kimg > 0, "--kimg must be positive")
        _require(self.batch >= 1, "--batch must be at least 1")
        _require(self.batch_gpu == "auto" or (type(self.batch_gpu) is int and self.batch_gpu >= 0),
                 f"--batch-gpu must be auto or a whole number of images (0 = the whole batch), got {self.batch_gpu!r}")
        _require(self.lr_g > 0 and self.lr_d > 0, "--lr-g and --lr-d must be positive")
        _require(0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0, "Adam betas must be in [0, 1)")
        _require(self.d_steps >= 1, "--d-steps must be at least 1")
        _require(self.ema_kimg >= 0, "--ema-kimg must be zero (off) or positive")
        _require(self.ema_rampup >= 0, "--ema-rampup must be zero (off) or positive")
        _require(self.tick_kimg > 0, "--tick-kimg must be positive")
        _require(self.snap >= 1, "--snap must be at least 1 tick")
        _require(self.keep >= 1, "--keep must be at least 1")
        _require(1 <= self.grid_size <= 1024, "--grid-size must be between 1 and 1024")
        _require(self.precision in ("fp32", "bf16", "fp16"), "--precision must be fp32, bf16 or fp16")
        _require(self.metrics_every >= 1 and self.metrics_n >= 2, "--metrics-every >= 1 and --metrics-n >= 2")

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


_NESTED: dict[tuple[str, str], type] = {("TrainConfig", "model"): ModelConfig, ("TrainConfig", "loss"): LossConfig,
                                        ("TrainConfig", "augment"): AugmentConfig}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
