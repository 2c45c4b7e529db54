"""Typed, frozen training configuration: the CLI fills it, the run folder records it, resume reads it back.

Each setting is written once, as a field made by `setting()` (setting.py): its default, its one-line help, its
flag and whether it may change on resume; `config/registry.py` lists them for the CLI, `--help` and README.
Unknown keys are rejected so a typo in a hand-edited config.json is an error, never a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

from ganforge.config.setting import check_values, config_only, require, setting
from ganforge.errors import ConfigError
from ganforge.terminal_text import shown_value

T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    name: str = setting("dcgan", "Model family (README's model table lists each with what it supports); one with "
                        "a paper recipe (progan, fastgan, projected, stylegan2, r3gan) starts from it.",
                        flag="--model", fixed_on_resume=True)
    z_dim: int = setting(100, "Latent size (100 as in Radford et al.).", fixed_on_resume=True, at_most=16384)
    g_width: int = setting(64, "G channels at the output resolution (DCGAN's ngf; mlp: the hidden width unit; r3gan: "
                           "width x min(8, 256 / px) at each size).",
                           fixed_on_resume=True, at_most=4096)
    d_width: int = setting(64, "D channels at the input resolution (DCGAN's ndf).", fixed_on_resume=True, at_most=4096)
    d_dropout: float = setting(0.0, "Dropout after each D activation (the Keras GAN recipes use 0.2-0.3).",
                               fixed_on_resume=True)
    g_activation: str = setting("relu", "G's hidden activation: relu (Radford et al.) or lrelu (LeakyReLU, as in "
                                "the Keras GAN).", choices=("relu", "lrelu"), fixed_on_resume=True)
    d_batchnorm: bool = setting(True, "BatchNorm in D's hidden layers; off for WGAN-GP, whose penalty is per sample.",
                                fixed_on_resume=True)
    spectral_norm: bool = setting(False, "Spectral normalisation of D's layers, BatchNorm dropped (Miyato et al. "
                                  "2018).", fixed_on_resume=True)
    mbstd: bool = setting(False, "Minibatch-stddev feature before D's output, against mode collapse (Karras et al. "
                          "2018).", fixed_on_resume=True)
    g_upsample: str = setting("transposed", "G upsampling: transposed convs, or resize (nearest + conv, against "
                              "checkerboards).", choices=("transposed", "resize"), fixed_on_resume=True)
    extra_convs: int = setting(0, "dcgan: 3x3 stride-1 convolutions added at each resolution of G and D (each "
                               "with BatchNorm), as ProGAN has two per resolution; 0 is the paper's DCGAN.",
                               fixed_on_resume=True)
    conditional: bool = setting(False, "Class-conditional training on the store's labels: conditional BatchNorm in "
                                "G, projection D (Miyato & Koyama 2018).", flag="--cond", fixed_on_resume=True)
    num_classes: int = config_only(0, "Number of classes, set from the store's labels with --cond.")
    input_shape: tuple[int, ...] = config_only((), "Image-to-image models: the (C, H, W) of the inputs G translates, "
                                               "set from the store's A side; () for noise-to-image models.",
                                               kind="shape")
    fmap_base: int = setting(8192, "progan: channels at stage s (4 px = 1) are min(fmap_max, fmap_base / 2^s); "
                             "stylegan2: min(fmap_max, fmap_base / resolution), 32768 in config F.",
                             fixed_on_resume=True, at_most=1 << 20)
    fmap_max: int = setting(512, "progan, stylegan2: channel cap (512 in both papers).", fixed_on_resume=True,
                            at_most=8192)
    features: str = setting("lite0", "projected: the frozen ImageNet network whose features D judges: lite0 "
                            "(EfficientNet-Lite0, ganforge[projected]) or the wider, deeper lite1 or lite2 "
                            "(ganforge[projected-large]).",
                            choices=("lite0", "lite1", "lite2"), fixed_on_resume=True)
    pixel_head: bool = setting(False, "projected: one more trainable head, on the images' own pixels at 16 px, "
                               "beside the frozen-feature heads; against narrowing palettes (BENCHMARKS.md).",
                               fixed_on_resume=True)
    feature_resolution: int = setting(0, "projected: the shorter side D's feature network sees the images at; 0 = "
                                      "their own size from 64 px up and 64 px below (fast on a CPU), 224 the "
                                      "paper's; else 32 to 1024.", fixed_on_resume=True, at_most=1024)

    def __post_init__(self) -> None:
        check_values(self)
        object.__setattr__(self, "input_shape", tuple(self.input_shape))  # JSON gives a list
        require(len(self.input_shape) in (0, 3) and all(type(v) is int and 0 < v <= 1 << 16
                                                        for v in self.input_shape),
                f"model.input_shape {list(self.input_shape)} is not a (channels, height, width) of whole numbers")
        require(self.z_dim >= 1, "--z-dim must be at least 1")
        require(not self.conditional or self.num_classes >= 2,
                "--cond needs a store with at least 2 classes (`ganforge prepare --labels folders`)")
        require(self.g_width >= 1 and self.d_width >= 1, "--g-width and --d-width must be at least 1")
        require(0.0 <= self.d_dropout < 1.0, "--d-dropout must be in [0, 1)")
        require(0 <= self.extra_convs <= 8, "--extra-convs must be in [0, 8]")
        require(self.feature_resolution == 0 or self.feature_resolution >= 32,
                "--feature-resolution must be 0 (automatic) or 32 to 1024 px (32: the feature network's stride)")


@dataclass(frozen=True)
class LossConfig:
    name: str = setting("nonsaturating", "Adversarial loss: nonsaturating, minimax (the original saturating game), "
                        "wgan (weight clipping, --clip), wgan-gp (--gp-lambda, --gp-mode), hinge, lsgan or rpgan "
                        "(relativistic pairing, R3GAN's).",
                        flag="--loss", choices=("nonsaturating", "minimax", "wgan", "wgan-gp", "hinge", "lsgan",
                                                "rpgan"))
    label_smoothing: float = setting(0.0, "One-sided label smoothing: D's target for reals becomes 1 - s (Salimans "
                                     "et al. 2016).")
    label_flip: float = setting(0.0, "Probability of flipping each of D's targets (label noise).")
    gp_lambda: float = setting(10.0, "Gradient-penalty weight for wgan-gp (Gulrajani et al. 2017).")
    gp_mode: str = setting("two-sided", "Gradient-penalty form: two-sided (||grad|| - 1)^2 or one-sided "
                           "max(0, ||grad|| - 1)^2.", choices=("two-sided", "one-sided"))
    drift: float = setting(0.0, "Critic drift penalty epsilon * E[D(x)^2], keeping its outputs near 0 (ProGAN uses "
                           "0.001).")
    clip: float = setting(0.01, "Weight-clipping bound c for --loss wgan (Arjovsky et al. 2017).")
    r1_gamma: float = setting(0.0, "R1 penalty gamma/2 E||grad D(x_real)||^2 on reals (Mescheder et al. 2018); "
                              "0 = off.")
    r2_gamma: float = setting(0.0, "R2 penalty gamma/2 E||grad D(x_fake)||^2 on fakes, beside R1 (R3GAN: both, "
                              "the same gamma); lazy on R1's schedule; 0 = off.")
    r1_every: int = setting(16, "Lazy regularisation: R1 (and R2) every N D steps, scaled by N (StyleGAN2).",
                            at_most=1_000_000)
    pl_weight: float = setting(0.0, "Path-length regularization weight of a style-based G (StyleGAN2 Sec. 3.2: 2); "
                               "0 = off.")
    pl_every: int = setting(4, "Lazy regularisation: path length every N G steps, scaled by N (StyleGAN2).",
                            at_most=1_000_000)
    mode_seeking: float = setting(0.0, "Weight of MSGAN's mode-seeking term in G's loss (Mao et al. 2019: 1): G "
                                  "must draw different images from different latents of one class; 0 = off.",
                                  at_most=1e6)
    instance_noise: float = setting(0.0, "Std of Gaussian noise added to D's inputs, annealed linearly to 0 "
                                    "(Sonderby et al. 2017).")
    instance_noise_kimg: float = setting(0.0, "Instance-noise anneal length in kimg; 0 = the whole run.", at_most=1e6)
    recon_weight: float = config_only(1.0, "aae: weight of the pixel MSE against the adversarial term.")
    adv_weight: float = setting(1.0, "Image-to-image models: weight of the adversarial term in G's loss (SRGAN: "
                                "1e-3, Ledig et al. Eq. 3).")
    l1_weight: float = setting(100.0, "pix2pix: weight lambda of G's L1 distance to the target beside the "
                               "conditional GAN loss (Isola et al. 2017, Eq. 4).")
    cycle_weight: float = setting(10.0, "cyclegan: weight lambda of the cycle-consistency L1 loss, both directions "
                                  "(Zhu et al. 2017, Eq. 3).")
    identity_weight: float = setting(0.5, "cyclegan: weight of the identity loss as a fraction of --cycle-weight "
                                     "(Zhu et al. 2017, Sec. 5.2: 0.5).")
    content_loss: str = setting("lite0", "srgan: what G's content loss compares: lite0 (EfficientNet-Lite0 ImageNet "
                                "features, standing in for the paper's VGG19; needs ganforge[projected]) or mse "
                                "(pixels: SRGAN-MSE).", choices=("lite0", "mse"))
    content_weight: float = setting(1.0, "srgan: weight of the content loss in G's adversarial phase.")
    pretrain: float = setting(0.5, "srgan: fraction of the run that trains G alone on pixel MSE (SRResNet) before "
                              "the adversarial phase.")
    pool_size: int = setting(50, "cyclegan: generated images kept per D and shown again, half of the time "
                             "(Shrivastava et al. 2017); 0 = off.", fixed_on_resume=True, at_most=10_000)

    def __post_init__(self) -> None:
        check_values(self)
        require(0.0 <= self.label_smoothing < 0.5, "--label-smoothing must be in [0, 0.5)")
        require(0.0 <= self.label_flip < 0.5, "--label-flip must be in [0, 0.5)")
        require(self.gp_lambda >= 0 and self.drift >= 0 and self.r1_gamma >= 0 and self.r2_gamma >= 0
                and self.instance_noise >= 0,
                "--gp-lambda, --drift, --r1-gamma, --r2-gamma and --instance-noise must not be negative")
        require(self.clip > 0, "--clip must be positive")
        require(self.r1_every >= 1, "--r1-every must be at least 1")
        require(self.pl_weight >= 0, "--pl-weight must not be negative")
        require(self.pl_every >= 1, "--pl-every must be at least 1")
        require(self.mode_seeking >= 0, "--mode-seeking must not be negative")
        require(min(self.adv_weight, self.l1_weight, self.cycle_weight, self.identity_weight) >= 0,
                "--adv-weight, --l1-weight, --cycle-weight and --identity-weight must not be negative")
        require(self.pool_size >= 0, "--pool-size must not be negative")
        require(self.content_weight >= 0, "--content-weight must not be negative")
        require(0.0 <= self.pretrain < 1.0, "--pretrain must be in [0, 1): a fraction of the run")


@dataclass(frozen=True)
class AugmentConfig:
    name: str = setting("none", "Augmentation of reals and fakes before D: none, diffaugment (Zhao et al. 2020) or "
                        "ada (adaptive probability p, logged every tick; Karras et al. 2020).",
                        flag="--augment", choices=("none", "diffaugment", "ada"))
    target: float = setting(0.6, "ADA: target of E[sign(D(x_real))], the overfitting heuristic r_t.",
                            flag="--ada-target")
    ada_kimg: float = setting(500.0, "ADA: kimg for p to move by 1 at full speed.", at_most=1e6)
    policy: str = setting("color,translation,cutout", "DiffAugment operations, comma-separated.",
                          flag="--diffaugment-policy")

    def __post_init__(self) -> None:
        check_values(self)
        require(0.0 < self.target < 1.0, "--ada-target must be in (0, 1)")
        require(self.ada_kimg > 0, "--ada-kimg must be positive")


@dataclass(frozen=True)
class TrainConfig:
    data: str = setting("", "Store from `ganforge prepare`; empty = the embedded MNIST sample. On resume: where "
                        "the run's store is now (its content must be the same).", kind="path",
                        shown="embedded MNIST")
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture
    loss: LossConfig = field(default_factory=LossConfig)  # adversarial objective, penalties, D-label tricks
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # differentiable augmentation before D
    kimg: float = setting(100.0, "Training length in thousands of real images shown to D.", at_most=1e6)
    minutes: float = setting(0.0, "Train for this many minutes: the run measures its speed and sets --kimg to end "
                             "on time; 0 = train --kimg.", at_most=1e6)
    best_share: float = setting(0.05, "--minutes: share of the budget a periodic KID check may take to keep the "
                                "best snapshot in RUN/best beside the last; 0 = none.")
    init: str = setting("", "Fine-tune a trained GAN: a run folder (RUN/best: its best snapshot), an export or a "
                        "cached Hub repo id; its recipe, and the weights that fit, start the run.",
                        fixed_on_resume=True, shown="none")
    init_sha256: str = config_only("", "--init: SHA-256 of the source weights the run started from.")
    freeze_d: int = setting(0, "FreezeD (Mo et al. 2020): D's first N blocks keep their weights, for fine-tuning "
                            "with --init; 0 = none.", fixed_on_resume=True, at_most=64)
    freeze_g_mapping: bool = setting(False, "stylegan2: G's mapping network keeps its weights (fine-tuning with "
                                     "--init).", fixed_on_resume=True)
    batch: int = setting(64, "Images per D step and per G step: the global batch, whatever the number of "
                         "processes.", at_most=65536)
    batch_gpu: int | Literal["auto"] = setting(0, "Images per forward/backward pass on each device; smaller passes "
                                               "accumulate gradients to the same --batch; auto = the largest that "
                                               "fits; 0 = all at once.", kind="auto|N")
    sync_bn: bool = setting(False, "torchrun: BatchNorm statistics over the global batch (SyncBatchNorm), not per "
                            "process.")
    lr_g: float = setting(2e-4, "Adam learning rate of G (Radford et al.).")
    lr_d: float = setting(2e-4, "Adam learning rate of D.")
    lr_decay: float = setting(0.0, "Fraction of the run at its end over which both learning rates fall linearly "
                              "to 0 (CycleGAN: 0.5, the second half); 0 = constant.")
    schedule: str = setting("constant", "How rates move over --kimg: constant, or cosine (R3GAN's shape: lr to 1/4, "
                            "R1/R2 gamma to 1/10, beta2 up to 0.99, along a half cosine).",
                            choices=("constant", "cosine"))
    beta1: float = setting(0.5, "Adam beta1; 0.5 instead of 0.9 stabilises GANs (Radford et al.).")
    beta2: float = setting(0.999, "Adam beta2.")
    d_steps: int = setting(1, "D updates per G update (k in Goodfellow et al.'s Algorithm 1).", at_most=100)
    ema_kimg: float = setting(0.0, "Half-life in kimg of G's weight average, used for samples and generate "
                              "(StyleGAN: 10); 0 = off.", at_most=1e6)
    ema_rampup: float = setting(0.0, "EMA ramp-up: early on, cap the half-life at this fraction of images seen "
                                "(StyleGAN2: 0.05); 0 = off.")
    fade_kimg: float = setting(600.0, "progan: fade-in length of each new resolution in kimg (overrides "
                               "--phase-kimg; Karras et al. 2018).", fixed_on_resume=True, at_most=1e6)
    stable_kimg: float = setting(600.0, "progan: stabilisation length of each resolution in kimg (overrides "
                                 "--phase-kimg).", fixed_on_resume=True, at_most=1e6)
    grow_start: int = config_only(4, "progan: the resolution progressive growing starts at; --init from a smaller "
                                  "ProGAN sets it to the source's, so the run fades in only the new resolutions.")
    seed: int = setting(0, "Seeds weights, data order, latents and the fixed sample grid.", fixed_on_resume=True)
    tick_kimg: float = setting(4.0, "kimg per tick: one status line, sample grid and log row.", at_most=1e6)
    snap: int = setting(5, "Checkpoint every N ticks (and at the end, and on SIGINT/SIGTERM).", at_most=1_000_000)
    keep: int = setting(3, "Most recent checkpoints kept on disk.", at_most=1000)
    device: str = setting("auto", "auto (cuda when available), cpu, cuda, cuda:N.")
    out: str = setting("runs", "Parent folder of the numbered run folders.", kind="path", fixed_on_resume=True)
    grid_size: int = setting(64, "Images in the per-tick sample grid.")
    precision: str = setting("fp32", "Mixed precision: fp32, bf16 (autocast) or fp16 (autocast + gradient "
                             "scaling).", choices=("fp32", "bf16", "fp16"))
    channels_last: bool = setting(False, "NHWC memory layout for convolutions (faster with oneDNN and tensor "
                                  "cores).")
    compile: bool = setting(False, "torch.compile G and D (pays off on GPUs, not on a 2-core CPU).")
    metrics: str = setting("", "Metrics scored during training, e.g. fid,kid,pr (logged to log.jsonl and "
                           "TensorBoard).", shown="none")
    metrics_every: int = setting(10, "Ticks between evaluations during training.", at_most=1_000_000)
    metrics_n: int = setting(5000, "Generated images per evaluation (and real images for the cached statistics).",
                             at_most=1_000_000)
    memorization: str = setting("auto", "At the end of the run, check whether samples copy training images "
                                "(nearest neighbours; RUN/memorization): auto = runs fine-tuned with --init on fewer "
                                "than 2,000 images, on, or off.", choices=("auto", "on", "off"))
    metrics_extractor: str = setting("inception", "Feature network for --metrics: inception (standard FID "
                                     "weights) or random-conv (fast offline stand-in).",
                                     choices=("inception", "random-conv"))

    def __post_init__(self) -> None:
        check_values(self)
        require(self.kimg > 0, "--kimg must be positive")
        require(self.minutes >= 0, "--minutes must be zero (train --kimg) or positive")
        require(0.0 <= self.best_share < 1.0, "--best-share must be in [0, 1) (a share of the --minutes budget)")
        require(0 <= self.seed < 2**32, f"--seed must be a whole number from 0 to 2^32 - 1, got {self.seed}")
        require(self.batch >= 1, "--batch must be at least 1")
        require(self.batch_gpu == "auto" or (type(self.batch_gpu) is int and self.batch_gpu >= 0),
                "--batch-gpu must be auto or a whole number of images (0 = the whole batch), got "
                f"{shown_value(self.batch_gpu)}")
        require(self.lr_g > 0 and self.lr_d > 0, "--lr-g and --lr-d must be positive")
        require(0.0 <= self.lr_decay <= 1.0, "--lr-decay must be in [0, 1] (a fraction of --kimg)")
        require(self.lr_decay == 0 or self.schedule == "constant",
                "--lr-decay and --schedule cosine both shape the learning rates; give one of them")
        require(0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0, "Adam betas must be in [0, 1)")
        require(self.d_steps >= 1, "--d-steps must be at least 1")
        require(self.ema_kimg >= 0, "--ema-kimg must be zero (off) or positive")
        require(self.ema_rampup >= 0, "--ema-rampup must be zero (off) or positive")
        require(self.tick_kimg > 0, "--tick-kimg must be positive")
        require(self.snap >= 1, "--snap must be at least 1 tick")
        require(self.keep >= 1, "--keep must be at least 1")
        require(1 <= self.grid_size <= 1024, "--grid-size must be between 1 and 1024")
        require(self.metrics_every >= 1 and self.metrics_n >= 2, "--metrics-every >= 1 and --metrics-n >= 2")

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
