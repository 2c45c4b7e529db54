"""Vector arithmetic on latents (Radford et al. 2016, Section 6.3 and Figure 7).

Single latents are too noisy for arithmetic, so each concept is the mean of a few seeds' latents (the paper
averages three): result = mean(a) - mean(b) + mean(c), e.g. smiling woman - neutral woman + neutral man. The
grid shows one row per group (its samples, then the image of its mean latent) and a last row with the result
followed by variations: the result plus uniform noise in [-0.25, 0.25] per coordinate, as in the paper, which
shows whether the effect is robust or a fluke of one latent.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.errors import ConfigError
from ganforge.explore.classes import class_label, class_labels
from ganforge.generate import check_psi, check_truncation, render, seed_latents, truncation_space
from ganforge.images import make_grid, save_png
from ganforge.runs import load_generator
from ganforge.runs.output_guard import check_output_file, ganforge_png

NOISE = 0.25  # half-width of the uniform noise added to the result for its variations
MAX_GROUP = 32  # seeds per group; the means stop changing long before this


def combine(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """[Na, z], [Nb, z], [Nc, z] -> [z]: mean(a) - mean(b) + mean(c)."""
    return a.mean(0) - b.mean(0) + c.mean(0)


def arithmetic(source: Path, a: list[int], b: list[int], c: list[int], out: Path, *, psi: float = 1.0,
               variations: int | None = None, device: str = "cpu", class_name: str | None = None) -> torch.Tensor:
    """What `ganforge arithmetic` does: writes the grid to `out` and returns the result latent [z_dim]. A
    conditional run does the arithmetic on z and draws every cell in `class_name`."""
    check_psi(psi)
    for flag, group in (("--a", a), ("--b", b), ("--c", c)):
        if not 1 <= len(group) <= MAX_GROUP:
            raise ConfigError(f"{flag} needs 1 to {MAX_GROUP} seeds, got {len(group)}")
    if variations is not None and not 0 <= variations <= MAX_GROUP:
        raise ConfigError(f"--variations must be between 0 and {MAX_GROUP}")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: the arithmetic grid is one image; give a .png name")
    check_output_file(out, "--out", ganforge_png)
    generator, config, nimg = load_generator(source, device)
    check_truncation(config, psi)
    label = class_label(source, config, class_name)
    z_dim = config.model.z_dim
    groups = [seed_latents(group, z_dim) for group in (a, b, c)]
    result = combine(*groups)
    columns = max(len(g) for g in groups) + 1
    count = columns - 1 if variations is None else variations
    noise = torch.rand(count, z_dim, generator=torch.Generator().manual_seed(0)) * 2 * NOISE - NOISE
    rows = [torch.cat([g, g.mean(0, keepdim=True)]) for g in groups] + [torch.cat([result[None], result + noise])]
    # Truncation applies to what is rendered, after the arithmetic: psi scales the result as it would any latent.
    images = [render(generator, row, labels=class_labels(label, len(row)), psi=psi, space=truncation_space(config))
              for row in rows]
    width = max(columns, len(rows[-1]))
    blank = torch.zeros(1, *images[0].shape[1:], dtype=torch.uint8)
    cells = torch.cat([torch.cat([row, blank.expand(width - len(row), -1, -1, -1)]) for row in images])
    text = {"run": str(source), "a": _seeds(a), "b": _seeds(b), "c": _seeds(c), "psi": f"{psi:g}",
            "kimg": f"{nimg / 1000:.1f}",
            "layout": "rows a, b, c: samples then the mean; last row: mean(a)-mean(b)+mean(c), then variations"}
    if class_name is not None:
        text["class"] = class_name
    save_png(make_grid(cells, columns=width), out, text)
    return result


def _seeds(seeds: list[int]) -> str:
    return ",".join(map(str, seeds))
