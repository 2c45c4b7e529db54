"""`ganforge evaluate`: a trained run (or two image sets) in, stamped scores out; and metrics during training.

The metrics themselves live in `ganforge.metrics`; this module connects them to runs: it turns a run's
generator into an endless source of uint8 images (seeds 0, 1, 2, ..., classes cycled for conditional runs;
under torchrun each rank makes every world_size-th of them during training), picks the real images (the run's
own store unless `--data` says otherwise), and adds the memorisation check and the discriminator-feature probe,
which need a run's networks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data.store import Store, to_uint8
from ganforge.errors import ConfigError
from ganforge.metrics import cache as feature_cache
from ganforge.metrics import load_extractor
from ganforge.metrics.evaluate import METRICS, evaluate_sets, features_of, score_features
from ganforge.metrics.features import FeatureExtractor, FeatureSet, extract_features
from ganforge.metrics.isc import require_logits
from ganforge.metrics.memorization import memorization_report
from ganforge.metrics.probe import linear_probe
from ganforge.metrics.sources import GeneratorSource, StoreSource
from ganforge.training import checkpoint as ckpt
from ganforge.training.distributed import Distributed
from ganforge.training.loop import resolve_device
from ganforge.training.rundir import read_run_config
from ganforge.training.session import open_training_store
from ganforge.training.state import TrainingState

DIAGNOSTICS = ("memorization", "probe")  # need a run's networks; write figures or fit a classifier
BATCH_SIZE = 50  # images per pass of G and the extractor during training (evaluate_sets' default)


def parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS and m not in DIAGNOSTICS]
    if not names or unknown:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown) or '(empty)'}; choose from "
                          f"{', '.join([*METRICS, *DIAGNOSTICS])}, comma-separated (e.g. fid,kid,pr)")
    return names


def shard_seeds(n: int, rank: int = 0, world_size: int = 1) -> range:
    """A rank's share of the seeds 0..n-1: seed s goes to rank s % world_size (every rank's share is disjoint)."""
    return range(rank, n, world_size)


def seed_order(shards: Sequence[torch.Tensor]) -> torch.Tensor:
    """The rows of every rank's share ([len(shard_seeds(n, rank, W)), ...], in rank order) back in seed order."""
    world_size = len(shards)
    merged = shards[0].new_empty((sum(len(s) for s in shards), *shards[0].shape[1:]))
    for rank, shard in enumerate(shards):
        merged[rank::world_size] = shard  # rows of seeds rank, rank + W, ...; a wrong-sized share fails here
    return merged


def generator_batches(generator: nn.Module, config: TrainConfig, size: tuple[int, int], device: torch.device,
                      *, rank: int = 0, world_size: int = 1) -> Callable[[int], Iterator[torch.Tensor]]:
    """Endless uint8 batches from G: latent i is seed i's, so every evaluation sees the same images. With
    world_size > 1, only `rank`'s seeds (rank, rank + world_size, ...; see `shard_seeds`)."""

    def batches(batch_size: int) -> Iterator[torch.Tensor]:
        start = rank
        while True:
            seeds = range(start, start + batch_size * world_size, world_size)
            z = torch.stack([torch.randn(config.model.z_dim, generator=torch.Generator().manual_seed(s))
                             for s in seeds]).to(device)
            labels = (torch.tensor(seeds, device=device) % config.model.num_classes
                      if config.model.conditional else None)
            with torch.no_grad():
                images = generator(z, labels) if labels is not None else generator(z)
                if tuple(images.shape[-2:]) != size:  # a growing G mid-way: compare at the data's size
                    images = nn.functional.interpolate(images, size=size, mode="nearest")
            yield to_uint8(images).cpu()
            start += batch_size * world_size

    return batches


def load_discriminator(run_dir: Path, config: TrainConfig, shape: tuple[int, int, int]) -> nn.Module:
    from ganforge.models import build_networks

    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None:
        raise ConfigError(f"{run_dir} has no checkpoint yet; train longer before probing its discriminator")
    discriminator = build_networks(config.model, shape).discriminator
    ckpt.load_module("D", discriminator, ckpt.load_checkpoint(latest)[0])
    if not callable(getattr(discriminator, "features", None)):
        raise ConfigError(f"the probe needs a discriminator with intermediate features (dcgan, mlp); "
                          f"{config.model.name}'s has none exposed")
    return discriminator.eval()


