"""`ganforge evaluate`: a trained run (or two image sets) in, stamped scores out; and metrics during training.

The metrics themselves live in `ganforge.metrics`; this module connects them to runs: it turns a run's
generator into an endless source of uint8 images (seeds 0, 1, 2, ..., classes cycled for conditional runs),
picks the real images (the run's own store unless `--data` says otherwise), and adds the memorisation check
and the discriminator-feature probe, which need a run's networks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data.store import Store, to_uint8
from ganforge.errors import ConfigError
from ganforge.metrics import load_extractor
from ganforge.metrics.evaluate import METRICS, evaluate_sets
from ganforge.metrics.features import FeatureExtractor
from ganforge.metrics.memorization import memorization_report
from ganforge.metrics.probe import linear_probe
from ganforge.training import checkpoint as ckpt
from ganforge.training.loop import resolve_device
from ganforge.training.rundir import read_run_config
from ganforge.training.session import open_training_store
from ganforge.training.state import TrainingState

DIAGNOSTICS = ("memorization", "probe")  # need a run's networks; write figures or fit a classifier


def parse_metrics(text: str) -> list[str]:
    names = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS and m not in DIAGNOSTICS]
    if not names or unknown:
        raise ConfigError(f"--metrics: unknown {', '.join(unknown) or '(empty)'}; choose from "
                          f"{', '.join([*METRICS, *DIAGNOSTICS])}, comma-separated (e.g. fid,kid,pr)")
    return names


def generator_batches(generator: nn.Module, config: TrainConfig, size: tuple[int, int], device: torch.device
                      ) -> Callable[[int], Iterator[torch.Tensor]]:
    """Endless uint8 batches from G: latent i is seed i's, so every evaluation sees the same images."""

    def batches(batch_size: int) -> Iterator[torch.Tensor]:
        start = 0
        while True:
            seeds = range(start, start + batch_size)
            z = torch.stack([torch.randn(config.model.z_dim, generator=torch.Generator().manual_seed(s))
                             for s in seeds]).to(device)
            labels = (torch.tensor(seeds, device=device) % config.model.num_classes
                      if config.model.conditional else None)
            with torch.no_grad():
                images = generator(z, labels) if labels is not None else generator(z)
                if tuple(images.shape[-2:]) != size:  # a growing G mid-way: compare at the data's size
                    images = nn.functional.interpolate(images, size=size, mode="nearest")
            yield to_uint8(images).cpu()
            start += batch_size

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


def training_metrics_hook(config: TrainConfig, store: Store) -> Callable[[TrainingState, dict[str, Any]], None]:
    """Every `metrics_every` ticks: score G (its EMA when kept) against the store and add the numbers, with
    their protocol, to the tick's log row. Real features are cached, so each evaluation costs only the fakes."""
    metrics = parse_metrics(config.metrics)
    if any(m in DIAGNOSTICS for m in metrics):
        raise ConfigError(f"--metrics during training takes {', '.join(METRICS)}; run memorization and probe with "
                          "`ganforge evaluate RUN --metrics memorization,probe` after training")
    extractor = load_extractor(config.metrics_extractor, device=resolve_device(config.device))

    def hook(state: TrainingState, record: dict[str, Any]) -> None:
        if state.counters.tick % config.metrics_every:
            return
        generator = state.generator_ema if state.generator_ema is not None else state.generator
        was_training = generator.training
        generator.eval()
        device = next(generator.parameters()).device
        fake = generator_batches(generator, config, (store.manifest.height, store.manifest.width), device)
        results = evaluate_sets(store, fake, metrics, config.metrics_n, extractor, progress=False)
        generator.train(was_training)
        for result in results:
            record.update(result["scores"])
        record["metrics"] = results

    return hook

