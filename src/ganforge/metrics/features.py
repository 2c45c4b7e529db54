"""Feature extractors: the networks every sample-quality metric looks through, and a registry to load them by name.

An extractor takes uint8 images exactly as a store or a generator produces them ([B, C, H, W], C = 1 or 3) and
owns everything between those pixels and its features: grey -> RGB, the resize and the value scaling. Metrics
only ever see the feature vectors, so the protocol (which network, which weights, which resize) is a property
of the extractor and is stamped into every score (see protocol.py).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ganforge.errors import ConfigError, DataError
from ganforge.progress import progress as progress_of
from ganforge.regular_files import open_regular


class FeatureExtractor(ABC):
    """A fixed network from uint8 images to feature vectors (and class logits when it has a classifier head)."""

    name: str  # registry name, e.g. "inception"
    file_hash: str  # "sha256:<hex>" of the weights file, or a stable id for generated weights
    feature_dim: int
    has_logits: bool
    resize: str  # how images reach the network's input size, e.g. "pil-bicubic-299"
    device: torch.device

    @abstractmethod
    def extract(self, images_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 [B, C, H, W] -> (features float32 [B, D], logits float32 [B, K] or None), on self.device."""

    def describe(self) -> dict[str, str | int | bool]:
        """The identity that goes into protocol stamps and cache keys."""
        return {"extractor": self.name, "extractor_hash": self.file_hash, "feature_dim": self.feature_dim,
                "resize": self.resize}


def check_uint8_images(images: torch.Tensor, where: str) -> None:
    """Reject anything that is not uint8 [B, 1|3, H, W]: a float batch here means a caller forgot to_uint8."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"{where}: expected uint8 images [B, 1 or 3, H, W], got {images.dtype} "
                        f"{list(images.shape)}; convert generator output with ganforge.data.store.to_uint8.")


def to_rgb_float(images_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [B, 1|3, H, W] -> float32 [B, 3, H, W] in [0, 255] on `device`; grey repeats into R, G and B."""
    x = images_uint8.to(device, non_blocking=True).to(torch.float32)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def sha256_file(path: str | os.PathLike[str]) -> str:
    """'sha256:<hex>' of a file, memoised by (path, size, mtime) so repeated loads do not re-read 90 MB."""
    stat = os.stat(path)
    key = (os.fspath(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_MEMO:
        digest = hashlib.sha256()
        with open_regular(Path(path)) as f:  # --inception naming a FIFO must not block for good
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASH_MEMO[key] = "sha256:" + digest.hexdigest()
    return _HASH_MEMO[key]


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


# ---------------------------------------------------------------------------------------------------------------
# Registry. Loaders are named as "module:function" and imported on first use, so that importing ganforge.metrics
# never loads 90 MB of weights or optional packages.

ExtractorLoader = Callable[..., FeatureExtractor]
_REGISTRY: dict[str, str] = {
    "inception": "ganforge.metrics.inception:load_inception",
    "random-conv": "ganforge.metrics.random_conv:load_random_conv",
}


def extractor_names() -> list[str]:
    return sorted(_REGISTRY)


def load_extractor(name: str = "inception", path: str | os.PathLike[str] | None = None,
                   device: str | torch.device = "cpu", *, allow_download: bool = False,
                   cache_dir: str | os.PathLike[str] | None = None) -> FeatureExtractor:
    """Load a registered extractor; `path` overrides where its weights come from (see each loader)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature extractor {name!r}; choose one of {', '.join(extractor_names())}.")
    module_name, func_name = _REGISTRY[name].split(":")
    loader: ExtractorLoader = getattr(importlib.import_module(module_name), func_name)
    return loader(path=path, device=torch.device(device), allow_download=allow_download, cache_dir=cache_dir)


# ---------------------------------------------------------------------------------------------------------------


@dataclass
class FeatureSet:
    """Features of one image set, on the CPU; FID's statistics are computed once and kept."""

    features: torch.Tensor  # float32 [N, D]
    logits: torch.Tensor | None = None  # float32 [N, K]
    _stats: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu float64 [D], sigma float64 [D, D]) of the features, the Gaussian FID compares."""
        if self._stats is None:
            from ganforge.metrics.fid import feature_statistics  # fid.py imports nothing from here

            self._stats = feature_statistics(self.features)
        return self._stats


@torch.no_grad()
def extract_features(extractor: FeatureExtractor, batches: Iterable[torch.Tensor], total: int | None = None,
                     *, progress: bool = False, desc: str = "features") -> FeatureSet:
    """Run every batch through the extractor and gather the results on the CPU (one transfer per batch)."""
    features: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    with progress_of(total=total, desc=desc, enabled=progress) as bar:
        for batch in batches:
            check_uint8_images(batch, desc)
            f, lg = extractor.extract(batch)
            features.append(f.float().cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
            bar.update(batch.shape[0])
    if not features:
        raise DataError(f"{desc}: the image source produced no images; check that it is not empty.")
    stacked = torch.cat(features)
    if not torch.isfinite(stacked).all():
        raise DataError(f"{desc}: the extractor produced NaN or infinite features; check the input images.")
    return FeatureSet(stacked, torch.cat(logits) if logits else None)
