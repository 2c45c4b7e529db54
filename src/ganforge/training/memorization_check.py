"""The memorization check at a run's end (`--memorization`; by default for few-shot fine-tuning, which copies its
few images more often than anything else does): samples' nearest training images against real images' own,
figures and numbers in RUN/memorization/, the verdict in the run's "done" line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store
from ganforge.errors import ConfigError
from ganforge.metrics.features import FeatureExtractor, load_extractor
from ganforge.metrics.generated import generator_batches
from ganforge.metrics.memorization import memorization_report
from ganforge.runs.load import sampling_generator
from ganforge.training.fine_tuning import FEW_SHOT_IMAGES
from ganforge.training.state import TrainingState
from ganforge.whole_files import written_whole

FOLDER = "memorization"
SUSPICIOUS_SHARE = 0.05  # of samples closer to a training image than 99 % of real pairs (1 % by chance)
LOW_RATIO = 0.9  # samples' median nearest-training distance below this share of real images' one: drawn in
MAX_SAMPLES = 1000  # generated images compared; the store's images (fewer than FEW_SHOT_IMAGES by default) all


def memorization_due(config: TrainConfig, store_count: int) -> bool:
    """Whether the run ends with the check: --memorization on, or auto on a few-shot fine-tuning run."""
    if config.memorization == "auto":
        return bool(config.init) and store_count < FEW_SHOT_IMAGES
    return config.memorization == "on"


def memorization_at_end(store: Store, run_dir: Path, device: torch.device,
                        echo: Callable[[str], None]) -> Callable[[TrainingState], str]:
    """What the loop calls when the run is done: the check on its sampling generator, as a phrase for the done
    line ("memorization: ..."). Without the Inception weights it measures in random-conv features and says so."""

    def check(state: TrainingState) -> str:
        config = state.config
        extractor = _extractor(config.metrics_extractor, device, echo)
        generator = sampling_generator(state.generator, state.generator_ema).eval()
        m = store.manifest
        fake = generator_batches(generator, config.model.z_dim,
                                 config.model.num_classes if config.model.conditional else 0, (m.height, m.width),
                                 device)
        n = min(MAX_SAMPLES, max(len(store), 100))
        summary = memorization_report(fake, store, extractor, run_dir / FOLDER, n_generated=n,
                                      n_train=min(len(store), 10_000), use_cache=False)
        with written_whole(run_dir / FOLDER / "summary.json") as temporary:  # never through a link left there
            temporary.write_text(json.dumps(summary.to_dict(), indent=2))
        verdict = memorization_verdict(summary.median_ratio, summary.fraction_suspicious)
        return (f"memorization: {verdict} (median distance ratio {summary.median_ratio:.2f}, "
                f"{summary.n_suspicious} of {summary.n_generated} samples closer than 99% of real pairs; "
                f"{run_dir / FOLDER / 'nearest_neighbours.png'})")

    return check


def memorization_verdict(ratio: float, suspicious: float) -> str:
    """How the numbers read: near-copies (more samples closer to a training image than 99 % of real pairs than
    the 1 % chance allows, with margin) or a whole distribution pulled towards the training set."""
    if suspicious > SUSPICIOUS_SHARE:
        return "some samples are near-copies of training images: look at the figure"
    if ratio < LOW_RATIO:
        return "samples sit closer to the training images than unseen real images do: look at the figure"
    return "no sign of copying"


def _extractor(name: str, device: torch.device, echo: Callable[[str], None]) -> FeatureExtractor:
    try:
        return load_extractor(name, device=device)
    except ConfigError as error:
        if name == "random-conv":
            raise
        echo(f"memorization check in random-conv features: {error}")
        return load_extractor("random-conv", device=device)
