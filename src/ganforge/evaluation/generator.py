"""`ganforge evaluate`: a trained run (or two image sets) in, stamped scores out.

The metrics themselves live in `ganforge.metrics`; this module connects them to runs: it turns a run's
generator into an endless source of uint8 images (seeds 0, 1, 2, ..., classes cycled for conditional runs),
picks the real images (the run's own store unless `--data` says otherwise), and adds the memorisation check and
the discriminator-feature probe, which need a run's networks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch

from ganforge.config import TrainConfig
from ganforge.data.store import Store
from ganforge.errors import ConfigError
from ganforge.evaluation.translator import default_metrics, evaluate_translation
from ganforge.metrics.evaluate import FIDELITY, METRICS, extract_sets
from ganforge.metrics.features import FeatureExtractor
from ganforge.metrics.generated import generator_batches
from ganforge.metrics.memorization import memorization_report
from ganforge.metrics.probe import linear_probe
from ganforge.models import family_of
from ganforge.runs import load_discriminator, load_generator
from ganforge.runs.exported import is_export_folder, read_export
from ganforge.runs.folder import open_recorded_store, read_run_config
from ganforge.runs.output_guard import check_output_file, check_output_folder, ganforge_png, json_report
from ganforge.whole_files import written_whole


def evaluate_run(run_dir: Path, metrics: list[str], *, n: int, data: Path | None,
                 extractor: FeatureExtractor | None, batch_size: int, device: torch.device, out_dir: Path,
                 progress: bool = True) -> list[dict[str, Any]]:
    """The run's scores; an image-to-image run is scored on its held-out inputs (evaluation/translator.py).
    `extractor` may be None when only psnr and ssim are asked for."""
    if family_of(_recorded(run_dir)[0].model.name).translates:
        return evaluate_translation(run_dir, metrics, n=n, data=data, extractor=extractor, batch_size=batch_size,
                                    device=device, progress=progress)
    fidelity = [m for m in metrics if m in FIDELITY]
    if fidelity:
        raise ConfigError(f"--metrics {', '.join(fidelity)} compare translations with their targets; {run_dir} is a "
                          "noise-to-image run, which has no targets: score it with fid, kid, is or pr")
    assert extractor is not None, "the caller loads the feature network for a noise-to-image run's metrics"
    generator, config, nimg = load_generator(run_dir, device)
    store = Store(data) if data is not None else open_recorded_store(run_dir, config.data)
    fake = generator_batches(generator, config.model.z_dim, config.model.num_classes if config.model.conditional
                             else 0, (store.manifest.height, store.manifest.width), device)
    results: list[dict[str, Any]] = []
    scored = [m for m in metrics if m in METRICS]
    context = {"run": str(run_dir), "kimg": nimg / 1000}
    generated_features = None
    if scored:
        sets = extract_sets(store, fake, scored, n, extractor, batch_size=batch_size, progress=progress)
        results += [{**r, **context} for r in sets.score()]
        generated_features = sets.fake.features  # seed i's image is image i in both: the check reuses them
    if "memorization" in metrics:
        summary = memorization_report(fake, store, extractor, out_dir, n_generated=min(n, 1000),
                                      n_train=min(n, len(store)), batch_size=batch_size, progress=progress,
                                      generated_features=generated_features)
        results.append({"metric": "memorization", **summary.to_dict(), **context})
    if "probe" in metrics:
        discriminator = load_discriminator(run_dir, device)
        if not callable(getattr(discriminator, "features", None)):
            raise ConfigError(f"the probe needs a discriminator with intermediate features (dcgan, mlp); "
                              f"{config.model.name}'s has none exposed")
        # A method on the models that expose one (checked on loading); nn.Module types attributes as tensors.
        features = cast(Callable[[torch.Tensor], torch.Tensor], discriminator.features)
        probe = linear_probe(lambda x: features(x.to(device)).cpu(), store, n=min(n, len(store)), device=device)
        results.append({"metric": "probe", **probe.to_dict(), **context, "data": str(store.path)})
    return results


def default_metrics_text(run_dir: Path | None) -> str:
    """--metrics when not given: fid, or psnr,ssim for a paired image-to-image run (its store holds targets)."""
    if run_dir is None:
        return "fid"
    config, dataset = _recorded(run_dir)
    if not family_of(config.model.name).translates:
        return "fid"
    return ",".join(default_metrics(str(dataset.get("pairing", "paired"))))


def _recorded(source: Path) -> tuple[TrainConfig, dict[str, Any]]:
    """(training config, dataset record) of a run folder or of an exported folder, which evaluates the same way."""
    if is_export_folder(source):
        meta, config = read_export(source)
        return config, meta["dataset"]
    return read_run_config(source)


def describe(result: dict[str, Any]) -> str:
    """One line per result: the numbers, then how they were obtained."""
    name = result["metric"]
    if name == "memorization":
        return (f"memorization: median distance ratio generated/real {result['median_ratio']:.3f}, "
                f"{result['fraction_suspicious']:.1%} of samples closer than 99% of real pairs; "
                f"figures {result['pairs_png']}, {result['histogram_png']}")
    if name in FIDELITY:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in result["scores"].items())
        return f"{scores}  [{result['n_pairs']} pairs: {result['split']} of {result['data']}; uint8, all channels]"
    if name == "probe":
        return (f"probe (D features + linear classifier): test accuracy {result['test_accuracy']:.1%} "
                f"(train {result['train_accuracy']:.1%}, chance {result['chance_accuracy']:.1%}) on {result['data']}")
    scores = ", ".join(f"{k} {v:.6g}" for k, v in result["scores"].items())
    warning = result.get("options", {}).get("warning")
    return (f"{scores}  [n_real {result['n_real']}, n_fake {result['n_fake']}, {result['extractor']} "
            f"{str(result['extractor_hash'])[:19]}, resize {result['resize']}]" + (f"  warning: {warning}" if warning
                                                                                   else ""))


def check_outputs(run_dir: Path | None, metrics: list[str], json_path: Path | None, out_dir: Path | None,
                  inputs: list[Path]) -> None:
    """Refuse, before any network is loaded, a --json or --out that would replace what ganforge did not write for
    evaluate or land in a run, export, detector or input folder (RUN/evaluation is evaluate's own place)."""
    home = run_dir / "evaluation" if run_dir is not None else None
    if json_path is not None:
        check_output_file(json_path, "--json", json_report(_is_scores), home=home, inputs=inputs)
    if run_dir is not None and "memorization" in metrics:  # the only metric that draws figures
        check_output_folder(out_dir or run_dir / "evaluation", "--out", ["nearest_neighbours.png", "distances.png"],
                            ganforge_png, home=home, inputs=inputs)


def _is_scores(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(r, dict) and "metric" in r for r in value)


def write_json(results: list[dict[str, Any]], path: Path) -> None:
    with written_whole(path) as temporary:
        temporary.write_text(json.dumps(results, indent=2, default=str))
