"""What ganforge's training loop costs beyond the arithmetic: for each model family, steps per second through
`ganforge.training.train` against a bare hand-written loop over the same networks, in one process.

    python benchmarks/overhead.py                                  # every family, 8 s a side, CPU, 1 thread
    python benchmarks/overhead.py --families dcgan,pix2pix --seconds 3
    python benchmarks/overhead.py --device cuda --threads 2

Target (issue 28): ganforge within 10 % of the bare loop for every family, i.e. ratio >= 0.90.

Method. Each family trains at a tiny width (g_width = d_width = 8; progan and stylegan2 fmap_base 64, fmap_max
16) on random uint8 images: 16 px, 64 px for fastgan and projected (their G needs 64), a 16 px paired store for
pix2pix (grey inputs, RGB targets), a 16 px unpaired RGB store for cyclegan, 8 px inputs and 32 px targets for
srgan. At these sizes a step is mostly Python and kernel launches, so any work the loop adds shows. Both sides run
the family's plainest setting: fp32, no EMA, no augmentation, the non-saturating loss, no R1/R2/path-length/drift
penalty, constant learning rates, one D update per G update (a "step" is one D and one G update). The bare loop's
networks and Adam optimizers are built as the run's are (`build_state`, which calls `models.build_networks`), from
the same resolved config, so both sides do the same arithmetic with the same kernels.

- ganforge: `train()` on the store, ticks of a fixed number of steps (chosen so a tick lasts about --tick-seconds
  on the bare loop), timed by the loop's own per-tick seconds. Those exclude the tick's end (sample grid, log row,
  loss plots), which a run pays once per --tick-kimg (4 kimg by default): it is shown apart, as "tick end ms",
  and not in the ratio. The first tick is warm-up and not counted.
- bare: the scheme's minimal step, written out below, on one batch of random reals (and inputs) already on the
  device and fresh latents each step, timed in chunks of the same number of steps; the first chunk is warm-up.

The two alternate (bare, ganforge, bare, ganforge ... --rounds times, --seconds split over the rounds) and each
keeps its best round, since the machine may be shared. Each round of ganforge is a fresh run (new networks).

What the bare loop leaves out, so what the ratio charges to ganforge: drawing each batch (the epoch sampler, the
gather from the device copy of the store, uint8 to float), drawing latents on the CPU from the run's own generator
and copying them over, the per-step statistics kept on the device for the tick (D's loss, outputs, accuracies,
ADA's sign sum), the phase and schedule checks and the adversary's indirections (augment and instance noise
switched off but still called). Per scheme:
- gan (mlp, dcgan, progan, stylegan2, r3gan, projected): nothing else. progan runs at its final resolution from
  the first step on both sides (fade_kimg = stable_kimg = 0), set with the same Schedule.apply the loop uses.
- gan-selfsupervised (fastgan): nothing else; D's reconstruction loss on the reals joins its loss on both sides.
- aae: nothing else (prior samples against the codes in D; adversarial + MSE reconstruction for E and G).
- paired (pix2pix): nothing else (D sees each image beside its input; G adds l1_weight x L1).
- cycle (cyclegan): the history pool is off on both sides (pool_size 0); both directions' adversarial, cycle and
  identity losses are computed as ganforge computes them.
- super-resolution (srgan): the adversarial phase from the first step on both sides (pretrain 0), content loss
  mse (pixels) on both, so no frozen feature network.
The bare loop writes D's binary cross-entropy as softplus terms, the same values ganforge's BCE computes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganforge.api import _path_of_keyword
from ganforge.config import TrainConfig
from ganforge.data.store import Manifest, Store, content_fingerprint, write_store
from ganforge.models import MODELS
from ganforge.models.growing import build_schedule
from ganforge.training import train
from ganforge.training.distributed import Distributed
from ganforge.training.run_config import RunRequest, resolve_run
from ganforge.training.state import build_state

TARGET_RATIO = 0.90  # issue 28: ganforge within 10 % of the bare loop
# Every family's plainest setting: what the bare loop below computes. Recipes (`--model NAME` starts from the
# paper's settings) switch on EMA, augmentation, penalties and schedules, so each is switched off here.
PLAIN: dict[str, Any] = {"ema_kimg": 0.0, "ema_rampup": 0.0, "augment": "none", "loss": "nonsaturating",
                         "r1_gamma": 0.0, "r2_gamma": 0.0, "pl_weight": 0.0, "drift": 0.0, "schedule": "constant",
                         "lr_decay": 0.0, "d_steps": 1, "precision": "fp32", "batch": 8}
TINY: dict[str, dict[str, Any]] = {
    "mlp": {"g_width": 8, "d_width": 8},
    "dcgan": {"g_width": 8, "d_width": 8},
    "aae": {"g_width": 8, "d_width": 8},
    "progan": {"fmap_base": 64, "fmap_max": 16, "fade_kimg": 0.0, "stable_kimg": 0.0},
    "fastgan": {"g_width": 8, "d_width": 8},
    "projected": {"g_width": 8, "batch": 4},  # D is the frozen EfficientNet-Lite0: not tiny whatever the width
    "stylegan2": {"fmap_base": 64, "fmap_max": 16},
    "r3gan": {"g_width": 8, "d_width": 8},
    "pix2pix": {"g_width": 8, "d_width": 8},
    "cyclegan": {"g_width": 8, "d_width": 8, "pool_size": 0},
    "srgan": {"g_width": 8, "d_width": 8, "content_loss": "mse", "pretrain": 0.0},
}
STORE_OF = {"fastgan": "64", "projected": "64", "pix2pix": "paired", "cyclegan": "unpaired", "srgan": "sr"}


class _Enough(Exception):
    """Raised from a tick hook to end a ganforge run once it has been timed long enough."""


@dataclass
class Timing:
    steps: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Row:
    family: str
    px: str
    batch: int
    ganforge: float  # steps/s, best round
    bare: float  # steps/s, best round
    tick_end_ms: float  # a tick's end (sample grid, log row, plots), best round's mean; not in `ganforge`

    @property
    def ratio(self) -> float:
        return self.ganforge / self.bare if self.bare > 0 else 0.0


# --- stores -----------------------------------------------------------------------------------------------------

def write_random_store(path: Path, images: np.ndarray, targets: np.ndarray | None = None,
                       pairing: str = "none") -> Path:
    """A store of `images` (the A side), with `targets` as the B side for a two-sided one."""
    labels = np.zeros(len(images), np.int64)
    n, c, h, w = images.shape
    two_sided: dict[str, Any] = {}
    if targets is not None:
        n_b, c_b, h_b, w_b = targets.shape
        two_sided = {"pairing": pairing, "count_b": n_b, "channels_b": c_b, "height_b": h_b, "width_b": w_b,
                     "val_count": 0, "val_count_b": 0}
    manifest = Manifest(count=n, channels=c, height=h, width=w, label_names=[], skipped=[], source=str(path),
                        fingerprint=content_fingerprint(images, labels, targets), **two_sided)
    write_store(path, images, labels, manifest, targets)
    return path


def make_store(kind: str, root: Path) -> Path:
    """The store a family of `kind` ("16", "64", "paired", "unpaired", "sr") trains on: random pixels, since a
    step's cost does not depend on them."""
    rng = np.random.default_rng(0)

    def images(count: int, side: int, channels: int = 3) -> np.ndarray:
        return rng.integers(0, 256, (count, channels, side, side), dtype=np.uint8)

    path = root / f"{kind}.gfs"
    if kind in ("16", "64"):
        return write_random_store(path, images(64, int(kind)))
    if kind == "paired":
        return write_random_store(path, images(64, 16, 1), images(64, 16), "paired")
    if kind == "unpaired":
        return write_random_store(path, images(64, 16), images(48, 16), "unpaired")
    if kind == "sr":
        return write_random_store(path, images(64, 8), images(64, 32), "paired")
    raise ValueError(f"no store kind {kind!r}")


