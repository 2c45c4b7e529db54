"""A small random convolutional feature extractor: deterministic, CPU-fast, needs no download.

Untrained conv nets with ReLUs still give features that separate image distributions (MNIST digits from
Fashion-MNIST clothes, one digit from another under a linear probe), which is all the tests and offline smoke
runs need. Scores from it are NOT comparable with Inception FIDs in papers; the protocol stamp says which
extractor made each number.

Architecture (input resized to 32x32 by antialiased bilinear, scaled to [-1, 1]):
    conv5x5 3->32, ReLU, avgpool 2   -> [B, 32, 16, 16]
    conv3x3 32->64, ReLU, avgpool 2  -> [B, 64, 8, 8]
    conv3x3 64->32, ReLU, avgpool to 4x4 -> [B, 32, 4, 4] -> 512 features
Weights are He-normal from torch.Generator(seed); the file_hash is the sha256 of the architecture string, the
seed and the generated weights, so it names exactly the function the features came from.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.metrics.features import FeatureExtractor, to_rgb_float

INPUT_SIZE = 32
ARCHITECTURE = "random-conv-v1:3x32@32[c5,32,p2][c3,64,p2][c3,32,a4]"
DEFAULT_SEED = 0
# (in, out, kernel) of the three convolutions
_LAYERS = ((3, 32, 5), (32, 64, 3), (64, 32, 3))


class RandomConvExtractor(FeatureExtractor):
    name = "random-conv"
    has_logits = False
    resize = f"torch-bilinear-aa-{INPUT_SIZE}"

    def __init__(self, seed: int = DEFAULT_SEED, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        generator = torch.Generator().manual_seed(seed)
        self.weights: list[tuple[torch.Tensor, torch.Tensor]] = []
        digest = hashlib.sha256(f"{ARCHITECTURE}|seed={seed}".encode())
        for c_in, c_out, kernel in _LAYERS:
            fan_in = c_in * kernel * kernel
            w = torch.randn(c_out, c_in, kernel, kernel, generator=generator) * (2.0 / fan_in) ** 0.5
            b = torch.randn(c_out, generator=generator) * 0.1  # small biases so ReLUs cut at varied levels
            digest.update(w.numpy().tobytes())
            digest.update(b.numpy().tobytes())
            self.weights.append((w.to(device), b.to(device)))
        self.file_hash = "sha256:" + digest.hexdigest()
        self.feature_dim = _LAYERS[-1][1] * 4 * 4
        self.device = device
        self.seed = seed

    def extract(self, images_uint8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = to_rgb_float(images_uint8, self.device)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=True)
        x = x / 127.5 - 1.0
        with torch.no_grad():
            (w1, b1), (w2, b2), (w3, b3) = self.weights
            x = F.avg_pool2d(F.relu(F.conv2d(x, w1, b1, padding=2)), 2)
            x = F.avg_pool2d(F.relu(F.conv2d(x, w2, b2, padding=1)), 2)
            x = F.adaptive_avg_pool2d(F.relu(F.conv2d(x, w3, b3, padding=1)), 4)
        return x.flatten(1), None


def load_random_conv(path: str | os.PathLike[str] | None = None, device: torch.device | str = "cpu",
                     allow_download: bool = False, cache_dir: str | os.PathLike[str] | None = None,
                     seed: int = DEFAULT_SEED) -> RandomConvExtractor:
    """The registry's loader; random-conv has no weights file, so `path` must be None."""
    del allow_download, cache_dir  # nothing to find or download
    if path is not None:
        raise ConfigError(f"the random-conv extractor generates its weights from a seed and takes no file "
                          f"(got {path}); use --extractor inception to load Inception weights.")
    return RandomConvExtractor(seed, device)
