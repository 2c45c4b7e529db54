"""Score generated images against real ones: extract features once per set, run the asked metrics, stamp each.

    results = evaluate_sets("mnist.gfs", fake_batches, ["fid", "kid", "pr"], n=10_000)

Metric names: fid, kid, is, pr. Real features are cached on disk (cache.py) when the real source has a content
fingerprint, so a second evaluation against the same store only pays for the generated images. `extract_sets`
is the extracting half alone, for a caller that reads the features for more than the scores; `score_features`
the scoring half, for features extracted elsewhere (sharded over processes during training).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ganforge.errors import ConfigError, DataError
from ganforge.metrics import cache as feature_cache
from ganforge.metrics.features import FeatureExtractor, FeatureSet, extract_features, load_extractor
from ganforge.metrics.fid import frechet_distance
from ganforge.metrics.isc import inception_score, require_logits
from ganforge.metrics.kid import kernel_inception_distance
from ganforge.metrics.prc import precision_recall
from ganforge.metrics.protocol import protocol_stamp
from ganforge.metrics.sources import ImageSource, SourceLike, as_source


@dataclass(frozen=True)
class MetricOptions:
    """Settings of the metrics themselves; recorded in each stamp's "options"."""

    seed: int = 0  # KID's subset draws
    kid_subsets: int = 100  # Bińkowski et al.: 100 subsets of 1000
    kid_subset_size: int = 1000  # clipped to min(n_real, n_fake)
    is_splits: int = 10  # Salimans et al.: 10 splits
    pr_k: int = 3  # Kynkäänniemi et al.: k = 3

    def __post_init__(self) -> None:
        if self.kid_subsets < 1 or self.kid_subset_size < 2 or self.is_splits < 1 or self.pr_k < 1:
            raise ConfigError(f"invalid metric options {asdict(self)}: subsets, splits and k must be >= 1 and "
                              "the KID subset size >= 2.")


MetricFn = Callable[[FeatureSet | None, FeatureSet, MetricOptions, torch.device],
                    tuple[dict[str, float], dict[str, Any]]]


def _fid(real: FeatureSet | None, fake: FeatureSet, options: MetricOptions, device: torch.device
         ) -> tuple[dict[str, float], dict[str, Any]]:
    assert real is not None
    smaller, dimensions = min(len(real), len(fake)), real.features.shape[1]
    stamp = {}
    if smaller < dimensions:
        stamp["warning"] = (f"{smaller} images per set, fewer than the {dimensions} feature dimensions: the "
                            "covariances are singular and FID reads high; compare only at equal n, and use "
                            "n >= 10000 for numbers to publish")
    return {"fid": frechet_distance(*real.statistics(), *fake.statistics())}, stamp


def _kid(real: FeatureSet | None, fake: FeatureSet, options: MetricOptions, device: torch.device
         ) -> tuple[dict[str, float], dict[str, Any]]:
    assert real is not None
    smaller = min(len(real), len(fake))
    if smaller < options.kid_subset_size:
        # Every "random subset" would be the whole smaller set, so 100 of them are one estimate repeated and
        # their spread says nothing: report that one estimate, and say so in the stamp.
        mean, _, size = kernel_inception_distance(real.features, fake.features, 1, smaller, options.seed, device)
        return {"kid": mean}, {"subsets": 1, "subset_size": size, "seed": options.seed,
                               "kernel": "poly3 (x.y/d + 1)^3",
                               "warning": f"{smaller} images per set, fewer than the subset size "
                                          f"{options.kid_subset_size}: one estimate on all of them, no kid_std; "
                                          "use n >= 1000 for the standard protocol"}
    mean, std, size = kernel_inception_distance(real.features, fake.features, options.kid_subsets,
                                                options.kid_subset_size, options.seed, device)
    return {"kid": mean, "kid_std": std}, {"subsets": options.kid_subsets, "subset_size": size,
                                            "seed": options.seed, "kernel": "poly3 (x.y/d + 1)^3"}


def _is(real: FeatureSet | None, fake: FeatureSet, options: MetricOptions, device: torch.device
        ) -> tuple[dict[str, float], dict[str, Any]]:
    mean, std = inception_score(fake.logits, options.is_splits)
    stamp: dict[str, Any] = {"splits": options.is_splits}
    if len(fake) < IS_MIN_N:
        stamp["warning"] = (f"{len(fake)} images: the Inception Score's protocol uses 50,000 in 10 splits, and "
                            f"below {IS_MIN_N} it reads low; compare only at equal n")
    return {"is": mean, "is_std": std}, stamp


