"""Inception Score: 1 for uninformative predictions, K for confident predictions spread over K classes."""

from __future__ import annotations

import pytest
import torch

from ganforge.errors import ConfigError
from ganforge.metrics.isc import inception_score, inception_score_from_probabilities, require_logits
from ganforge.metrics.random_conv import RandomConvExtractor


def test_is_of_uniform_predictions_is_one() -> None:
    mean, std = inception_score(torch.zeros(1000, 1008), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_is_of_confident_distinct_predictions_is_the_number_of_classes(classes: int) -> None:
    labels = torch.arange(100 * classes) % classes  # every split of 10 holds every class equally often
    logits = torch.full((len(labels), classes), -50.0)
    logits[torch.arange(len(labels)), labels] = 50.0
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(classes, rel=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)


def test_is_from_probabilities_agrees_with_logits() -> None:
    logits = torch.randn(500, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    from_logits = inception_score(logits, splits=5)
    from_probs = inception_score_from_probabilities(torch.softmax(logits, dim=1), splits=5)
    assert from_logits == pytest.approx(from_probs, rel=1e-9)


def test_is_without_logits_says_it_needs_a_classifier_head() -> None:
    with pytest.raises(ConfigError, match="logits"):
        inception_score(None)
    with pytest.raises(ConfigError, match="inception-2015-12-05.pt"):
        require_logits(RandomConvExtractor())
