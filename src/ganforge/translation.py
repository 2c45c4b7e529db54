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
from ganforge.images import save_png
from ganforge.progress import progress as progress_of
from ganforge.runs import LoadedTranslator, load_translator
from ganforge.runs.output_guard import check_output_folder, ganforge_png

DIRECTIONS = ("a2b", "b2a")
NAME_MAX_BYTES = 255  # the longest file or folder name on ext4, XFS, btrfs and APFS
PATH_MAX_BYTES = 4096  # Linux's longest path a system call takes


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
    check_output_folder(out, "--out", [], ganforge_png, inputs=[inputs], around_inputs=True)
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
        named = []
        for entry, name in zip(source.entries, _output_names(source.entries), strict=True):
            if (too_long := _too_long(out, name)) is not None:
                report.skipped.append({"path": entry.name, "reason": too_long})
            else:
                named.append((entry, name))
        # Before any is written: a refusal changes nothing.
        check_output_folder(out, "--out", [name for _, name in named], ganforge_png)
        mark = {"run": str(run_dir), "direction": direction}
        pending: list[tuple[Path, np.ndarray]] = []
        for entry, name in progress_of(named, desc="translating", enabled=progress):
            try:
                with entry.open() as fp:
                    pending.append((out / name, decode(fp, target)))
            except SkipInput as skip:
                report.skipped.append({"path": entry.name, "reason": skip.reason})
            if len(pending) == batch:
                report.written += _translate(loaded.translator, pending, torch_device, mark)
                pending = []
        report.written += _translate(loaded.translator, pending, torch_device, mark)
    if not report.written:
        reasons = ", ".join(sorted({s["reason"] for s in report.skipped})) or "no images"
        raise DataError(f"{inputs}: no input could be translated ({reasons}); pass a folder of jpg, png, webp, bmp, "
                        "tif or gif images")
    return report


def _output_names(entries: list[Entry]) -> list[str]:
    """One distinct output PNG name per input, in order: the same relative path with .png; when two inputs would
    collide (photo.jpg and photo.png, an archive holding a.png twice, x.png beside a folder x.png/), the later
    keeps its suffix and then gets -2, -3, ... (flattened into the top folder if need be). Names are compared
    case-folded, as a Mac or Windows disk does."""
    taken: set[str] = set()  # every output file and every folder above one
    names = []
    for entry in entries:
        stem, flat = Path(entry.name).with_suffix(""), str(Path(entry.name).with_suffix("")).replace("/", "_")
        # The flat names come last: a name under a folder that is taken as a file (x.png/y.png) can use none other.
        candidates = (str(stem) + ".png", entry.name + ".png", *(f"{stem}-{n}.png" for n in range(2, 10)),
                      *(f"{flat}-{n}.png" for n in range(2, len(entries) + 3)))
        name = next(c for c in candidates if not _collides(c, taken))
        taken.add(name.casefold())
        taken.update(str(parent).casefold() for parent in Path(name).parents if str(parent) != ".")
        names.append(name)
    return names


def _too_long(out: Path, name: str) -> str | None:
    """Why the file system cannot hold the output `name` under `out` (an archive member's name has no limit), or
    None when it can."""
    if any(len(os.fsencode(part)) > NAME_MAX_BYTES for part in Path(name).parts):
        return f"name too long for an output file (a part of it over {NAME_MAX_BYTES} bytes)"
    if len(os.fsencode(str(out / name))) >= PATH_MAX_BYTES:
        return f"path too long for an output file (over {PATH_MAX_BYTES} bytes under --out)"
    return None


def _collides(name: str, taken: set[str]) -> bool:
    """Whether `name` is taken as a file or folder, or one of its folders is taken as a file."""
    return name.casefold() in taken or any(str(p).casefold() in taken for p in Path(name).parents if str(p) != ".")


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


def _translate(translator: nn.Module, pending: list[tuple[Path, np.ndarray]], device: torch.device,
               mark: dict[str, str]) -> list[Path]:
    """Run one batch and write each output as a PNG (with ganforge's mark, so a rerun may replace it); the paths
    written."""
    if not pending:
        return []
    outputs = _run(translator, torch.from_numpy(np.stack([pixels for _, pixels in pending])), device).numpy()
    for (path, _), pixels in zip(pending, outputs, strict=True):
        image = Image.fromarray(pixels[0], "L") if pixels.shape[0] == 1 else Image.fromarray(
            pixels.transpose(1, 2, 0), "RGB")
        save_png(image, path, mark)
    return [path for path, _ in pending]
