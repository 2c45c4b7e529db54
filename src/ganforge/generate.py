"""Images from a trained run or an exported generator: load G, draw latents per seed, truncate, render.

Each seed fixes one latent, z = randn(z_dim) from a generator seeded with it, so image 7 is the same image
whatever else is generated beside it, on any device. Runs and exports are opened by `ganforge.runs`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data.store import to_uint8
from ganforge.errors import CheckpointError, ConfigError, PartlyWritten
from ganforge.images import grid_shape, make_grid, save_png, to_pil
from ganforge.models import family_of
from ganforge.models.stylegan2 import StyleGAN2Generator
from ganforge.runs import class_names, load_generator, resolve_class
from ganforge.runs.output_guard import check_output_file, check_output_folder, ganforge_png

MAX_IMAGES = 100_000
OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")  # not a folder's name
DRAW_BATCH = 64  # images drawn, then written, at a time into a folder
MAX_GRID_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)  # PIL refuses to open more (DecompressionBombError)
SEED_MAX = 2**32 - 1  # seeds are unsigned 32-bit, as in StyleGAN's tools and the web UI
PSI_RANGE = (-1.0, 2.0)  # psi < 0 gives the "opposite" image, > 1 exaggerates; far outside is only noise


def parse_ranges(text: str, flag: str, example: str) -> list[tuple[str, int, int]]:
    """'0-3,10' -> [('0-3', 0, 3), ('10', 10, 10)]: inclusive ranges as written, for the caller to bound."""
    ranges = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ConfigError(f"{flag}: cannot read {part!r}; write {example}")
        ranges.append((part, int(match.group(1)), int(match.group(2) or match.group(1))))
    return ranges


def parse_seeds(text: str) -> list[int]:
    """'0-3,10' -> [0, 1, 2, 3, 10]; ranges are inclusive, as in StyleGAN's tools."""
    seeds: list[int] = []
    for part, start, end in parse_ranges(text, "--seeds", "seeds like 0-63 or 1,5,9 or 0-9,100"):
        if end < start:
            raise ConfigError(f"--seeds: range {part!r} runs backwards; write {end}-{start}")
        if end > SEED_MAX:
            raise ConfigError(f"--seeds: {end} is above the largest seed {SEED_MAX}; use smaller seeds")
        if len(seeds) + end - start + 1 > MAX_IMAGES:
            raise ConfigError(f"--seeds asks for more than {MAX_IMAGES} images")
        seeds.extend(range(start, end + 1))
    if not seeds:
        raise ConfigError("--seeds is empty; give seeds like 0-63")
    return seeds


def parse_grid(text: str) -> tuple[int, int]:
    """'4x8' -> (4 rows, 8 columns)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ConfigError(f"--grid: cannot read {text!r}; write ROWSxCOLUMNS, e.g. 4x8")
    rows, columns = int(match.group(1)), int(match.group(2))
    if rows * columns > MAX_IMAGES:
        raise ConfigError(f"--grid {text} holds more than {MAX_IMAGES} images; use a smaller grid")
    return rows, columns


def check_psi(psi: float, flag: str = "--truncation") -> float:
    if not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
        raise ConfigError(f"{flag} {psi} is outside [{PSI_RANGE[0]}, {PSI_RANGE[1]}]; 1 = no truncation, "
                          "0.5-0.8 trades variety for typical images")
    return psi


def check_truncation(config: TrainConfig, psi: float, flag: str = "--truncation") -> float:
    """psi, once it is in range and means something for the run's family (a G that normalises z ignores it)."""
    check_psi(psi, flag)
    if psi != 1.0 and not truncates(config):
        raise ConfigError(f"{flag} {psi:g} has no effect on --model {config.model.name}: its generator normalises z "
                          f"to the unit sphere, so pulling z toward its mean changes no image; leave {flag} at 1")
    return psi


def truncates(config: TrainConfig) -> bool:
    """Whether psi changes this run's images (the family declares its truncation space)."""
    return family_of(config.model.name).truncation != "none"


def truncation_space(config: TrainConfig) -> str:
    """Where psi acts for this run: "z" (the latent, here), "w" (inside G, toward its tracked mean w) or "none"."""
    return family_of(config.model.name).truncation


