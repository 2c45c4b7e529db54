"""The Python API (`import ganforge as gf`): the functions the CLI commands call, with keyword arguments named
as the flags are (`--g-width` is `g_width=`, `--cond` is `cond=`).

    store = gf.prepare("photos/", out="cars.gfs", resolution=64, crop="pad")
    run = gf.train(data="cars.gfs", model="dcgan", kimg=50)      # or gf.train(config=gf.TrainConfig(...))
    G = gf.load_generator(run.path)                                # a run, an export, a Hub-style folder or repo id
    images = G.sample(16, seed=0)                                  # uint8 [16, C, H, W]
    scores = gf.evaluate(real="cars.gfs", fake=images, metrics=["fid", "kid"])
    outputs = gf.translate("runs/00001-pix2pix-edges", edges_uint8)  # image-to-image runs: uint8 in, uint8 out
    report = gf.translate("runs/00001-pix2pix-edges", "sketches/", out="photos/")   # a folder, as the CLI does
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch

from ganforge.config import TrainConfig, from_dict
from ganforge.config.file import without_planned_length
from ganforge.config.registry import settings
from ganforge.config.setting import SettingPath
from ganforge.data.pairing import PairOptions
from ganforge.data.prepare import PrepareOptions, parse_resolution
from ganforge.data.prepare import prepare as prepare_store
from ganforge.data.prepare_pairs import prepare_pairs
from ganforge.data.store import Store
from ganforge.device import resolve_device
from ganforge.errors import ConfigError
from ganforge.generator import Generator
from ganforge.metrics import FeatureExtractor, evaluate_sets, load_extractor
from ganforge.metrics.sources import GeneratorSource, ImageSource, SourceLike, as_source
from ganforge.runs import load_translator
from ganforge.runs.output_guard import check_outside_ganforge_folders
from ganforge.training import Run, RunRequest, train_from_paths
from ganforge.translation import TranslateReport, translate_folder, translate_images

ImagesLike = SourceLike | torch.Tensor | np.ndarray | Generator


def prepare(source: str | os.PathLike[str] | None, out: str | os.PathLike[str], *,
            resolution: int | str | None = None, crop: str = "center", channels: int | None = None,
            labels: str = "none", min_size: int = 0, force: bool = False, progress: bool = True,
            echo: Callable[[str], None] = print, a: str | os.PathLike[str] | None = None,
            b: str | os.PathLike[str] | None = None, **pairing: Any) -> Store:
    """`ganforge prepare`: check, decode and pack `source` (image folder, .zip, IDX, .npz) into the store `out`;
    the report (kept, skipped and why) is echoed; the store is returned opened. For image-to-image translation,
    `pairs=`, `unpaired=`, `make_pairs=` and `val_fraction=` (named as the flags are; `a=` and `b=` are the two
    folders of by-name pairs or unpaired domains) make a two-sided store."""
    check_outside_ganforge_folders(Path(out), "--out")  # a store written into a run or export folder mixes them
    size = parse_resolution(str(resolution)) if resolution is not None else None
    options = PrepareOptions(resolution=size, crop=crop, channels=channels, labels=labels, min_size=min_size)
    pair_options = from_dict(PairOptions, pairing, "prepare()")
    if pair_options.two_sided:
        if labels != "none":
            raise ConfigError("--labels folders gives class labels to one set of images; a store of pairs has none")
        report = prepare_pairs(out, options, pair_options, source=source, a=a, b=b, progress=progress, force=force)
    elif source is None or a is not None or b is not None:
        raise ConfigError("pass one SOURCE; --a and --b are for --pairs by-name and --unpaired")
    elif pair_options.val_fraction > 0:
        raise ConfigError("--val-fraction holds out pairs of a two-sided store; add --pairs, --unpaired or "
                          "--make-pairs, or drop it")
    else:
        report = prepare_store(source, out, options, progress=progress, force=force)
    echo(report.summary())
    return Store(out, in_memory=False)  # memory-mapped: opening it costs nothing however large it is


def train(config: TrainConfig | None = None, *, resume: str | os.PathLike[str] | None = None,
          preset: str | None = None, progress: bool = True, echo: Callable[[str], None] = print,
          **settings_given: Any) -> Run:
    """`ganforge train`: a new run from `config` or from keyword settings named as the flags are (data=,
    model=, kimg=, g_width=, cond=, ...), or `resume=RUN` to continue one. Without model= or preset= the
    recipe measured best for the store is chosen, as the CLI does."""
    if config is not None and not isinstance(config, TrainConfig):
        raise ConfigError(f"train(config=...) takes a TrainConfig, got {type(config).__name__} {config!r:.40}; pass "
                          "settings as keywords instead, e.g. gf.train(data='digits.gfs', model='dcgan', kimg=50)")
    if config is not None and (settings_given or preset or resume is not None):
        raise ConfigError("pass config= alone: it is a whole run's settings (resume= takes the settings that may "
                          "change, as keywords, e.g. kimg=)")
    if config is not None:
        given = _paths_of(config)
        chosen = False
    else:
        given = {_path_of_keyword(name): value for name, value in settings_given.items()}
        chosen = preset is None
    request = RunRequest(given, preset=preset, resume=Path(resume) if resume is not None else None,
                         choose_recipe=chosen and resume is None)
    run = train_from_paths(request, progress=progress, echo=echo)
    assert run is not None  # only a dry run returns none
    return run


def evaluate(real: ImagesLike, fake: ImagesLike, metrics: Sequence[str] = ("fid",), *, n: int | None = None,
             extractor: str | FeatureExtractor = "inception", device: str | torch.device = "cpu",
             batch_size: int = 50, progress: bool = False) -> Scores:
    """`ganforge evaluate --real --fake`: {score name: value} (fid, kid, kid_std, precision, recall, ...) of
    `fake` against `real`. Each may be a store, a folder of images, uint8 images [N, C, H, W] (a tensor or
    array), a generator from `load_generator`, or a fake_batches callable. n defaults to the smaller fixed
    set, or 10,000 for two generators. The full protocol-stamped records are in `.records` of the result."""
    real_source, fake_source = _source(real), _source(fake)
    if n is None:
        fixed = [s.count(1 << 62) for s in (real_source, fake_source) if not isinstance(s, GeneratorSource)]
        n = min(fixed) if fixed else 10_000
    features = extractor if isinstance(extractor, FeatureExtractor) else load_extractor(extractor, device=device)
    records = evaluate_sets(real_source, fake_source, metrics, n, features, batch_size=batch_size,
                            progress=progress)
    scores = Scores({name: float(value) for record in records for name, value in record.get("scores", {}).items()
                     if isinstance(value, int | float)})
    scores.records = records
    return scores


@overload
def translate(run: str | os.PathLike[str], inputs: torch.Tensor | np.ndarray, *, out: None = None,
              direction: str = ..., crop: str = ..., device: str = ..., batch: int = ..., progress: bool = ...,
              ) -> torch.Tensor: ...
@overload
def translate(run: str | os.PathLike[str], inputs: str | os.PathLike[str], *, out: str | os.PathLike[str],
              direction: str = ..., crop: str = ..., device: str = ..., batch: int = ..., progress: bool = ...,
              ) -> TranslateReport: ...
def translate(run: str | os.PathLike[str], inputs: str | os.PathLike[str] | torch.Tensor | np.ndarray, *,
              out: str | os.PathLike[str] | None = None, direction: str = "a2b", crop: str = "center",
              device: str = "cpu", batch: int = 16, progress: bool = True) -> torch.Tensor | TranslateReport:
    """`ganforge translate`: an image-to-image run's (or export's) generator applied to `inputs`. uint8 images
    [N, C, H, W] of the size it takes give their uint8 translations; a folder or archive of images is decoded,
    fitted (`crop=`) and written as PNGs under `out`, and the report (written, skipped and why) is returned."""
    if isinstance(inputs, torch.Tensor | np.ndarray):
        if out is not None:
            raise ConfigError("out= is where a folder's translations go; images in memory come back as a tensor")
        return translate_images(load_translator(Path(run), direction, resolve_device(device)), inputs, batch=batch)
    if out is None:
        raise ConfigError(f"translate({str(inputs)!r}) reads a folder: name where the translations go with out=")
    return translate_folder(Path(run), Path(inputs), Path(out), direction=direction, crop=crop, device=device,
                            batch=batch, progress=progress)


class Scores(dict[str, float]):
    """{score name: value}, with the protocol-stamped records (extractor, n, cache, time) as `.records`; its repr
    shows any record's warning (a score on fewer images than its protocol needs) beside the numbers."""

    records: list[dict[str, Any]]

    def warnings(self) -> list[str]:
        return [f"{r['metric']}: {r['options']['warning']}" for r in getattr(self, "records", [])
                if isinstance(r.get("options"), dict) and r["options"].get("warning")]

    def __repr__(self) -> str:
        warnings = self.warnings()
        return super().__repr__() + "".join(f"\n  warning: {w}" for w in warnings)


def _source(images: ImagesLike) -> ImageSource:
    if isinstance(images, Generator):
        generator = images

        def batches(batch_size: int) -> Iterator[torch.Tensor]:
            seed = 0
            while True:
                yield generator.sample(batch_size, seed=seed)
                seed += batch_size

        return GeneratorSource(batches, f"generator {generator.source}")
    return as_source(images)  # stores, folders, tensors and arrays, fake_batches callables


def _paths_of(config: TrainConfig) -> dict[SettingPath, Any]:
    """Every setting of `config` by path, so that a TrainConfig is a complete set of overrides."""
    raw = dataclasses.asdict(config)
    values: dict[SettingPath, Any] = {}
    for info in settings():
        value: Any = raw
        for key in info.path:
            value = value[key]
        values[info.path] = value
    return without_planned_length(values)


def _path_of_keyword(name: str) -> SettingPath:
    by_flag = {info.flag[2:].replace("-", "_"): info.path for info in settings() if info.flag}
    if name not in by_flag:
        close = sorted(k for k in by_flag if k[:3] == name[:3])[:5]
        raise ConfigError(f"train() has no setting {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                                                                 "; the names are the train flags' (g_width=, cond=)"))
    return by_flag[name]
