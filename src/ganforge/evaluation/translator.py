"""`ganforge evaluate RUN` for image-to-image runs: the run's G on the store's held-out inputs, scored.

Paired runs (pix2pix, SRGAN): PSNR and SSIM of each output against its target (`metrics/fidelity.py`); for x4
super-resolution also the bicubic upscaling's, the baseline every SR paper reports beside its model. Any run:
FID (and KID, precision/recall) of the translations against the target domain, through the same metric stack as
noise-to-image runs; for unpaired domains that is what CycleGAN's evaluation can measure.

The inputs are the store's held-out rows (`prepare --val-fraction`), which training never drew; a store given
with --data that holds none is taken as a test set whole. The run's own store without held-out rows is refused:
scores on training pairs would flatter the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganforge.data.store import Store
from ganforge.errors import ConfigError, DataError
from ganforge.metrics.evaluate import FIDELITY, METRICS, evaluate_sets
from ganforge.metrics.features import FeatureExtractor
from ganforge.metrics.fidelity import PROTOCOL, psnr, ssim
from ganforge.metrics.sources import TensorSource
from ganforge.runs import load_translator
from ganforge.runs.folder import open_recorded_store
from ganforge.translation import translate_images
from ganforge.version import __version__

PAIRED_METRICS = FIDELITY


def default_metrics(pairing: str) -> list[str]:
    """What `evaluate` scores when --metrics is not given: fidelity to the targets where there are targets."""
    return list(PAIRED_METRICS) if pairing == "paired" else ["fid"]


def evaluate_translation(run_dir: Path, metrics: list[str], *, n: int, data: Path | None,
                         extractor: FeatureExtractor | None, batch_size: int, device: torch.device,
                         progress: bool = True) -> list[dict[str, Any]]:
    loaded = load_translator(run_dir, "a2b", device)
    store = Store(data) if data is not None else open_recorded_store(run_dir, loaded.config.data)
    m = store.manifest
    refused = [name for name in metrics if name not in (*PAIRED_METRICS, *METRICS)]
    if refused:
        raise ConfigError(f"--metrics {', '.join(refused)}: for noise-to-image generators only; an image-to-image run "
                          f"is scored with {', '.join([*PAIRED_METRICS, 'fid', 'kid', 'pr'])}")
    if not m.two_sided or m.shape != loaded.input_shape or m.output_shape != loaded.output_shape:
        raise DataError(f"{store.path} does not hold the run's pairs ({'x'.join(map(str, loaded.input_shape))} -> "
                        f"{'x'.join(map(str, loaded.output_shape))}); pass a store prepared like its training store")
    if any(name in PAIRED_METRICS for name in metrics) and m.pairing != "paired":
        raise ConfigError(f"psnr and ssim compare each output with its target, but {store.path} holds unpaired "
                          "domains; score --metrics fid")
    rows = _held_out_rows(store, explicit=data is not None)[:n]
    inputs = store.uint8_batch(rows)
    outputs = translate_images(loaded, inputs, batch=batch_size)
    context = {"run": str(run_dir), "kimg": loaded.nimg / 1000, "data": str(store.path),
               "split": f"rows {rows[0]}-{rows[-1]} of {len(store)}" + (" (held out)" if m.val_count else "")}
    results = []
    if m.pairing == "paired":
        targets = store.uint8_batch(rows, "b")
        baseline = _bicubic(inputs, outputs.shape[-2:]) if outputs.shape[-1] == 4 * inputs.shape[-1] else None
        for name, fn in (("psnr", psnr), ("ssim", ssim)):
            if name in metrics:
                scores = {name: _mean(fn(outputs, targets))}
                if baseline is not None:
                    scores[f"{name}_bicubic"] = _mean(fn(baseline, targets))
                results.append({"metric": name, "scores": scores, "n_pairs": len(rows), "options": PROTOCOL,
                                "ganforge_version": __version__, **context})
    feature_metrics = [name for name in metrics if name in METRICS]
    if feature_metrics:
        assert extractor is not None, "the caller loads the feature network when --metrics asks for it"
        domain = store.uint8_batch(np.arange(min(n, m.count_b)), "b")
        records = evaluate_sets(TensorSource(domain, f"{store.path} targets (B)"),
                                TensorSource(outputs, f"{run_dir} translations of held-out inputs"),
                                feature_metrics, n, extractor, batch_size=batch_size, progress=progress)
        results += [{**record, **context} for record in records]
    return results


def _held_out_rows(store: Store, explicit: bool) -> np.ndarray:
    m = store.manifest
    if m.val_count:
        return np.arange(m.count - m.val_count, m.count)
    if explicit:
        return np.arange(m.count)
    raise DataError(f"{store.path} holds no held-out inputs, and scores on training pairs would flatter the model; "
                    "prepare the store again with --val-fraction 0.1, or pass a test store with --data")


def _bicubic(inputs: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """uint8 inputs upscaled to `size` with Pillow's bicubic filter, as SR papers' baseline."""
    height, width = int(size[0]), int(size[1])
    upscaled = []
    for pixels in inputs.numpy():
        image = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else Image.fromarray(pixels.transpose(1, 2, 0))
        array = np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))
        upscaled.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(upscaled))


def _mean(values: torch.Tensor) -> float:
    return float(values.mean())
