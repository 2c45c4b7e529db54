"""Images from a trained run: load G (the EMA copy when the run kept one) and render latents drawn per seed.

Each seed fixes one latent, z = randn(z_dim) from a generator seeded with it, so image 7 is the same image
whatever else is generated beside it, on any device.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data.store import to_uint8
from ganforge.errors import CheckpointError, ConfigError
from ganforge.images import make_grid, save_png, to_pil
from ganforge.models import build_networks
from ganforge.training import checkpoint as ckpt
from ganforge.training.rundir import read_run_config

MAX_IMAGES = 100_000


def parse_seeds(text: str) -> list[int]:
    """'0-3,10' -> [0, 1, 2, 3, 10]; ranges are inclusive, as in StyleGAN's tools."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ConfigError(f"--seeds: cannot read {part!r}; write seeds like 0-63 or 1,5,9 or 0-9,100")
        start, end = int(match.group(1)), int(match.group(2) or match.group(1))
        if end < start:
            raise ConfigError(f"--seeds: range {part!r} runs backwards; write {end}-{start}")
        seeds.extend(range(start, end + 1))
        if len(seeds) > MAX_IMAGES:
            raise ConfigError(f"--seeds asks for more than {MAX_IMAGES} images")
    if not seeds:
        raise ConfigError("--seeds is empty; give seeds like 0-63")
    return seeds


def load_generator(run_dir: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, TrainConfig, int]:
    """(G in eval mode, the run's config, images it was trained on) from a run folder's latest checkpoint."""
    run_dir = Path(run_dir)
    config, dataset = read_run_config(run_dir)
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise CheckpointError(f"{run_dir} has no checkpoint yet; train longer or wait for the first --snap.")
    tensors, meta = ckpt.load_checkpoint(latest)
    shape = tuple(dataset["shape"])
    generator = build_networks(config.model, (shape[0], shape[1], shape[2])).generator
    prefix = "G_ema" if any(k.startswith("G_ema.") for k in tensors) else "G"
    ckpt.load_module(prefix, generator, tensors)
    return generator.to(device).eval(), config, int(meta["counters"]["cur_nimg"])


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


@torch.no_grad()
def render(generator: nn.Module, latents: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """uint8 [N, C, H, W] images for latents [N, z_dim], in batches."""
    device = next(generator.parameters()).device
    return torch.cat([to_uint8(generator(z.to(device))).cpu() for z in latents.split(batch)])


def write_images(images: torch.Tensor, seeds: list[int], out: Path, run_dir: Path, columns: int | None) -> list[Path]:
    """A grid when `out` ends in .png, else one seedNNNN.png per image in the folder `out`."""
    if out.suffix.lower() == ".png":
        text = {"run": str(run_dir), "seeds": ",".join(map(str, seeds)) if len(seeds) <= 1024 else "many"}
        save_png(make_grid(images, columns), out, text)
        return [out]
    written = []
    for seed, image in zip(seeds, images, strict=True):
        path = out / f"seed{seed:04d}.png"
        save_png(to_pil(image.permute(1, 2, 0).numpy()), path, {"run": str(run_dir), "seed": str(seed)})
        written.append(path)
    return written
