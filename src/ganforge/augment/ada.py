"""Adaptive discriminator augmentation (Karras et al. 2020, "Training GANs with Limited Data", StyleGAN2-ADA).

Each op runs on each image independently with probability p, on reals and fakes alike, right before D.
Because every op is skipped with probability 1 - p, the augmented distribution still determines the clean one
as long as p stays below ~0.8 (Sec. 2.2 of the paper): G cannot lower D's loss by producing flipped, rotated or
recoloured images, so augmentations do not "leak" into the generated images. Above ~0.8 rotations and flips
start to leak; the paper's heuristic rarely drives p that high.

Pipeline (the paper's "bgc" set minus arbitrary rotation, fractional translation, hue and luma flip), with the
paper's parameter distributions:

  xflip        mirror left-right with probability 1/2
  rotate90     rotate by k * 90 degrees, k uniform in {0, 1, 2, 3} (only {0, 2} for non-square images)
  xint         integer translation, uniform up to 0.125 of each side, reflection padding
  scale        isotropic scaling by lognormal(0, (0.2 ln 2)^2)
  aniso        anisotropic scaling: x by a, y by 1/a, a ~ lognormal(0, (0.2 ln 2)^2)
  brightness   add N(0, 0.2^2)
  contrast     multiply by lognormal(0, (0.5 ln 2)^2)
  saturation   scale the chroma (the part orthogonal to grey) by lognormal(0, (ln 2)^2); a no-op for grey

The geometric ops compose into one axis-aligned map per sample, executed as one separable resampling with
reflection padding (`resample.py`): exact where the map is a flip, rotation or integer shift, bilinear under
scaling. Colour ops are not clamped, as in the paper. At p = 0 the images pass through untouched.

p adapts with the paper's overfitting heuristic r_t = E[sign(D(x_real))], over all ranks' reals under torchrun:
every `interval` D steps, p += sign(r_t - target) * batch * interval / (ada_kimg * 1000), so p can move from 0
to 1 in ada_kimg kimg. p lives on the device and moves there, so adapting never waits for the device; the host
keeps only an upper bound (raised by one step per adjustment, made exact when the tick reads p), which lets the
images pass through without a kernel while p is certainly 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from ganforge.augment.base import check_state_keys
from ganforge.augment.resample import pixel_grid, resample
from ganforge.errors import CheckpointError, ConfigError

GEOMETRIC_OPS = ("xflip", "rotate90", "xint", "scale", "aniso")
COLOR_OPS = ("brightness", "contrast", "saturation")
OPS = GEOMETRIC_OPS + COLOR_OPS

XINT_MAX = 0.125  # translation range, relative to the side
SCALE_STD = 0.2  # log2 std of isotropic scaling
ANISO_STD = 0.2  # log2 std of anisotropic scaling
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2 std
SATURATION_STD = 1.0  # log2 std
P_MAX = math.nextafter(1.0, 0.0)  # p stays below 1 so every image has a chance to reach D un-augmented

STATE_KEYS = {"p", "sign_sum", "sign_count", "steps", "p_bound"}
OLD_STATE_KEYS = STATE_KEYS - {"p_bound"}  # ganforge 0.1 checkpoints


class AdaptiveAugment:
    def __init__(
        self,
        *,
        batch: int,
        target: float = 0.6,
        ada_kimg: float = 500,
        interval: int = 4,
        initial_p: float = 0.0,
        ops: Iterable[str] = OPS,
        sum_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None,
        world_size: int = 1,
    ) -> None:
        self.ops = tuple(ops)
        unknown = sorted(set(self.ops) - set(OPS))
        if unknown:
            raise ConfigError(f"unknown ADA ops {unknown}: choose from {', '.join(OPS)}")
        if batch < 1:
            raise ConfigError(f"--batch must be at least 1 for ADA, got {batch}")
        if not 0.0 <= target <= 1.0:
            raise ConfigError(f"--ada-target must be in [0, 1] (the paper uses 0.6), got {target}")
        if not ada_kimg > 0:
            raise ConfigError(f"--ada-kimg must be positive (the paper uses 500), got {ada_kimg}")
        if interval < 1:
            raise ConfigError(f"the ADA interval must be at least 1 D step (the paper uses 4), got {interval}")
        if not 0.0 <= initial_p <= 1.0:
            raise ConfigError(f"the initial ADA probability p must be in [0, 1], got {initial_p}")
        self.batch, self.target, self.ada_kimg, self.interval = batch, target, ada_kimg, interval
        # Multi-process: every rank adds every rank's signs (one tiny all-reduce per D step, queued on the device
        # without a host sync), so all ranks adapt p alike and rank 0's checkpoint holds the global sums.
        self._sum_over_ranks, self._world_size = sum_over_ranks, world_size
        # p and the sum of sign(D(x_real)) since the last adjustment are device tensors, so neither augmenting nor
        # observing syncs; they are created on the images' device at first use, from these host values (also where
        # a resume puts the checkpoint's).
        self._p: torch.Tensor | None = None
        self._sign_sum: torch.Tensor | None = None
        self._pending_p, self._pending_sign_sum = float(initial_p), 0.0
        self._p_bound = float(initial_p)  # p <= this, known without reading p
        self._sign_count = 0  # logits summed so far (known on the host from shapes)
        self._steps = 0  # D steps observed since the last adjustment

    # ---------------------------------------------------------------- augmentation

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self._p_bound <= 0.0:  # p is 0: every op would be skipped
            return images
        if any(op in self.ops for op in GEOMETRIC_OPS):
            images = self._geometric(images)
        return self._color(images)

    def _gate(self, value: torch.Tensor, identity: float) -> torch.Tensor:
        """value [B, ...] for the samples a Bernoulli(p) draw selects, `identity` (the op's no-op) elsewhere."""
        applied = torch.rand(value.shape[0], device=value.device) < self._p_on(value.device)
        return torch.where(applied.view(-1, *[1] * (value.ndim - 1)), value, torch.full_like(value, identity))

    def _geometric(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        device = images.device
        ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)

        # Output -> input map in pixel coordinates centred on the image: in = F R (d * out - t), with F the flip,
        # R the rotation (a signed axis permutation), d the per-axis scale and t the translation.
        flip, quarter_turns, shift = zeros, zeros, torch.zeros(batch, 2, device=device)  # shift: (x, y) in pixels
        scale_x, scale_y = ones, ones
        if "xflip" in self.ops:
            flip = self._gate(torch.floor(torch.rand(batch, device=device) * 2), 0.0)
        if "rotate90" in self.ops:
            choices = 4 if height == width else 2  # odd turns would swap the sides of a non-square image
            k = torch.floor(torch.rand(batch, device=device) * choices).clamp(max=choices - 1) * (4 // choices)
            quarter_turns = self._gate(k, 0.0)
        if "xint" in self.ops:
            t = (torch.rand(batch, 2, device=device) * 2 - 1) * XINT_MAX
            shift = self._gate(torch.round(torch.stack([t[:, 0] * width, t[:, 1] * height], dim=1)), 0.0)
        if "scale" in self.ops:
            s = self._gate(torch.exp2(torch.randn(batch, device=device) * SCALE_STD), 1.0)
            scale_x, scale_y = scale_x / s, scale_y / s  # output -> input: divide by the zoom
        if "aniso" in self.ops:
            a = self._gate(torch.exp2(torch.randn(batch, device=device) * ANISO_STD), 1.0)
            scale_x, scale_y = scale_x / a, scale_y * a

        # F R = [[fx c, fx s], [-s, c]] with exact integer cos/sin of k * 90 degrees. For odd k the axes swap:
        # transpose first, then each output axis reads one input axis with sign (column sum of F R).
        k = quarter_turns
        cos = (k == 0).float() - (k == 2).float()
        sin = (k == 1).float() - (k == 3).float()
        fx = 1 - 2 * flip
        sign_x, sign_y = fx * cos - sin, fx * sin + cos
        if height == width:
            swap = ((k == 1) | (k == 3)).view(batch, 1, 1, 1)
            images = torch.where(swap, images.transpose(-1, -2), images)

        centre_y, centre_x = (height - 1) / 2, (width - 1) / 2
        out_y = pixel_grid(batch, height, device) - centre_y
        out_x = pixel_grid(batch, width, device) - centre_x
        shift_x, shift_y = shift[:, :1], shift[:, 1:]
        source_x = sign_x[:, None] * (scale_x[:, None] * out_x - shift_x) + centre_x
        source_y = sign_y[:, None] * (scale_y[:, None] * out_y - shift_y) + centre_y
        return resample(images, source_y, source_x, padding="reflection")

    def _color(self, images: torch.Tensor) -> torch.Tensor:
        batch, channels = images.shape[:2]
        device, dtype = images.device, images.dtype
        if "brightness" in self.ops:
            b = self._gate(torch.randn(batch, device=device) * BRIGHTNESS_STD, 0.0)
            images = images + b.view(batch, 1, 1, 1).to(dtype)
        if "contrast" in self.ops:
            c = self._gate(torch.exp2(torch.randn(batch, device=device) * CONTRAST_STD), 1.0)
            images = images * c.view(batch, 1, 1, 1).to(dtype)  # about mid-grey 0, as the paper scales colour
        if "saturation" in self.ops and channels > 1:
            s = self._gate(torch.exp2(torch.randn(batch, device=device) * SATURATION_STD), 1.0)
            grey = images.mean(dim=1, keepdim=True)  # projection onto the luma axis (1, 1, 1) / sqrt(3)
            images = grey + (images - grey) * s.view(batch, 1, 1, 1).to(dtype)
        return images

    # ---------------------------------------------------------------- adaptation

    def observe_real_logits(self, logits: torch.Tensor) -> None:
        signs = logits.detach().float().sign().sum()
        if self._sum_over_ranks is not None:
            signs = self._sum_over_ranks(signs)
        if self._sign_sum is None:  # a fill kernel, not a host-to-device copy
            self._sign_sum = torch.full((), self._pending_sign_sum, device=signs.device)
        self._sign_sum += signs
        self._sign_count += logits.numel() * self._world_size  # every rank's share of the batch is the same size
        self._steps += 1
        if self._steps >= self.interval:
            self._adjust(signs.device)

    def _adjust(self, device: torch.device) -> None:
        """p += sign(r_t - target) * step, clamped to [0, P_MAX], all on the device."""
        assert self._sign_sum is not None
        step = self.batch * self.interval / (self.ada_kimg * 1000)
        r_t = self._sign_sum.double() / max(self._sign_count, 1)
        p = self._p_on(device)
        p.add_(torch.sign(r_t - self.target), alpha=step).clamp_(0.0, P_MAX)
        self._p_bound = min(self._p_bound + step, P_MAX)
        self._sign_sum.zero_()
        self._sign_count = 0
        self._steps = 0

    def _p_on(self, device: torch.device) -> torch.Tensor:
        if self._p is None:
            self._p = torch.full((), self._pending_p, dtype=torch.float64, device=device)
        return self._p

    @property
    def p(self) -> float:
        """p now: reads the device (a tick's business, not a step's)."""
        return self._pending_p if self._p is None else float(self._p.item())

    @property
    def probability(self) -> float:
        """p, read once per tick for the log; the host's bound becomes p again, so augmentation stops costing
        anything once p is back at 0."""
        p = self.p
        self._p_bound = p
        return p

    def state_dict(self) -> dict[str, float | int]:
        sign_sum = self._pending_sign_sum if self._sign_sum is None else float(self._sign_sum.item())
        return {"p": self.p, "sign_sum": sign_sum, "sign_count": self._sign_count, "steps": self._steps,
                "p_bound": self._p_bound}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        check_state_keys(state, STATE_KEYS if "p_bound" in state else OLD_STATE_KEYS, "ada")
        p = float(state["p"])
        if not 0.0 <= p <= 1.0:
            raise CheckpointError(f"the checkpoint's ADA probability p = {p} is outside [0, 1]: the file is damaged")
        bound = float(state.get("p_bound", p))
        if not p - 1e-9 <= bound <= 1.0:
            raise CheckpointError(f"the checkpoint's ADA bound {bound} is not between p = {p} and 1: the file is "
                                  "damaged")
        self._pending_p, self._p_bound = p, bound
        self._sign_count, self._steps = int(state["sign_count"]), int(state["steps"])
        self._pending_sign_sum = float(state["sign_sum"])
        if self._p is not None:
            self._p.fill_(p)
        if self._sign_sum is not None:
            self._sign_sum.fill_(self._pending_sign_sum)