def resolved_config(family: str, store: Path, out: Path, device: str) -> TrainConfig:
    """The run's config as `ganforge train --model FAMILY` resolves it, with the plain tiny settings on top."""
    given = {**PLAIN, **TINY[family], "model": family, "data": str(store), "out": str(out), "device": device,
             "kimg": 1e6, "snap": 1_000_000}  # never done, never a checkpoint: the tick hook ends the run
    return resolve_run(RunRequest({_path_of_keyword(k): v for k, v in given.items()})).config


# --- the ganforge side ------------------------------------------------------------------------------------------

def time_ganforge(config: TrainConfig, run_dir: Path, steps_per_tick: int, seconds: float) -> tuple[Timing, float]:
    """Steps timed by the loop's own tick seconds over the ticks after the first, and the mean tick end in s."""
    batch = config.batch * config.d_steps
    # Half a batch short of the tick's images, so float rounding of tick_kimg * 1000 never adds a step.
    config = dataclasses.replace(config, tick_kimg=(steps_per_tick * batch - batch / 2) / 1000)
    ticks: list[tuple[int, float, float]] = []  # (cur_nimg, the tick's step seconds, wall clock at its hook)

    def hook(state: Any, record: dict[str, Any]) -> None:
        ticks.append((state.counters.cur_nimg, float(record["sec_per_tick"]), time.perf_counter()))
        if len(ticks) >= 3 and sum(sec for _, sec, _ in ticks[1:]) >= seconds:
            raise _Enough

    try:
        train(config, run_dir, Store(Path(config.data)), progress=False, echo=lambda _: None, tick_hooks=(hook,))
    except _Enough:
        pass
    timing = Timing((ticks[-1][0] - ticks[0][0]) // batch, sum(sec for _, sec, _ in ticks[1:]))
    # A hook runs before its tick's end, so the wall time from one hook to the next, less the next tick's steps,
    # is the tick end in between.
    ends = [later[2] - earlier[2] - later[1] for earlier, later in zip(ticks, ticks[1:], strict=False)]
    return timing, sum(ends) / len(ends)


# --- the bare side ----------------------------------------------------------------------------------------------

@dataclass
class Bare:
    """The networks and optimizers a bare step updates, and what it reads: random batches already on the device."""

    generator: nn.Module
    discriminator: nn.Module
    encoder: nn.Module | None
    z_dim: int
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    reals: torch.Tensor  # what D calls real (a two-sided store's targets)
    inputs: torch.Tensor | None  # image-to-image: what G translates
    batch: int
    device: torch.device


def build_bare(config: TrainConfig, store: Store, device: torch.device) -> Bare:
    """The networks (`build_networks`) and optimizers exactly as ganforge's run state builds them, so the ratio is
    the loop's cost, not a different Adam or memory layout; the rest of that state goes unused."""
    state = build_state(config, store, device, Distributed())
    if MODELS[config.model.name].grows:  # the phase the loop sets: here the final resolution, alpha 1
        schedule = build_schedule(True, store.manifest.output_shape[1], config.batch, config.fade_kimg,
                                  config.stable_kimg)
        schedule.apply(state.generator, state.discriminator, schedule.phase_at(0))

    def uniform(*size: int) -> torch.Tensor:
        return torch.rand(*size, device=device) * 2 - 1

    reals = uniform(config.batch, *store.manifest.output_shape)
    inputs = uniform(config.batch, *config.model.input_shape) if config.model.input_shape else None
    return Bare(state.generator, state.discriminator, state.encoder, config.model.z_dim, state.opt_g, state.opt_d,
                reals, inputs, config.batch, device)


def d_update(bare: Bare, loss: torch.Tensor) -> None:
    bare.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    bare.opt_d.step()


def g_update(bare: Bare, loss: Callable[[], torch.Tensor]) -> None:
    """G's update with D's weights frozen, as ganforge does (they need no gradient there)."""
    bare.discriminator.requires_grad_(False)
    bare.opt_g.zero_grad(set_to_none=True)
    loss().backward()
    bare.opt_g.step()
    bare.discriminator.requires_grad_(True)


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_adversarial(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


def gan_step(bare: Bare, config: TrainConfig, reconstruct: bool = False) -> Callable[[], None]:
    G, D, reals = bare.generator, bare.discriminator, bare.reals

    def step() -> None:
        fakes = G(torch.randn(bare.batch, bare.z_dim, device=bare.device), None)
        if reconstruct:  # FastGAN: D also rebuilds the reals it sees
            real_logits, reconstruction = D(reals, None, with_reconstruction=True)
            d_update(bare, d_loss(real_logits, D(fakes.detach(), None)) + reconstruction)
        else:
            d_update(bare, d_loss(D(reals, None), D(fakes.detach(), None)))
        g_update(bare, lambda: g_adversarial(D(fakes, None)))
    return step


def aae_step(bare: Bare, config: TrainConfig) -> Callable[[], None]:
    E, G, D, reals = bare.encoder, bare.generator, bare.discriminator, bare.reals
    assert E is not None

    def step() -> None:
        prior = torch.randn(bare.batch, bare.z_dim, device=bare.device)
        codes = E(reals)
        d_update(bare, d_loss(D(prior), D(codes.detach())))
        g_update(bare, lambda: g_adversarial(D(codes)) + config.loss.recon_weight * F.mse_loss(G(codes), reals))
    return step


def paired_step(bare: Bare, config: TrainConfig) -> Callable[[], None]:
    G, D, targets, inputs = bare.generator, bare.discriminator, bare.reals, bare.inputs
    assert inputs is not None
    loss = config.loss

    def step() -> None:
        outputs = G(inputs)
        d_update(bare, d_loss(D(targets, inputs), D(outputs.detach(), inputs)))
        g_update(bare, lambda: loss.adv_weight * g_adversarial(D(outputs, inputs))
                 + loss.l1_weight * (outputs - targets).abs().mean())
    return step


def cycle_step(bare: Bare, config: TrainConfig) -> Callable[[], None]:
    G, D, real_a, real_b = bare.generator, bare.discriminator, bare.inputs, bare.reals
    assert real_a is not None
    loss, count_a = config.loss, len(real_a)
    domains = torch.cat([torch.zeros(count_a, dtype=torch.long), torch.ones(len(real_b), dtype=torch.long)])
    domains = domains.to(bare.device)
    reals = torch.cat([real_a, real_b])

    def g_loss(outputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        fake_b, fake_a, cycled_a, cycled_b, same_b, same_a = outputs
        logits = D(torch.cat([fake_a, fake_b]), domains)
        adversarial = g_adversarial(logits[:count_a]) + g_adversarial(logits[count_a:])
        cycle = (cycled_a - real_a).abs().mean() + (cycled_b - real_b).abs().mean()
        identity = (same_b - real_b).abs().mean() + (same_a - real_a).abs().mean()
        return loss.adv_weight * adversarial + loss.cycle_weight * (cycle + loss.identity_weight * identity)

    def step() -> None:
        outputs = G(real_a, real_b)
        fakes = torch.cat([outputs[1].detach(), outputs[0].detach()])  # F(b) for D_A, G(a) for D_B
        d_update(bare, d_loss(D(reals, domains), D(fakes, domains)))
        g_update(bare, lambda: g_loss(outputs))
    return step


def sr_step(bare: Bare, config: TrainConfig) -> Callable[[], None]:
    G, D, targets, inputs = bare.generator, bare.discriminator, bare.reals, bare.inputs
    assert inputs is not None
    loss = config.loss

    def step() -> None:
        outputs = G(inputs)
        d_update(bare, d_loss(D(targets), D(outputs.detach())))
        g_update(bare, lambda: loss.content_weight * F.mse_loss(outputs, targets)
                 + loss.adv_weight * g_adversarial(D(outputs)))
    return step


BARE_STEPS: dict[str, Callable[[Bare, TrainConfig], Callable[[], None]]] = {
    "gan": gan_step,
    "gan-selfsupervised": lambda bare, config: gan_step(bare, config, reconstruct=True),
    "aae": aae_step,
    "paired": paired_step,
    "cycle": cycle_step,
    "super-resolution": sr_step,
}


def time_bare(step: Callable[[], None], device: torch.device, steps_per_chunk: int, seconds: float) -> Timing:
    """Chunks of `steps_per_chunk` steps until `seconds` are timed, after one chunk of warm-up."""
    def chunk() -> float:
        started = time.perf_counter()
        for _ in range(steps_per_chunk):
            step()
        if device.type == "cuda":  # the loop's tick ends read the device too, so both sides wait for it
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    chunk()
    timing = Timing()
    while timing.seconds < seconds or timing.steps < 2 * steps_per_chunk:
        timing.seconds += chunk()
        timing.steps += steps_per_chunk
    return timing


def steps_for(step: Callable[[], None], device: torch.device, seconds: float) -> int:
    """How many bare steps take about `seconds`: the size of a tick (and a bare chunk)."""
    step()  # first call: allocations, lazy initialisation
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < min(0.5, seconds):
        step()
        count += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rate = count / (time.perf_counter() - started)
    return max(2, round(rate * seconds))


# --- one family, all families -----------------------------------------------------------------------------------

def measure(family: str, root: Path, stores: dict[str, Path], args: argparse.Namespace) -> Row:
    kind = STORE_OF.get(family, "16")
    if kind not in stores:
        stores[kind] = make_store(kind, root)
    config = resolved_config(family, stores[kind], root / "runs", args.device)
    store = Store(stores[kind])
    manifest, shape = store.manifest, store.manifest.output_shape
    device = torch.device(args.device)
    bare = build_bare(config, store, device)
    step = BARE_STEPS[MODELS[family].scheme](bare, config)
    steps = steps_for(step, device, args.tick_seconds)
    per_round = args.seconds / args.rounds
    best_bare, best_ganforge, tick_ends = 0.0, 0.0, []
    for index in range(args.rounds):
        best_bare = max(best_bare, time_bare(step, device, steps, per_round).rate)
        timing, tick_end = time_ganforge(config, root / "runs" / f"{family}-{index}", steps, per_round)
        best_ganforge = max(best_ganforge, timing.rate)
        tick_ends.append(tick_end)
    px = f"{manifest.height}->{shape[1]}" if manifest.two_sided and manifest.height != shape[1] else str(shape[1])
    return Row(family, px, config.batch, best_ganforge, best_bare, 1000 * min(tick_ends))


def table(rows: list[Row]) -> str:
    lines = ["| family | px | batch | ganforge steps/s | bare steps/s | ratio | tick end ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.family} | {r.px} | {r.batch} | {r.ganforge:.1f} | {r.bare:.1f} | {r.ratio:.2f} | "
              f"{r.tick_end_ms:.0f} |" for r in rows]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(MODELS),
                        help=f"comma-separated, from: {', '.join(MODELS)} (default: all)")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per side and family, split "
                        "over the rounds (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of bare and ganforge; each keeps its "
                        "best round (default 2)")
    parser.add_argument("--tick-seconds", type=float, default=1.0, help="about how long a tick (and a bare chunk) "
                        "lasts, sized on the bare loop (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    unknown = [f for f in args.families.split(",") if f not in MODELS]
    if unknown:
        parser.error(f"no family {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if args.rounds < 1 or args.seconds <= 0 or args.tick_seconds <= 0:
        parser.error("--rounds, --seconds and --tick-seconds must be positive")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if torch.device(args.device).type == "cuda":  # as train() sets it, so the bare loop gets the same kernels
        torch.backends.cudnn.benchmark = True
    families = args.families.split(",")
    setting = (f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} torch thread(s), "
               f"{os.cpu_count()} CPUs, {args.seconds:g} s a side in {args.rounds} rounds")
    print(setting, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganforge-overhead-") as tmp:
        stores: dict[str, Path] = {}
        for family in families:
            row = measure(family, Path(tmp), stores, args)
            rows.append(row)
            print(f"{family:10s} ganforge {row.ganforge:8.1f} steps/s  bare {row.bare:8.1f} steps/s  "
                  f"ratio {row.ratio:.2f}  tick end {row.tick_end_ms:.0f} ms", flush=True)
    missed = [r.family for r in rows if r.ratio < TARGET_RATIO]
    print()
    print(table(rows))
    print()
    print(f"{setting}. Target ratio >= {TARGET_RATIO:.2f}: met by {len(rows) - len(missed)} of {len(rows)}"
          + (f"; missed by {', '.join(missed)}" if missed else ""))
    print("command: python benchmarks/overhead.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


if __name__ == "__main__":
    main()