def _pr(real: FeatureSet | None, fake: FeatureSet, options: MetricOptions, device: torch.device
        ) -> tuple[dict[str, float], dict[str, Any]]:
    assert real is not None
    if min(len(real), len(fake)) <= options.pr_k:  # a set smaller than n asked for (a small folder) lands here
        raise DataError(f"precision/recall compares each image with its {options.pr_k} nearest neighbours, so it "
                        f"needs more than {options.pr_k} images per set; got {len(real)} real and {len(fake)} "
                        "generated: use more images (--n)")
    precision, recall = precision_recall(real.features, fake.features, options.pr_k, device)
    stamp = {"k": options.pr_k, "features": "the stamp's extractor (Kynkäänniemi et al. 2019 used VGG-16 fc2; "
                                            "scores from different feature networks are not comparable)"}
    smaller = min(len(real), len(fake))
    if smaller < PR_MIN_N:
        stamp["warning"] = (f"{smaller} images per set: k-nearest-neighbour manifolds on fewer than {PR_MIN_N} "
                            "are coarse; compare only at equal n")
    return {"precision": precision, "recall": recall}, stamp


PR_MIN_N = 1000  # below this, precision/recall's k-NN balls are coarse (the paper uses 50,000)
IS_MIN_N = 5000  # below this, 10 splits of the Inception Score hold under 500 images each


# name -> (function, needs real features)
METRICS: dict[str, tuple[MetricFn, bool]] = {"fid": (_fid, True), "kid": (_kid, True), "is": (_is, False),
                                             "pr": (_pr, True)}


DIAGNOSTICS = ("memorization", "probe")  # need a run's networks; write figures or fit a classifier
FIDELITY = ("psnr", "ssim")  # outputs against their targets: paired image-to-image runs (fidelity.py)


def parse_metrics(text: str) -> list[str]:
    """--metrics "fid,kid" -> ["fid", "kid"]: scores and run diagnostics, each name checked."""
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    known = [*METRICS, *DIAGNOSTICS, *FIDELITY]
    unknown = [m for m in names if m not in known]
    if not names or unknown:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown) or '(empty)'}; choose from "
                          f"{', '.join(known)}, comma-separated (e.g. fid,kid,pr)")
    return names


def check_metric_names(metrics: Sequence[str]) -> list[str]:
    names = [m.strip().lower() for m in metrics]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ConfigError(f"unknown metric {', '.join(map(repr, unknown)) or '(none given)'}; valid metrics are "
                          f"{', '.join(METRICS)}.")
    return list(dict.fromkeys(names))  # drop repeats, keep order


def evaluate_sets(real: SourceLike, fake: SourceLike, metrics: Sequence[str] = ("fid",), n: int = 10_000,
                  extractor: FeatureExtractor | str | None = None,
                  cache_dir: str | os.PathLike[str] | None = None, batch_size: int = 50, progress: bool = True,
                  *, use_cache: bool = True, options: MetricOptions | None = None) -> list[dict[str, Any]]:
    """Score `fake` against `real` with each metric; one protocol-stamped dict per metric, in the order asked.

    n: images per set (a store or folder with fewer gives all it has; the stamp says how many were used).
    extractor: a loaded extractor, a registry name, or None for "inception".
    cache_dir: where real-set features are cached (default: $GANFORGE_CACHE or ~/.cache/ganforge).
    """
    return extract_sets(real, fake, metrics, n, extractor, cache_dir, batch_size, progress, use_cache=use_cache,
                        options=options).score()


@dataclass(frozen=True)
class ExtractedSets:
    """Both sets' features, ready to score: evaluate_sets' first half, kept by a caller that also reads the
    features for something else (`ganforge evaluate`'s memorisation check reuses the generated ones)."""

    metrics: list[str]
    real: FeatureSet | None
    fake: FeatureSet
    extractor: FeatureExtractor
    options: MetricOptions
    provenance: dict[str, Any]  # score_features' keywords: where each set came from, for the stamps

    def score(self) -> list[dict[str, Any]]:
        return score_features(self.metrics, self.real, self.fake, self.extractor, self.options, **self.provenance)


