"""A trained generator as a notebook uses it: `G = ganforge.load_generator(path)`, then `G.sample(16, seed=0)`.

It wraps whatever `ganforge.runs` loaded (a run folder's latest EMA weights, an exported folder in any format,
or a Hugging Face-style folder or repo) with the seed convention of `ganforge generate`: image i of
`sample(n, seed=s)` is seed s + i, the same image `ganforge generate RUN --seeds s-...` draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.device import resolve_device
from ganforge.errors import ConfigError
from ganforge.explore.directions import Directions, edited_images, load_directions
from ganforge.export.hub import resolve_model_path
from ganforge.generate import MAX_IMAGES, SEED_MAX, check_truncation, render, seed_latents, truncation_space
from ganforge.runs import load_generator as load_loaded


class Generator:
    """z ~ N(0, I) [N, z_dim] (and class labels for a conditional run) -> uint8 images [N, C, H, W]."""

    def __init__(self, module: nn.Module, config: TrainConfig, nimg: int, source: Path) -> None:
        self.module = module
        self.config = config
        self.nimg = nimg  # real images shown to D when the weights were saved
        self.source = source

    @property
    def z_dim(self) -> int:
        return self.config.model.z_dim

    @property
    def num_classes(self) -> int:
        """Classes of a conditional run (0 for an unconditional one)."""
        return self.config.model.num_classes if self.config.model.conditional else 0

    @property
    def device(self) -> torch.device:
        parameter = next(self.module.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def to(self, device: torch.device | str) -> Generator:
        """Move the weights (an ONNX or TorchScript export runs where its runtime does)."""
        self.module = self.module.to(device)
        return self

    @torch.no_grad()
    def sample(self, n: int | None = None, *, seed: int = 0, z: torch.Tensor | None = None,
               labels: torch.Tensor | list[int] | int | None = None, truncation: float = 1.0,
               batch: int = 64) -> torch.Tensor:
        """uint8 [N, C, H, W] on the CPU: `n` images from seeds seed..seed+n-1, or one per row of `z`.

        labels: a conditional run's classes, one per image or one for all; by default the classes in turn.
        truncation: psi, as `ganforge generate --truncation`.
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"sample(batch=...) is the images per forward pass, at least 1; got {batch!r}")
        if z is None:
            if n is None or not 1 <= n <= MAX_IMAGES or not 0 <= seed <= SEED_MAX - n + 1:
                raise ConfigError(f"sample(n, seed=...) needs 1 <= n <= {MAX_IMAGES} and seeds within 0-{SEED_MAX}, "
                                  f"got n={n}, seed={seed}")
            z = seed_latents(list(range(seed, seed + n)), self.z_dim)
        elif z.dim() != 2 or z.shape[1] != self.z_dim or (n is not None and n != z.shape[0]):
            raise ConfigError(f"z must be [N, {self.z_dim}] (N = n when both are given), got {list(z.shape)}")
        psi = check_truncation(self.config, truncation, "truncation")
        z = z.float().cpu()
        return render(self.module, z, batch, labels=self._labels(labels, z.shape[0]), psi=psi,
                      space=truncation_space(self.config))

    @torch.no_grad()
    def edit(self, edits: Sequence[tuple[Directions | str | Path, dict[int, float]]], *, n: int | None = None,
             seed: int = 0, z: torch.Tensor | None = None, w: torch.Tensor | None = None,
             labels: torch.Tensor | list[int] | int | None = None, truncation: float = 1.0) -> torch.Tensor:
        """uint8 [N, C, H, W]: the images of seeds seed..seed+n-1 (or of `z`, or of a style-based G's `w`
        [N, w_dim], e.g. a projected photo's) moved along directions from `ganforge directions`: `edits` pairs a
        directions folder (or loaded Directions) with {direction index: amount in its scale}, e.g.
        `G.edit([("dirs", {0: 2.0})], n=8)`."""
        loaded = [(d if isinstance(d, Directions) else load_directions(Path(d)), dict(a)) for d, a in edits]
        if w is not None:
            if z is not None or w.dim() != 2:
                raise ConfigError("edit(w=...) takes w [N, w_dim] alone (no z)")
            latents = w.float().cpu()
        elif z is None:
            latents = self.sample_latents(n, seed)
        else:
            latents = z.float().cpu()
        if w is None and (latents.dim() != 2 or latents.shape[1] != self.z_dim):
            raise ConfigError(f"z must be [N, {self.z_dim}], got {list(latents.shape)}")
        psi = check_truncation(self.config, truncation, "truncation")
        return edited_images(self.module, latents, loaded, self._labels(labels, latents.shape[0]), psi,
                             in_w=w is not None)

    def sample_latents(self, n: int | None, seed: int) -> torch.Tensor:
        """z [n, z_dim] of seeds seed..seed+n-1, as `sample` draws them."""
        if n is None or not 1 <= n <= MAX_IMAGES or not 0 <= seed <= SEED_MAX - n + 1:
            raise ConfigError(f"n and seed: 1 <= n <= {MAX_IMAGES} and seeds within 0-{SEED_MAX}, got n={n}, "
                              f"seed={seed}")
        return seed_latents(list(range(seed, seed + n)), self.z_dim)

    def _labels(self, labels: torch.Tensor | list[int] | int | None, count: int) -> torch.Tensor | None:
        if not self.num_classes:
            if labels is not None:
                raise ConfigError(f"labels need a class-conditional run; {self.source} was trained without --cond")
            return None
        if labels is None:
            return torch.arange(count) % self.num_classes
        tensor = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        tensor = tensor.expand(count) if tensor.numel() == 1 else tensor
        if tensor.numel() != count or tensor.min() < 0 or tensor.max() >= self.num_classes:
            raise ConfigError(f"labels must be {count} class numbers in 0-{self.num_classes - 1} (or one for all)")
        return tensor

    def __repr__(self) -> str:
        return f"Generator({self.config.model.name} from {self.source}, z_dim {self.z_dim}, {self.nimg / 1000:g} kimg)"


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> Generator:
    """A run folder, an exported folder (any format), a Hugging Face-style model folder, or, with the
    huggingface_hub extra, a Hub repo id ("user/name") already in the local cache or downloadable (a generator's
    files only). A string a local path could mean ("runs/00001-dcgan-mnsit") is a missing folder, never a repo id."""
    if isinstance(device, str):
        device = resolve_device(device)  # "tpu" is one line before any file is read, not torch's traceback
    folder = resolve_model_path(path)
    module, config, nimg = load_loaded(folder, device)
    return Generator(module, config, nimg, folder)
