"""The D-feature probe: a linear classifier on features; far above chance on MNIST, at chance on shuffled labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data.store import Store, to_uint8
from ganforge.errors import DataError
from ganforge.metrics.probe import linear_probe, stratified_split
from ganforge.metrics.random_conv import RandomConvExtractor

from data_slices import slice_store

EXTRACTOR = RandomConvExtractor()


def random_conv_features(images: torch.Tensor) -> torch.Tensor:
    """A stand-in for a discriminator's features: takes float [-1, 1] images like D does."""
    return EXTRACTOR.extract(to_uint8(images))[0]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return slice_store(tmp_path_factory.mktemp("probe") / "mnist.gfs", "mnist", "train", 0, 2000, with_labels=True)


def test_probe_on_random_conv_features_is_far_above_chance_on_mnist(labelled: Store) -> None:
    result = linear_probe(random_conv_features, labelled)
    assert result.n_train == 1600 and result.n_test == 400 and result.n_classes == 10
    assert result.chance_accuracy < 0.15
    assert result.test_accuracy > 0.85


def test_probe_on_shuffled_labels_is_at_chance(labelled: Store) -> None:
    shuffled = np.random.default_rng(0).permutation(labelled.labels)
    result = linear_probe(random_conv_features, labelled, labels=shuffled)
    assert result.test_accuracy < result.chance_accuracy + 0.08


def test_stratified_split_holds_out_a_fifth_of_every_class() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, test = stratified_split(labels, 0.2, seed=1)
    assert np.bincount(labels[test]).tolist() == [2, 4, 6, 8]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    assert np.array_equal(stratified_split(labels, 0.2, seed=1)[1], test)


def test_probe_needs_labels(tmp_path: Path) -> None:
    store = slice_store(tmp_path / "unlabelled.gfs", "mnist", "train", 0, 50)
    with pytest.raises(DataError, match="no class labels"):
        linear_probe(random_conv_features, store)
