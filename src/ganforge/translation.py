"""`ganforge translate RUN INPUTS/ --out OUTPUTS/` and `gf.translate`: images through an image-to-image run's G.

Inputs are decoded by the dataset doctor exactly as `prepare` decodes training images (EXIF rotation, alpha,
palettes, 16-bit, bombs), fitted to the size the model takes, and each becomes one PNG under the same relative
name in OUTPUTS; an input the doctor rejects is reported with its reason and the others go on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ganforge.data.decode import SkipInput, Target, decode, pillow_limits
from ganforge.data.prepare import CROP_MODES, PrepareOptions
from ganforge.data.sources import Entry, FileSource, open_source
from ganforge.data.store import to_float, to_uint8
from ganforge.device import resolve_device
from ganforge.errors import ConfigError, DataError
from ganforge.progress import progress as progress_of
from ganforge.runs import LoadedTranslator, load_translator

DIRECTIONS = ("a2b", "b2a")


@dataclass
class TranslateReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # [{"path", "reason"}] of every rejected input

    def summary(self, out: Path) -> str:
        total = len(self.written) + len(self.skipped)
        return f"translated {len(self.written)} of {total} inputs into {out}; skipped {len(self.skipped)}"


def translate_folder(run_dir: Path, inputs: Path, out: Path, *, direction: str = "a2b", crop: str = "center",
                     device: str = "cpu", batch: int = 16, progress: bool = True) -> TranslateReport:
    """Translate every image in `inputs` (a folder or an archive of images) with `run_dir`'s generator."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"--direction must be {' or '.join(DIRECTIONS)}, got {direction!r}")
    if crop not in CROP_MODES:
        raise ConfigError(f"--crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
    _check_out(inputs, out)
    torch_device = resolve_device(device)
    loaded = load_translator(run_dir, direction, torch_device)
    channels, height, width = loaded.input_shape
    target = Target(height, width, channels, crop, (255, 255, 255), (0, 0, 0))
    limits = PrepareOptions().max_pixels
    report = TranslateReport()
    with pillow_limits(limits), open_source(inputs, limits * 8 + (16 << 20)) as source:
        if not isinstance(source, FileSource):
            raise DataError(f"{inputs}: translate reads a folder or an archive of images, not an array file")
        report.skipped += source.skipped
        names = _output_names(source.entries)
        pending: list[tuple[Path, np.ndarray]] = []
        for entry in progress_of(source.entries, desc="translating", enabled=progress):
            try:
                with entry.open() as fp:
                    pending.append((out / names[entry.name], decode(fp, target)))
            except SkipInput as skip:
                report.skipped.append({"path": entry.name, "reason": skip.reason})
            if len(pending) == batch:
                report.written += _translate(loaded.translator, pending, torch_device)
                pending = []
        report.written += _translate(loaded.translator, pending, torch_device)
    if not report.written:
        reasons = ", ".join(sorted({s["reason"] for s in report.skipped})) or "no images"
        raise DataError(f"{inputs}: no input could be translated ({reasons}); pass a folder of jpg, png, webp, bmp, "
                        "tif or gif images")
    return report


def _check_out(inputs: Path, out: Path) -> None:
    """OUTPUTS must be a folder outside INPUTS: writing into the inputs would mix results with what is read."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for the translated images")
    real_in, real_out = Path(os.path.realpath(inputs)), Path(os.path.realpath(out))
    if inputs.is_dir() and (real_out == real_in or real_out.is_relative_to(real_in)):
        raise ConfigError(f"--out {out} is inside the inputs folder {inputs}; write the translations elsewhere, e.g. "
                          f"--out {real_in.parent / (real_in.name + '-translated')}")


def _output_names(entries: list[Entry]) -> dict[str, str]:
    """Input name -> output PNG name: the same relative path with .png, keeping the suffix when two inputs would
    collide (photo.jpg and photo.png -> photo.png and photo.jpg.png)."""
    taken: set[str] = set()
    names = {}
    for entry in entries:
        name = str(Path(entry.name).with_suffix(".png"))
        if name in taken:
            name = entry.name + ".png"
        taken.add(name)
        names[entry.name] = name
    return names


def translate_images(loaded: LoadedTranslator, images: torch.Tensor | np.ndarray, *, batch: int = 16
                     ) -> torch.Tensor:
    """uint8 images [N, C, H, W] of the size the translator takes -> its uint8 translations, on the CPU."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != tuple(loaded.input_shape):
        raise ConfigError(f"translate takes uint8 images [N, {', '.join(map(str, loaded.input_shape))}] (N, C, H, W), "
                          f"got {images.dtype} {list(images.shape)}; pass a folder to fit images of other sizes")
    if batch < 1:
        raise ConfigError(f"batch must be at least 1, got {batch}")
    device = next(loaded.translator.parameters(), torch.empty(0)).device
    parts = [_run(loaded.translator, images[start:start + batch], device) for start in range(0, len(images), batch)]
    return torch.cat(parts) if parts else images.new_empty((0, *loaded.output_shape))


@torch.no_grad()
def _run(translator: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return to_uint8(translator(to_float(images).to(device)).float()).cpu()


def _translate(translator: nn.Module, pending: list[tuple[Path, np.ndarray]], device: torch.device) -> list[Path]:
    """Run one batch and write each output as a PNG; the paths written."""
    if not pending:
        return []
    outputs = _run(translator, torch.from_numpy(np.stack([pixels for _, pixels in pending])), device).numpy()
    for (path, _), pixels in zip(pending, outputs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(pixels[0], "L") if pixels.shape[0] == 1 else Image.fromarray(
            pixels.transpose(1, 2, 0), "RGB")
        image.save(path)
    return [path for path, _ in pending]