def evaluate_run(run_dir: Path, metrics: list[str], *, n: int, data: Path | None, extractor: FeatureExtractor,
                 batch_size: int, device: torch.device, out_dir: Path, progress: bool = True) -> list[dict[str, Any]]:
    from ganforge.generate import load_generator

    config, _ = read_run_config(run_dir)
    store = Store(data) if data is not None else open_training_store(config)
    generator, _, nimg = load_generator(run_dir, device)
    fake = generator_batches(generator, config, (store.manifest.height, store.manifest.width), device)
    results: list[dict[str, Any]] = []
    scored = [m for m in metrics if m in METRICS]
    context = {"run": str(run_dir), "kimg": nimg / 1000}
    if scored:
        results += [{**r, **context} for r in evaluate_sets(store, fake, scored, n, extractor,
                                                              batch_size=batch_size, progress=progress)]
    if "memorization" in metrics:
        summary = memorization_report(fake, store, extractor, out_dir, n_generated=min(n, 1000),
                                      n_train=min(n, len(store)), batch_size=batch_size, progress=progress)
        results.append({"metric": "memorization", **summary.to_dict(), **context})
    if "probe" in metrics:
        discriminator = load_discriminator(run_dir, config, store.manifest.shape).to(device)
        # A method on the models that expose one (checked on loading); nn.Module types attributes as tensors.
        features = cast(Callable[[torch.Tensor], torch.Tensor], discriminator.features)
        probe = linear_probe(lambda x: features(x.to(device)).cpu(), store, n=min(n, len(store)), device=device)
        results.append({"metric": "probe", **probe.to_dict(), **context, "data": str(store.path)})
    return results


def describe(result: dict[str, Any]) -> str:
    """One line per result: the numbers, then how they were obtained."""
    name = result["metric"]
    if name == "memorization":
        return (f"memorization: median distance ratio generated/real {result['median_ratio']:.3f}, "
                f"{result['fraction_suspicious']:.1%} of samples closer than 99% of real pairs; "
                f"figures {result['pairs_png']}, {result['histogram_png']}")
    if name == "probe":
        return (f"probe (D features + linear classifier): test accuracy {result['test_accuracy']:.1%} "
                f"(train {result['train_accuracy']:.1%}, chance {result['chance_accuracy']:.1%}) on {result['data']}")
    scores = ", ".join(f"{k} {v:.6g}" for k, v in result["scores"].items())
    return (f"{scores}  [n_real {result['n_real']}, n_fake {result['n_fake']}, {result['extractor']} "
            f"{str(result['extractor_hash'])[:19]}, resize {result['resize']}]")


def write_json(results: list[dict[str, Any]], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    os.replace(tmp, path)


def training_metrics_hook(config: TrainConfig, store: Store, ctx: Distributed
                          ) -> Callable[[TrainingState, dict[str, Any]], None]:
    """Every `metrics_every` ticks: score G (its EMA when kept) against the store and add the numbers, with
    their protocol, to the tick's log row. Real features are cached, so each evaluation costs only the fakes.

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
    device = resolve_device(config.device)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)  # each rank's own GPU, where the loop puts its G
    extractor = load_extractor(config.metrics_extractor, device=device)
    if "is" in metrics:
        require_logits(extractor)  # before training starts, not at the first evaluation
    real_source = StoreSource(store)
    needs_real = any(METRICS[m][1] for m in metrics)
    size = (store.manifest.height, store.manifest.width)
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
        generator = state.generator_ema if state.generator_ema is not None else state.generator
        # Without --sync-bn every rank's BatchNorm statistics are its own: all images must come from rank 0's G.
        ctx.broadcast_buffers(generator)
        was_training = generator.training
        generator.eval()
        fake = GeneratorSource(generator_batches(generator, config, size, next(generator.parameters()).device,
                                                 rank=ctx.rank, world_size=ctx.world_size))
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
    fingerprint = source.fingerprint
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
