"""Discriminator-feature probe (Radford et al. 2016, DCGAN, section 5.1): how linearly separable are the classes
in the features a network learnt? Extract features of a labelled store, split train/test, standardise, fit a
multinomial logistic regression and report accuracies next to chance.

The regression is full-batch L-BFGS on cross-entropy + weight_decay/2 |W|^2 (bias not penalised), in float64 on
the CPU: deterministic and fast for the few thousand x few thousand problems a probe is. No sklearn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.data.store import Store, to_float
from ganforge.errors import ConfigError, DataError

FeatureFn = Callable[[torch.Tensor], torch.Tensor]  # float images in [-1, 1] [B, C, H, W] -> [B, F]


@dataclass
class ProbeResult:
    train_accuracy: float
    test_accuracy: float
    chance_accuracy: float  # always predicting the test split's most common class
    n_train: int
    n_test: int
    n_classes: int
    feature_dim: int
    weight_decay: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stratified_split(labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: each class shuffled (seeded) and its first test_fraction held out."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(members) * test_fraction))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@torch.no_grad()
def extract_probe_features(feature_fn: FeatureFn, store: Store, n: int | None = None, batch_size: int = 256,
                           device: torch.device | str = "cpu") -> torch.Tensor:
    """feature_fn over the first n images of the store, fed as float [-1, 1] on `device`; [N, F] on the CPU."""
    chunks = []
    for batch in store.iter_uint8(batch_size, n):
        features = feature_fn(to_float(batch.to(device)))
        chunks.append(features.reshape(features.shape[0], -1).to("cpu", torch.float64))
    return torch.cat(chunks)


def fit_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                     weight_decay: float = 1e-3, max_iter: int = 200) -> ProbeResult:
    """Standardise with the train split's statistics, fit softmax regression, score both splits."""
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-8)  # constant features become 0, not NaN
    xs_train, xs_test = (train_x - mean) / std, (test_x - mean) / std
    weight = torch.zeros(xs_train.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(xs_train @ weight + bias, train_y) + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        train_acc = ((xs_train @ weight + bias).argmax(1) == train_y).double().mean()
        test_acc = ((xs_test @ weight + bias).argmax(1) == test_y).double().mean()
    chance = torch.bincount(test_y, minlength=n_classes).max() / len(test_y)
    return ProbeResult(float(train_acc), float(test_acc), float(chance), len(train_y), len(test_y), n_classes,
                       xs_train.shape[1], weight_decay)


def linear_probe(feature_fn: FeatureFn, store: Store, *, n: int | None = None, labels: np.ndarray | None = None,
                 split: tuple[np.ndarray, np.ndarray] | None = None, test_fraction: float = 0.2, seed: int = 0,
                 weight_decay: float = 1e-3, max_iter: int = 200, batch_size: int = 256,
                 device: torch.device | str = "cpu") -> ProbeResult:
    """Probe feature_fn (e.g. D's penultimate layer) on the first n labelled images of `store`.

    labels: override the store's labels (e.g. shuffled, for a chance-level control).
    split: (train_indices, test_indices) to use instead of a seeded stratified 80/20 split.
    """
    count = len(store) if n is None else min(n, len(store))
    y_all = np.asarray(store.labels[:count] if labels is None else labels[:count], dtype=np.int64)
    if labels is None and not store.manifest.has_labels:
        raise DataError(f"{store.path} has no class labels; the probe needs a labelled store "
                        "(prepare one from folder-per-class data).")
    if len(y_all) < count or y_all.min() < 0:
        raise ConfigError(f"need {count} non-negative labels, got {len(y_all)} (min {y_all.min()}).")
    train_idx, test_idx = split if split is not None else stratified_split(y_all, test_fraction, seed)
    features = extract_probe_features(feature_fn, store, count, batch_size, device)
    y = torch.from_numpy(y_all)
    return fit_linear_probe(features[train_idx], y[train_idx], features[test_idx], y[test_idx], weight_decay,
                            max_iter)
