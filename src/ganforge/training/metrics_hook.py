"""Metrics during training (`--metrics fid,kid --metrics-every 10`): a tick hook that scores G against the
store and adds the stamped numbers to the tick's log row, sharded over torchrun's ranks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store
from ganforge.errors import ConfigError
from ganforge.metrics import cache as feature_cache
from ganforge.metrics import load_extractor
from ganforge.metrics.evaluate import DIAGNOSTICS, METRICS, features_of, parse_metrics, score_features
from ganforge.metrics.features import FeatureExtractor, FeatureSet, extract_features
from ganforge.metrics.generated import generator_batches, seed_order, shard_seeds
from ganforge.metrics.isc import require_logits
from ganforge.metrics.sources import GeneratorSource, StoreSource
from ganforge.runs import sampling_generator
from ganforge.training.distributed import Distributed
from ganforge.training.state import TrainingState

BATCH_SIZE = 50  # images per pass of G and the extractor during training (evaluate_sets' default)


def training_metrics_hook(config: TrainConfig, store: Store, ctx: Distributed,
                          extractor: FeatureExtractor | None = None) -> Callable[[TrainingState, dict[str, Any]], None]:
    """Every `metrics_every` ticks: score G (its EMA when kept) against the store and add the numbers, with
    their protocol, to the tick's log row. Real features are cached, so each evaluation costs only the fakes.
    The checks draw nothing from the run's random streams: the run trains as it would without them.

    Under torchrun every rank runs the hook at the same tick and makes its share of the `metrics_n` images (seed
    s on rank s % world_size); rank 0 gathers the features back in seed order and scores them, so the numbers are
    the single-process ones up to float noise. The real features come from the on-disk cache (rank 0 reads it);
    on a miss all ranks extract them the same way, image i on rank i % world_size, and rank 0 writes the cache.
    """
    metrics = parse_metrics(config.metrics)
    if any(m in DIAGNOSTICS for m in metrics):
        raise ConfigError(f"--metrics during training takes {', '.join(METRICS)}; run memorization and probe with "
                          "`ganforge evaluate RUN --metrics memorization,probe` after training")
    if min(config.metrics_n, len(store)) < ctx.world_size:
        raise ConfigError(f"--metrics-n {config.metrics_n} with {len(store)} real images leaves some of the "
                          f"{ctx.world_size} processes without images to score; use at least {ctx.world_size}")
    device = ctx.device_for(config.device)  # each rank's own GPU, where the loop puts its G
    if extractor is None:
        extractor = load_extractor(config.metrics_extractor, device=device)
    if "is" in metrics:
        require_logits(extractor)  # before training starts, not at the first evaluation
    real_source = StoreSource(store)
    needs_real = any(METRICS[m][1] for m in metrics)
    size = (store.manifest.height, store.manifest.width)
    num_classes = config.model.num_classes if config.model.conditional else 0
    n_own = len(shard_seeds(config.metrics_n, ctx.rank, ctx.world_size))
    reals_kept: list[FeatureSet | None] = []  # after the first evaluation: rank 0's real features, None elsewhere

    def hook(state: TrainingState, record: dict[str, Any]) -> None:
        if state.counters.tick % config.metrics_every:
            return
        started = time.perf_counter()
        real_set, real_cache = None, "unused"
        if needs_real and not reals_kept:  # the same branch on every rank: it may hold collectives
            real_set, real_cache = sharded_real_features(real_source, extractor, config.metrics_n, ctx,
                                                         feature_cache.default_cache_dir())
            reals_kept.append(real_set)  # later evaluations reuse them from memory (None on ranks > 0)
        elif needs_real:
            real_set, real_cache = reals_kept[0], "memory"
        generator = sampling_generator(state.generator, state.generator_ema)
        # Without --sync-bn every rank's BatchNorm statistics are its own: all images must come from rank 0's G.
        ctx.broadcast_buffers(generator)
        was_training = generator.training
        generator.eval()
        g_device = next(generator.parameters()).device
        fake = GeneratorSource(generator_batches(generator, config.model.z_dim, num_classes, size, g_device,
                                                 rank=ctx.rank, world_size=ctx.world_size))
        # A G with noise inputs draws from torch's stream: forked, so a run with checks trains as one without.
        with torch.random.fork_rng(devices=[g_device] if g_device.type == "cuda" else []):
            own, fake_cache = features_of(fake, extractor, n_own, BATCH_SIZE, None, False, "fake")
        generator.train(was_training)
        fake_set = gather_features(own, ctx)
        if not ctx.is_main:
            return
        results = score_features(metrics, real_set, fake_set, extractor, real_fingerprint=real_source.fingerprint,
                                 real_source=real_source.description, fake_source=fake.description,
                                 real_cache=real_cache, fake_cache=fake_cache,
                                 extraction_s=time.perf_counter() - started, extra={"shards": ctx.world_size})
        for result in results:
            record.update(result["scores"])
        record["metrics"] = results

    return hook


def gather_features(own: FeatureSet, ctx: Distributed) -> FeatureSet:
    """Every rank's features of its own seeds -> the features of all seeds, in seed order, on every rank."""
    features = seed_order(ctx.all_gather_rows(own.features))
    logits = seed_order(ctx.all_gather_rows(own.logits)) if own.logits is not None else None
    return FeatureSet(features, logits)


def sharded_real_features(source: StoreSource, extractor: FeatureExtractor, n: int, ctx: Distributed,
                          cache_dir: Path) -> tuple[FeatureSet | None, str]:
    """(the real set's features on rank 0, None on the others; "hit" or "miss"). A cache hit costs rank 0 one
    read; a miss is extracted by every rank (image i on rank i % world_size), gathered and cached by rank 0."""
    count = source.count(n)
    fingerprint = source.cache_fingerprint
    assert fingerprint is not None  # a store always has one
    key = feature_cache.cache_key(fingerprint, extractor.describe(), count)
    cached = feature_cache.read_cached(cache_dir, key) if ctx.is_main else None
    if ctx.broadcast_text("hit" if cached is not None else "miss") == "hit":
        return cached, "hit"
    indices = np.asarray(shard_seeds(count, ctx.rank, ctx.world_size))
    own = extract_features(extractor, (source.images(indices[i : i + BATCH_SIZE])
                                       for i in range(0, len(indices), BATCH_SIZE)), len(indices))
    features = gather_features(own, ctx)
    if not ctx.is_main:
        return None, "miss"
    feature_cache.write_cached(cache_dir, key, features)
    return features, "miss"