def seed_latents(seeds: list[int], z_dim: int) -> torch.Tensor:
    """z [N, z_dim], one N(0, I) draw per seed from its own torch.Generator (independent of batch and device)."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


def mean_latent(z_dim: int) -> torch.Tensor:
    """The latent that truncation pulls toward: exactly zero here.

    Our generators read z ~ N(0, I) directly (no mapping network), so the mean of the latent distribution is
    known, not estimated: it is the origin. StyleGAN must average many mapped w = f(z) because its truncation
    works in W, whose mean is unknown; a model with a mapping network would estimate its mean here.
    """
    return torch.zeros(z_dim)


def truncate(latents: torch.Tensor, psi: float) -> torch.Tensor:
    """z' = z_mean + psi * (z - z_mean) (Karras et al. 2019, Eq. 3 applied in Z): psi < 1 trades variety for
    images from the dense middle of the distribution, where G is usually best trained."""
    if psi == 1.0:
        return latents
    center = mean_latent(latents.shape[1]).to(latents)
    return center + psi * (latents - center)


def _device_of(generator: nn.Module) -> torch.device:
    parameter = next(generator.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")  # e.g. an ONNX session wrapper


@torch.no_grad()
def render(generator: nn.Module, latents: torch.Tensor, batch: int = 64, labels: torch.Tensor | None = None, *,
           psi: float = 1.0, space: str = "z") -> torch.Tensor:
    """uint8 [N, C, H, W] images for latents [N, z_dim] (and class labels [N] for conditional G), in batches.

    psi truncates in `space` (`truncation_space(config)`): z here, or w inside a G that takes psi."""
    device = _device_of(generator)
    kwargs = {}
    if space == "w":
        kwargs = {"psi": psi} if psi != 1.0 else {}
    else:
        latents = truncate(latents, psi)
    if labels is None:
        return torch.cat([_finite_uint8(generator(z.to(device), **kwargs)) for z in latents.split(batch)])
    return torch.cat([_finite_uint8(generator(z.to(device), y.to(device), **kwargs))
                      for z, y in zip(latents.split(batch), labels.split(batch), strict=True)])


def _finite_uint8(made: torch.Tensor) -> torch.Tensor:
    # to_uint8 would write NaN as black: a damaged G (weights finite, statistics not) must not pass as a dark one.
    if not torch.isfinite(made).all():
        raise CheckpointError("the generator drew NaN or infinite pixels, so its weights are damaged (`ganforge "
                              "doctor` says which); use an earlier checkpoint or export it again")
    return to_uint8(made).cpu()


@torch.no_grad()
def render_styles(generator: StyleGAN2Generator, ws: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """uint8 images for per-layer styles ws [N, num_ws, w_dim] of a style-based G (its `synthesis`)."""
    device = _device_of(generator)
    return torch.cat([to_uint8(generator.synthesis(w.to(device))).cpu() for w in ws.split(batch)])


def write_grid(images: torch.Tensor, seeds: list[int], out: Path, run_dir: Path, columns: int | None,
               text: dict[str, str] | None = None) -> list[Path]:
    """One grid PNG at `out`; `text` (psi, kimg, grid) is written into its metadata beside the run and the seeds."""
    check_output_file(out, "--out", ganforge_png)
    seeds_text = ",".join(map(str, seeds)) if len(seeds) <= 1024 else f"{seeds[0]}..{seeds[-1]} (many)"
    save_png(make_grid(images, columns), out, {"run": str(run_dir), "seeds": seeds_text, **(text or {})})
    return [out]


def write_folder(draw: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], latents: torch.Tensor,
                 labels: torch.Tensor | None, seeds: list[int], out: Path, run_dir: Path,
                 text: dict[str, str] | None = None, classes: list[str] | None = None) -> list[Path]:
    """seedNNNN.png per seed in the folder `out` (seedNNNN-CLASS.png when each image has its own class), drawn and
    written DRAW_BATCH at a time: 100,000 images at 256 px would be 20 GB held whole."""
    names = [f"seed{seed:04d}.png" if classes is None else f"seed{seed:04d}-{_file_safe(classes[i])}.png"
             for i, seed in enumerate(seeds)]
    _check_distinct(names, seeds)
    check_output_folder(out, "--out", names, ganforge_png)  # before the first file is written
    written: list[Path] = []
    try:
        for start in range(0, len(seeds), DRAW_BATCH):
            part = slice(start, start + DRAW_BATCH)
            images = draw(latents[part], None if labels is None else labels[part])
            for i, image in enumerate(images, start):
                own = {} if classes is None else {"class": classes[i]}
                path = out / names[i]
                save_png(to_pil(image.permute(1, 2, 0).numpy()), path,
                         {"run": str(run_dir), "seed": str(seeds[i]), **(text or {}), **own})
                written.append(path)
    except Exception as exc:  # a full disk or a damaged G at image 40,000: say what is there, keep it
        if not written:
            raise
        raise PartlyWritten(exc, len(written), len(seeds), str(out)) from exc
    return written


def _check_distinct(names: list[str], seeds: list[int]) -> None:
    seen: set[str] = set()
    for name, seed in zip(names, seeds, strict=True):
        if name in seen:
            raise ConfigError(f"--seeds gives seed {seed} twice, and each seed is one file ({name}) in a folder; "
                              "give each seed once")
        seen.add(name)


def check_grid_size(count: int, cell_height: int, cell_width: int, columns: int | None) -> None:
    """Refuse a grid PNG of `count` cells that image viewers (and PIL, past its decompression-bomb limit) will not
    open."""
    rows, cols = grid_shape(count, columns)
    height, width = rows * (cell_height + 2) + 2, cols * (cell_width + 2) + 2
    if height * width > MAX_GRID_PIXELS:
        raise ConfigError(f"a grid of {count} images of {cell_width}x{cell_height} px would be {width}x"
                          f"{height} px, more than the {MAX_GRID_PIXELS:,} px image viewers open; give --out a "
                          "folder (one PNG per seed) or fewer seeds")


def _render_grid_images(draw: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor], latents: torch.Tensor,
                        labels: torch.Tensor | None, columns: int | None) -> torch.Tensor:
    """All the grid's images, its size checked on the first one before the rest are drawn."""
    first = draw(latents[:1], None if labels is None else labels[:1])
    check_grid_size(len(latents), first.shape[-2], first.shape[-1], columns)
    rest = draw(latents[1:], None if labels is None else labels[1:]) if len(latents) > 1 else first[:0]
    return torch.cat([first, rest])


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:64] or "class"


