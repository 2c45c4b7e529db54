"""The protocol stamp: everything needed to tell whether two scores are comparable, attached to each score.

A FID is only meaningful next to another FID computed with the same network weights, input resize, sample
counts and reference set; StyleGAN's metric names (`fid50k_full`) encode part of this, the stamp records all
of it. The evaluate command prints and saves these dicts as they are.
"""

from __future__ import annotations

from typing import Any

from ganforge.metrics.features import FeatureExtractor
from ganforge.version import __version__


def protocol_stamp(metric: str, scores: dict[str, float], *, n_real: int | None, n_fake: int,
                   extractor: FeatureExtractor, dataset_fingerprint: str | None,
                   options: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One score with its protocol: {"metric", "scores", n_real, n_fake, extractor, ..., "ganforge_version"}.

    `extra` takes what a caller knows beyond the protocol (source descriptions, cache hits, wall time).
    """
    stamp: dict[str, Any] = {
        "metric": metric,
        "scores": dict(scores),
        "n_real": n_real,  # None for metrics that look at generated images only (IS)
        "n_fake": n_fake,
        **extractor.describe(),
        "dataset_fingerprint": dataset_fingerprint,  # the real set's content hash, None when unknown
        "options": dict(options or {}),
        "ganforge_version": __version__,
    }
    stamp.update(extra)
    return stamp


REQUIRED_KEYS = ("metric", "scores", "n_real", "n_fake", "extractor", "extractor_hash", "resize",
                 "dataset_fingerprint", "ganforge_version")
