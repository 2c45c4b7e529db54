"""The style-mixing figure (Karras et al. 2019, Fig. 3; StyleGAN2 Fig. 10 in its appendix): two sets of seeds,
each mapped to W, and a grid of images that take some layers' styles from one seed and the rest from the other.

Layout: the top row shows the column seeds, the left column the row seeds, the top-left cell is blank. Cell
(r, c) renders row seed r's w at every layer except those named by `styles`, which take column seed c's w. The
default `styles` is the upper half of the layers (the finer resolutions: colour scheme, micro-structure), so a
cell keeps its row's coarse styles (pose, face shape) and takes its column's fine ones.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.errors import ConfigError
from ganforge.explore.classes import class_label, class_labels
from ganforge.generate import (
    check_psi,
    check_truncation,
    parse_ranges,
    render_styles,
    seed_latents,
    truncation_space,
)
from ganforge.images import make_grid, save_png
from ganforge.models.stylegan2 import StyleGAN2Generator
from ganforge.runs import load_generator
from ganforge.runs.output_guard import check_output_file, ganforge_png

MAX_SEEDS = 32  # per side: a 33 x 33 grid is already larger than any figure


def parse_styles(text: str | None, num_ws: int) -> list[int]:
    """'0-3' or '8,9,10' -> layer indices within 0..num_ws-1; None -> the upper half (the fine styles)."""
    if text is None:
        return list(range(num_ws // 2, num_ws))
    layers: list[int] = []
    for part, start, end in parse_ranges(text, "--styles", "layers like 0-3 or 4,5,6"):
        if end < start or end >= num_ws:
            raise ConfigError(f"--styles {part!r} is outside this generator's layers 0-{num_ws - 1} (or backwards)")
        layers.extend(range(start, end + 1))
    if not layers:
        raise ConfigError(f"--styles is empty; give layers within 0-{num_ws - 1}, e.g. 0-3")
    return sorted(set(layers))


@torch.no_grad()
def style_mixing(source: Path, rows: list[int], columns: list[int], out: Path, *, styles: str | None = None,
                 psi: float = 1.0, device: str = "cpu", class_name: str | None = None) -> tuple[int, int]:
    """What `ganforge mix` does: writes the grid to `out` and returns its (rows, columns) in images."""
    check_psi(psi)
    for flag, seeds in (("--rows", rows), ("--cols", columns)):
        if not 1 <= len(seeds) <= MAX_SEEDS:
            raise ConfigError(f"{flag} needs 1 to {MAX_SEEDS} seeds, got {len(seeds)}")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: the mixing figure is one image; give a .png name")
    check_output_file(out, "--out", ganforge_png)
    generator, config, nimg = load_generator(source, device)
    if truncation_space(config) != "w":
        raise ConfigError(f"ganforge mix needs a style-based generator with a W space (--model stylegan2); {source} "
                          f"is --model {config.model.name}")
    if not isinstance(generator, StyleGAN2Generator):
        raise ConfigError(f"ganforge mix needs G's mapping and synthesis networks, which {source} (a traced export) "
                          "does not expose; use the run folder or its safetensors export")
    check_truncation(config, psi)
    label = class_label(source, config, class_name)
    layers = parse_styles(styles, generator.num_ws)
    where = next(generator.parameters()).device
    seeds = rows + columns
    z = seed_latents(seeds, config.model.z_dim).to(where)
    w = generator.mapping(z, class_labels(label, len(seeds), where), psi)  # [N, w_dim]
    ws = w.unsqueeze(1).repeat(1, generator.num_ws, 1)  # [N, num_ws, w_dim]
    row_ws, column_ws = ws[: len(rows)], ws[len(rows):]
    from_column = torch.zeros(generator.num_ws, dtype=torch.bool, device=where)
    from_column[layers] = True
    cells = [torch.where(from_column.view(-1, 1), column_ws[c], row_ws[r])
             for r in range(len(rows)) for c in range(len(columns))]
    pictures = render_styles(generator, torch.cat([ws, torch.stack(cells)]))
    singles, mixed = pictures[: len(seeds)], pictures[len(seeds):]
    blank = torch.zeros_like(singles[:1])
    grid = [blank, singles[len(rows):]]
    for r in range(len(rows)):
        grid += [singles[r: r + 1], mixed[r * len(columns): (r + 1) * len(columns)]]
    text = {"run": str(source), "rows": ",".join(map(str, rows)), "cols": ",".join(map(str, columns)),
            "styles from cols": ",".join(map(str, layers)), "psi": f"{psi:g}", "kimg": f"{nimg / 1000:.1f}",
            "layout": "top row: column seeds; left column: row seeds; cells: row styles with the column's "
                      "--styles layers"}
    save_png(make_grid(torch.cat(grid), columns=len(columns) + 1), out, text)
    return len(rows) + 1, len(columns) + 1
