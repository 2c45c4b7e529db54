"""`ganforge bench`: training throughput of ganforge's loop against a textbook loop and the device's peak.

All three numbers come from one process on one device, so their ratios hold even on a noisy machine:
- ganforge: the real `train()` loop on a random store (first tick skipped as warm-up), with the chosen precision;
- reference: the PyTorch-example DCGAN loop (eager, fp32, BCELoss on sigmoid outputs) on the same networks;
- peak: a large matmul in the training dtype, and the training FLOPs per image counted by torch's FlopCounterMode.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ganforge.config import ModelConfig, TrainConfig
from ganforge.data.store import Manifest, Store, content_fingerprint, write_store
from ganforge.device import flush_denormals, resolve_device
from ganforge.models import build_networks
from ganforge.recipes.presets import MODEL_RECIPES, preset_overrides
from ganforge.training import DTYPES, train


@dataclass
class BenchResult:
    ganforge_img_per_s: float
    reference_img_per_s: float
    gflop_per_img: float
    peak_gflop_per_s: float
    peak_mem_gb: float

    @property
    def ratio(self) -> float:
        return self.ganforge_img_per_s / self.reference_img_per_s

    @property
    def fraction_of_peak(self) -> float:
        return self.ganforge_img_per_s * self.gflop_per_img / self.peak_gflop_per_s

    def report(self) -> str:
        return (f"ganforge   {self.ganforge_img_per_s:9.1f} img/s\n"
                f"reference  {self.reference_img_per_s:9.1f} img/s (textbook eager fp32 loop)\n"
                f"ratio      {self.ratio:9.2f}\n"
                f"work       {self.gflop_per_img:9.2f} GFLOP per training image\n"
                f"peak       {self.peak_gflop_per_s:9.0f} GFLOP/s (probe) -> {self.fraction_of_peak:.0%} of peak\n"
                f"memory     {self.peak_mem_gb:9.2f} GB peak")


def random_store(path: Path, resolution: int, channels: int = 3, count: int = 2048) -> Store:
    images = np.random.default_rng(0).integers(0, 256, (count, channels, resolution, resolution), dtype=np.uint8)
    labels = np.zeros(count, np.int64)
    write_store(path, images, labels,
                Manifest(count, channels, resolution, resolution, [], content_fingerprint(images, labels)))
    return Store(path)


def ganforge_throughput(config: TrainConfig, store: Store, workdir: Path) -> float:
    run_dir = workdir / "run"
    run_dir.mkdir()
    train(config, run_dir, store, progress=False, echo=lambda _: None)
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    timed = rows[1:]  # the first tick pays for warm-up
    seconds = sum(r["sec_per_tick"] for r in timed)
    return (timed[-1]["nimg"] - rows[0]["nimg"]) / seconds


def textbook_step(G: torch.nn.Module, D: torch.nn.Module, opt_g: torch.optim.Optimizer,
                  opt_d: torch.optim.Optimizer, reals: torch.Tensor, z_dim: int) -> None:
    """The PyTorch DCGAN example's iteration: BCE on sigmoid(D), D on real then fake.detach(), then G."""
    bce = torch.nn.BCELoss()
    ones = torch.ones(reals.shape[0], device=reals.device)
    fakes = G(torch.randn(reals.shape[0], z_dim, device=reals.device))
    opt_d.zero_grad()
    (bce(torch.sigmoid(D(reals)), ones) + bce(torch.sigmoid(D(fakes.detach())), 1 - ones)).backward()
    opt_d.step()
    opt_g.zero_grad()
    bce(torch.sigmoid(D(fakes)), ones).backward()
    opt_g.step()


def reference_throughput(config: TrainConfig, store: Store, device: torch.device, seconds: float = 20.0
                         ) -> tuple[float, float]:
    """(img/s, GFLOP per image) of the textbook loop on the same architecture."""
    nets = build_networks(config.model, store.manifest.shape)
    G, D = nets.generator.to(device), nets.discriminator.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    images = torch.from_numpy(store.images).to(device)

    def batch() -> torch.Tensor:
        idx = torch.randint(0, len(images), (config.batch,), device=device)
        return images[idx].float() / 127.5 - 1

    with FlopCounterMode(display=False) as counter:
        textbook_step(G, D, opt_g, opt_d, batch(), config.model.z_dim)
    gflop_per_img = counter.get_total_flops() / config.batch / 1e9
    for _ in range(3):  # warm-up
        textbook_step(G, D, opt_g, opt_d, batch(), config.model.z_dim)
    _sync(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        textbook_step(G, D, opt_g, opt_d, batch(), config.model.z_dim)
        steps += 1
    _sync(device)
    return steps * config.batch / (time.perf_counter() - start), gflop_per_img


def peak_gflop_per_s(device: torch.device, precision: str, repeats: int = 10) -> float:
    """The faster of a 2048^3 matmul and a 256-channel 3x3 convolution in the training dtype."""
    dtype = DTYPES[precision] if precision != "fp16" or device.type == "cuda" else torch.bfloat16
    a, b = (torch.randn(2048, 2048, device=device, dtype=dtype) for _ in range(2))
    x = torch.randn(32, 256, 32, 32, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    probes = [(lambda: a @ b, 2 * 2048**3), (lambda: torch.nn.functional.conv2d(x, w, padding=1),
                                             2 * 256 * 256 * 9 * 32 * 32 * 32)]
    best = 0.0
    for probe, flops in probes:
        probe()
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            probe()
        _sync(device)
        best = max(best, flops * repeats / (time.perf_counter() - start) / 1e9)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def recipe_model(name: str) -> ModelConfig:
    """The networks `ganforge train --model NAME` builds: a family with a paper recipe gets the recipe's widths
    and latent size (stylegan2: config F), the others the defaults. Losses and regularizers stay the textbook's."""
    overrides = preset_overrides(name) if name in MODEL_RECIPES else {}
    return ModelConfig(**{**{path[1]: value for path, value in overrides.items() if path[0] == "model"},
                          "name": name})


def default_kimg(device_name: str) -> float:
    """Long enough for ticks of a few seconds at the device's usual speed (~500 img/s on a CPU, ~20k on a GPU)."""
    return 100.0 if resolve_device(device_name).type == "cuda" else 2.0


def run_bench(model: str, resolution: int, batch: int, precision: str, channels_last: bool, kimg: float,
              device_name: str = "auto", reference_seconds: float = 20.0, *, compile_: bool = False) -> BenchResult:
    device = resolve_device(device_name)
    flush_denormals()
    with tempfile.TemporaryDirectory() as tmp:
        store = random_store(Path(tmp) / "bench.gfs", resolution)
        config = TrainConfig(data=str(store.path), model=recipe_model(model), kimg=kimg, batch=batch,
                             tick_kimg=kimg / 4, snap=10_000, device=device_name, precision=precision,
                             channels_last=channels_last, compile=compile_)
        ours = ganforge_throughput(config, store, Path(tmp))
        reference, gflop = reference_throughput(config, store, device, reference_seconds)
    if device.type == "cuda":
        memory = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return BenchResult(ours, reference, gflop, peak_gflop_per_s(device, precision), memory)