# What turns latents [N, z_dim] (with labels, at psi) into uint8 images: plain `render`, or `generate --edit`'s.
Draw = Callable[[nn.Module, torch.Tensor, torch.Tensor | None, float], torch.Tensor]


def _check_class_grid(seeds: int, classes: int, laid_out: bool) -> None:
    """A conditional run's grid without --class: a row per seed, a column per class."""
    if seeds * classes > MAX_IMAGES:
        raise ConfigError(f"{seeds} seeds in each of {classes} classes are {seeds * classes} images, more than "
                          f"{MAX_IMAGES}; give fewer --seeds, or one --class")
    if laid_out:
        raise ConfigError(f"--grid and --columns lay out one class; without --class this run's grid has a row per "
                          f"seed and a column for each of its {classes} classes: add --class NAME, or drop them")


def generate_images(source: Path, seeds: list[int], out: Path, *, psi: float = 1.0, columns: int | None = None,
                    grid: tuple[int, int] | None = None, device: str = "cpu",
                    class_name: str | None = None, draw: Draw | None = None, edit: str = "") -> tuple[list[Path], int]:
    """What `ganforge generate` does: (files written, nimg of the weights used).

    Conditional runs render every seed in `class_name`, or, without it, a per-class grid (one row per seed, one
    column per class) or, into a folder, one file per seed with the classes in turn. `draw` replaces plain
    rendering (`--edit` moves the latents along directions first); `edit` says how, in the PNGs' text.
    """
    check_psi(psi)
    if grid is not None:
        rows, columns = grid
        if len(seeds) != rows * columns:
            raise ConfigError(f"--grid {rows}x{columns} holds {rows * columns} images but {len(seeds)} seeds were "
                              f"given; give {rows * columns} seeds or leave --seeds out")
        if out.suffix.lower() != ".png":
            raise ConfigError(f"--grid writes one image; give --out a .png name instead of {out}")
    folder = out.suffix.lower() != ".png"
    if out.suffix.lower() in OTHER_IMAGE_SUFFIXES:
        raise ConfigError(f"--out {out}: generate writes PNG; name a .png file for one grid, or a folder")
    if folder and columns is not None:
        raise ConfigError(f"--columns lays out a grid, and --out {out} is a folder (one PNG per seed); name a .png "
                          "file, or drop --columns")
    if folder:  # checked again with the files' names before writing; here before minutes of loading
        check_output_folder(out, "--out", [], ganforge_png)
    else:
        check_output_file(out, "--out", ganforge_png)
    generator, config, nimg = load_generator(source, device)
    check_truncation(config, psi)
    if config.model.conditional and class_name is None and not folder:
        _check_class_grid(len(seeds), config.model.num_classes, grid is not None or columns is not None)
    latents = seed_latents(seeds, config.model.z_dim)
    space = truncation_space(config)

    def drawn(z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return draw(generator, z, y, psi) if draw else render(generator, z, labels=y, psi=psi, space=space)

    text = {"psi": f"{psi:g}", "kimg": f"{nimg / 1000:.1f}", **({"edit": edit} if edit else {})}
    labels, classes = None, None
    if class_name is not None:
        labels = torch.full((len(seeds),), resolve_class(source, config, class_name), dtype=torch.long)
        text["class"] = class_name
    elif config.model.conditional and folder:
        # One file per seed, the classes in turn (seed i in class i mod K), so that N files cover every class.
        names = class_names(source, config)
        labels = torch.arange(len(seeds)) % len(names)
        classes = [names[i] for i in labels.tolist()]
    elif config.model.conditional:
        count = config.model.num_classes
        images = _render_grid_images(drawn, latents.repeat_interleave(count, dim=0),
                                     torch.arange(count).repeat(len(seeds)), count)
        save_png(make_grid(images, count), out, {"run": str(source), "seeds": ",".join(map(str, seeds)),
                                                 "layout": "rows = seeds, columns = classes", **text})
        return [out], nimg
    if folder:
        return write_folder(drawn, latents, labels, seeds, out, source, text, classes), nimg
    if grid is not None:
        text["grid"] = f"{grid[0]}x{grid[1]}"
    return write_grid(_render_grid_images(drawn, latents, labels, columns), seeds, out, source, columns, text), nimg
