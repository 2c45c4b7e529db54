"""A small MNIST classifier that judges generated digits: how many are readable (confident) and is every class
drawn? Trained on real digits in a few seconds; used by the demo test and benchmarks/demo_quality.py."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def build_judge() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))


def train_judge(images: np.ndarray, labels: np.ndarray, epochs: int = 2, seed: int = 0) -> nn.Module:
    """uint8 [N, 1, 28, 28] digits and their labels -> a classifier (eval mode), ~98-99 % on MNIST's test set."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        judge = build_judge()
    x = torch.from_numpy(images).float() / 127.5 - 1
    y = torch.from_numpy(labels).long()
    optimizer = torch.optim.Adam(judge.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(128):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(judge(x[batch]), y[batch]).backward()
            optimizer.step()
    return judge.eval()


@dataclass(frozen=True)
class Verdict:
    confident: float  # fraction of images whose top class has probability >= the threshold
    class_fractions: list[float]  # fraction of images per predicted class 0..9

    def describe(self) -> str:
        classes = " ".join(f"{i}:{f:.0%}" for i, f in enumerate(self.class_fractions))
        return f"confident (p >= 0.9) {self.confident:.1%}; classes {classes}"


@torch.no_grad()
def judge_digits(judge: nn.Module, images: torch.Tensor, threshold: float = 0.9) -> Verdict:
    """uint8 [N, 1, 28, 28] generated digits -> how many the judge reads with confidence, and which classes."""
    probabilities = torch.softmax(judge(images.float() / 127.5 - 1), dim=1)
    top, classes = probabilities.max(dim=1)
    counts = torch.bincount(classes, minlength=10).float() / len(images)
    return Verdict(float((top >= threshold).float().mean()), counts.tolist())


@torch.no_grad()
def accuracy(judge: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    predictions = judge(torch.from_numpy(images).float() / 127.5 - 1).argmax(dim=1).numpy()
    return float((predictions == labels).mean())
