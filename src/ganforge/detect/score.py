"""`ganforge detect DET IMAGES...`: the probability that each image is generated. Files, folders (searched) and
glob patterns; an unreadable file is reported and skipped, never a crash."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ganforge.detect.data import resize
from ganforge.detect.train import Detector
from ganforge.errors import DataError
from ganforge.regular_files import open_regular
from ganforge.runs.output_guard import check_output_file, json_report
from ganforge.whole_files import written_whole

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
MAX_PIXELS = 64 << 20  # larger images are refused as bombs, as `prepare` does


def expand(patterns: list[str]) -> list[Path]:
    """Files named, found under folders, or matched by glob patterns, each once, in the order given."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = [Path(p) for p in sorted(glob.glob(pattern))] if glob.has_magic(pattern) else [Path(pattern)]
        for match in matches:
            if match.is_dir():
                found.update(dict.fromkeys(sorted(p for p in match.rglob("*") if p.suffix.lower() in SUFFIXES)))
            else:
                found[match] = None
    if not found:
        raise DataError(f"no images matched {' '.join(patterns)}; pass image files, folders or glob patterns")
    return list(found)


def read_image(path: Path, size: int) -> torch.Tensor:
    """uint8 [3, size, size]; DataError naming the file when it is not a readable image."""
    try:
        if not os.path.lexists(path):
            raise OSError("no such file")
        with open_regular(path) as f, Image.open(f) as picture:  # a FIFO is "not a regular file", not "missing"
            if picture.width * picture.height > MAX_PIXELS:
                raise OSError(f"{picture.width}x{picture.height} is too large")
            pixels = np.asarray(picture.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as exc:
        raise DataError(f"{path}: {exc}") from exc
    return resize(torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None], size)[0]


def score_files(detector: Detector, paths: list[Path]) -> tuple[dict[str, float], dict[str, str]]:
    """({file: P(generated)}, {file: why it was skipped})."""
    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    batch: list[tuple[Path, torch.Tensor]] = []

    def flush() -> None:
        if batch:
            probabilities = detector.probabilities(torch.stack([image for _, image in batch]))
            scores.update({str(p): float(q) for (p, _), q in zip(batch, probabilities, strict=True)})
            batch.clear()

    for path in paths:
        try:
            batch.append((path, read_image(path, detector.config.size)))
        except DataError as exc:
            skipped[str(path)] = str(exc).removeprefix(f"{path}: ")
        if len(batch) == 256:
            flush()
    flush()
    return scores, skipped


def check_json_out(path: Path, images: list[str]) -> None:
    """Refuse a --json that would replace a file other than an earlier score report, or land in a run, export,
    detector or image folder (checked before the detector is loaded)."""
    inputs = [Path(p) for p in images if not glob.has_magic(p)]
    check_output_file(path, "--json", json_report(lambda v: isinstance(v, dict) and "p_generated" in v),
                      inputs=inputs)


def write_json(path: Path, scores: dict[str, float], skipped: dict[str, str], detector: Detector) -> None:
    record = {"detector": str(detector.folder), "step": detector.step, "trained_on": detector.config.fake,
              "p_generated": scores, "skipped": skipped}
    with written_whole(path) as temporary:
        temporary.write_text(json.dumps(record, indent=2))