def extract_sets(real: SourceLike, fake: SourceLike, metrics: Sequence[str] = ("fid",), n: int = 10_000,
                 extractor: FeatureExtractor | str | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, batch_size: int = 50, progress: bool = True,
                 *, use_cache: bool = True, options: MetricOptions | None = None) -> ExtractedSets:
    """Check the request, then extract (or read from the cache) the features `metrics` need; as evaluate_sets."""
    names = check_metric_names(metrics)
    options = options or MetricOptions()
    if n < 2 or batch_size < 1:
        raise ConfigError(f"need n >= 2 images per set and batch_size >= 1, got n={n}, batch_size={batch_size}.")
    if "pr" in names and n <= options.pr_k:  # before minutes of feature extraction, not after
        raise ConfigError(f"--metrics pr compares each image with its {options.pr_k} nearest neighbours: it needs "
                          f"--n above {options.pr_k}, got {n}")
    if not isinstance(extractor, FeatureExtractor):
        extractor = load_extractor(extractor or "inception")
    if "is" in names:
        require_logits(extractor)  # before minutes of extraction, not after
    real_source, fake_source = as_source(real), as_source(fake)
    directory = cache_dir if cache_dir is not None else feature_cache.default_cache_dir()

    started = time.perf_counter()
    real_set, real_cache = None, "unused"
    if any(METRICS[m][1] for m in names):
        real_set, real_cache = features_of(real_source, extractor, n, batch_size, directory if use_cache else None,
                                           progress, "real")
    fake_set, fake_cache = features_of(fake_source, extractor, n, batch_size, directory if use_cache else None,
                                       progress, "fake")
    provenance = {"real_fingerprint": real_source.fingerprint if real_set is not None else None,
                  "real_source": real_source.description, "fake_source": fake_source.description,
                  "real_cache": real_cache, "fake_cache": fake_cache,
                  "extraction_s": time.perf_counter() - started}
    return ExtractedSets(names, real_set, fake_set, extractor, options, provenance)


def score_features(metrics: Sequence[str], real_set: FeatureSet | None, fake_set: FeatureSet,
                   extractor: FeatureExtractor, options: MetricOptions | None = None, *,
                   real_fingerprint: str | None = None, real_source: str | None = None,
                   fake_source: str = "generator", real_cache: str = "off", fake_cache: str = "off",
                   extraction_s: float = 0.0, extra: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Score features already extracted (by `features_of`, or gathered from several processes) with each metric;
    one protocol-stamped dict per metric, in the order asked, as `evaluate_sets` returns them.

    real_set may be None when only IS is asked for. The keyword arguments describe where the features came from
    for the stamp; `extra` adds entries of the caller's (e.g. {"shards": 2}).
    """
    names = check_metric_names(metrics)
    options = options or MetricOptions()
    if "is" in names:
        require_logits(extractor)
    if real_set is None and any(METRICS[m][1] for m in names):
        raise ValueError(f"{', '.join(m for m in names if METRICS[m][1])} need real features; got none")
    results = []
    for name in names:
        fn, needs_real = METRICS[name]
        t0 = time.perf_counter()
        scores, metric_options = fn(real_set, fake_set, options, extractor.device)
        results.append(protocol_stamp(
            name, scores, n_real=len(real_set) if needs_real and real_set is not None else None,
            n_fake=len(fake_set), extractor=extractor,
            dataset_fingerprint=real_fingerprint if needs_real else None, options=metric_options,
            real_source=real_source if needs_real else None, fake_source=fake_source,
            cache={"real": real_cache if needs_real else "unused", "fake": fake_cache},
            seconds={"extraction": round(extraction_s, 3), "metric": round(time.perf_counter() - t0, 3)},
            **(extra or {})))
    return results


def features_of(source: ImageSource, extractor: FeatureExtractor, n: int, batch_size: int,
                cache_dir: str | os.PathLike[str] | None, progress: bool, desc: str) -> tuple[FeatureSet, str]:
    """(features of the first n images, "hit" | "miss" | "off"): cached when the source has a fingerprint."""
    count = source.count(n)

    def compute() -> FeatureSet:
        return extract_features(extractor, source.batches(batch_size, n), count, progress=progress,
                                desc=f"{desc} features ({source.description})")

    fingerprint = source.cache_fingerprint if cache_dir is not None else None
    if fingerprint is None or cache_dir is None:
        return compute(), "off"
    key = feature_cache.cache_key(fingerprint, extractor.describe(), count)
    features, hit = feature_cache.load_or_compute(cache_dir, key, compute)
    return features, "hit" if hit else "miss"
