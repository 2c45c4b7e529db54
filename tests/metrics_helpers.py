"""Helpers shared by the metrics tests (no tests here): a tiny stand-in for NVIDIA's Inception file."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch


class _TinyNvidiaLike(torch.nn.Module):
    """The shape of NVIDIA's inception-2015-12-05.pt (`layers` to [B, 2048, 1, 1], `output` 2048 -> 1008),
    with a few parameters instead of 24 M, so the loader's paths can be tested without the real file."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.AvgPool2d(37, 37), torch.nn.Conv2d(3, 2048, 1),
                                          torch.nn.AvgPool2d(8, 8))
        self.output = torch.nn.Linear(2048, 1008)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.output(self.layers(img).reshape(-1, 2048))


def script_and_save(module: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch 2.13 deprecates torch.jit
        torch.jit.script(module).save(str(path))
    return path


def tiny_inception_file(path: Path) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return script_and_save(_TinyNvidiaLike(), path)
