"""Semantic directions in a generator's latent space, and edits along them (`--edit`, `G.edit`, serve's sliders).
How they are found (sefa, ganspace, labels) is direction_search.py.

A direction is a unit vector in z (or W, with a range of style layers for StyleGAN2) with a scale: the standard
deviation of latents along it, so that amounts are in the units a user can reason about (+-3 is far).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data.store import to_uint8
from ganforge.errors import ConfigError
from ganforge.generate import seed_latents, truncate
from ganforge.images import make_grid, save_png
from ganforge.regular_files import check_regular, read_json
from ganforge.whole_files import written_whole

TENSORS, RECORD, FIGURE = "directions.safetensors", "directions.json", "directions.png"


@dataclass(frozen=True)
class Directions:
    method: str
    space: str  # "z", or "w" for a style-based G
    vectors: torch.Tensor  # [k, dim], unit rows, strongest first
    scales: torch.Tensor  # [k]: the latents' standard deviation along each
    values: list[float]  # per direction: eigenvalue (sefa), explained variance (ganspace), R^2 (labels)
    layers: tuple[int, int] | None = None  # W: the style layers [start, end) an edit moves; None: all
    source: str = ""
    score: str = ""  # labels: the statistic fitted

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def delta(self, amounts: dict[int, float]) -> torch.Tensor:
        """The latent offset of `amounts` ({direction index: amount in its scale}) [dim]."""
        for index in amounts:
            if not 0 <= index < len(self):
                raise ConfigError(f"direction {index} does not exist: this file has 0-{len(self) - 1}")
        return sum((amount * self.scales[i] * self.vectors[i] for i, amount in amounts.items()),
                   torch.zeros(self.vectors.shape[1]))

    def save(self, folder: Path) -> None:
        """directions.safetensors and directions.json, each written whole (the tensors first: a folder whose
        record is missing or older is refused by `load_directions`'s checks or reads as the earlier set)."""
        record = {"ganforge_directions": 1, "method": self.method, "space": self.space, "count": len(self),
                  "values": self.values, "layers": list(self.layers) if self.layers else None,
                  "source": self.source, "score": self.score}
        with written_whole(folder / TENSORS) as temporary:
            save_file({"vectors": self.vectors.contiguous(), "scales": self.scales.contiguous()}, str(temporary))
        with written_whole(folder / RECORD) as temporary:
            temporary.write_text(json.dumps(record, indent=2))


def load_directions(folder: Path) -> Directions:
    """A folder `ganforge directions` wrote, checked (ConfigError naming it when it is not one)."""
    try:
        record = read_json(folder / RECORD)
        check_regular(folder / TENSORS)
        tensors = load_file(str(folder / TENSORS))
    except Exception as exc:  # OSError, ValueError, or safetensors' own error type
        raise ConfigError(f"{folder} is not a directions folder ({exc}); write one with `ganforge directions RUN "
                          "--out DIR`") from exc
    vectors, scales = tensors.get("vectors"), tensors.get("scales")
    ok = (isinstance(record, dict) and record.get("ganforge_directions") == 1 and vectors is not None
          and scales is not None and vectors.dim() == 2 and scales.shape == (vectors.shape[0],)
          and bool(torch.isfinite(vectors).all()) and bool(torch.isfinite(scales).all()))
    layers = record.get("layers") if isinstance(record, dict) else None
    if not ok or record.get("space") not in ("z", "w") or not (layers is None or _is_range(layers)):
        raise ConfigError(f"{folder}/{RECORD} and {TENSORS} do not hold directions this ganforge wrote; write them "
                          "again with `ganforge directions`")
    assert vectors is not None and scales is not None
    return Directions(str(record.get("method")), record["space"], vectors.float(), scales.float(),
                      [float(v) for v in record.get("values", [])], tuple(layers) if layers else None,
                      str(record.get("source", "")), str(record.get("score", "")))


def _is_range(layers: object) -> bool:
    return (isinstance(layers, list) and len(layers) == 2 and all(type(v) is int for v in layers)
            and 0 <= layers[0] < layers[1] <= 64)


def style_based(generator: nn.Module) -> bool:
    return hasattr(generator, "mapping") and hasattr(generator, "synthesis")


def mapping_network(generator: nn.Module) -> nn.Module:
    return generator.get_submodule("mapping")


def style_count(generator: nn.Module) -> int:
    count = generator.get_submodule("synthesis").num_ws
    assert isinstance(count, int)
    return count


Edit = tuple[Directions, dict[int, float]]  # directions and {index: amount in the direction's scale}


@torch.no_grad()
def edited_images(generator: nn.Module, latents: torch.Tensor, edits: Sequence[Edit],
                  labels: torch.Tensor | None = None, psi: float = 1.0, *, in_w: bool = False,
                  batch: int = 64) -> torch.Tensor:
    """uint8 images of `latents` (z [N, z_dim], or with `in_w` w [N, w_dim] or W+ [N, num_ws, w_dim]) moved by
    every edit, in batches.
    In W each edit moves its directions' style layers only (GANSpace's layer-wise edits)."""
    spaces = {directions.space for directions, _ in edits}
    if len(spaces) > 1:
        raise ConfigError("--edit: directions in z and in W cannot be combined; use one kind")
    space = spaces.pop() if spaces else ("w" if in_w else "z")
    if space == "w" and not style_based(generator):
        raise ConfigError("these directions are in W, for a style-based generator (stylegan2); this one reads z")
    if space == "z" and in_w:
        raise ConfigError("these directions are in z; pass z latents")
    device = next(generator.parameters()).device
    for directions, _ in edits:
        _check_fits(directions, generator, latents.shape[-1] if space == "z" or in_w else None)
    deltas = [(directions.delta(amounts).to(device), directions.layers) for directions, amounts in edits]
    images = []
    for start in range(0, len(latents), batch):
        chunk = latents[start:start + batch].to(device)
        label = labels[start:start + batch].to(device) if labels is not None else None
        if space == "z":
            moved = truncate(chunk, psi) + sum((delta for delta, _ in deltas), torch.zeros_like(chunk[0]))
            images.append(to_uint8(generator(moved, label) if label is not None else generator(moved)).cpu())
            continue
        w = chunk if in_w else mapping_network(generator)(chunk, label, psi)
        num_ws = style_count(generator)
        ws = w.clone() if w.dim() == 3 else w.unsqueeze(1).repeat(1, num_ws, 1)  # W+ latents: one w per layer
        for delta, layers in deltas:
            first, last = layers or (0, num_ws)
            ws[:, first:last] += delta
        images.append(to_uint8(generator.get_submodule("synthesis")(ws)).cpu())
    return torch.cat(images)


def _check_fits(directions: Directions, generator: nn.Module, latent_dim: int | None) -> None:
    """ConfigError unless `directions` move this generator's latents (`latent_dim` wide; None: its W, sized by
    its mapping network) and, in W, name style layers it has: directions found for another model would fail deep
    in a matrix product, or silently move nothing."""
    if latent_dim is None:
        latent_dim = int(getattr(mapping_network(generator), "w_dim", directions.vectors.shape[1]))
    found = f"directions found for another model ({directions.source or 'unknown source'})"
    if directions.vectors.shape[1] != latent_dim:
        raise ConfigError(f"--edit: these are {found}: {directions.vectors.shape[1]}-dimensional, and this "
                          f"generator's {directions.space} has {latent_dim} dimensions; find directions for it with "
                          "`ganforge directions RUN --out DIR`")
    if directions.layers and directions.layers[1] > style_count(generator):
        raise ConfigError(f"--edit: these are {found}: they move style layers {directions.layers[0]}-"
                          f"{directions.layers[1] - 1}, and this generator has {style_count(generator)}; find "
                          "directions for it with `ganforge directions RUN --out DIR`")


def write_figure(generator: nn.Module, config: TrainConfig, directions: Directions, seeds: list[int], path: Path,
                 steps: int = 7, span: float = 3.0) -> None:
    """One row per direction: each seed moved from -span to +span of the direction's scale in `steps` steps."""
    z = seed_latents(seeds, config.model.z_dim)
    labels = torch.arange(len(seeds)) % config.model.num_classes if config.model.conditional else None
    amounts = torch.linspace(-span, span, steps).tolist()
    rows = []
    for index in range(len(directions)):
        for seed_index in range(len(seeds)):
            repeated = z[seed_index:seed_index + 1].repeat(steps, 1)
            label = None if labels is None else labels[seed_index:seed_index + 1].repeat(steps)
            rows.append(torch.cat([edited_images(generator, repeated[i:i + 1], [(directions, {index: a})],
                                                 None if label is None else label[i:i + 1])
                                   for i, a in enumerate(amounts)]))
    text = {"method": directions.method, "amounts": f"-{span:g}..{span:g} x scale", "seeds": ",".join(map(str, seeds))}
    save_png(make_grid(torch.cat(rows), steps * len(seeds)), path, text)


def parse_edits(texts: Sequence[str]) -> list[Edit]:
    """`--edit DIR:INDEX=AMOUNT` flags -> edits, one per directions folder (each folder read once)."""
    by_folder: dict[str, dict[int, float]] = {}
    for text in texts:
        folder, _, move = text.rpartition(":")
        index, _, amount = move.partition("=")
        try:
            step = float(amount)
        except ValueError:
            step = math.nan  # refused below, with the form to write
        index_ok = re.fullmatch(r"\d+", index.strip(), re.ASCII) is not None  # not '²', which isdigit() takes
        total = (by_folder.get(folder, {}).get(int(index), 0.0) if index_ok else 0.0) + step
        if not folder or not index_ok or not -100 <= total <= 100:
            raise ConfigError(f"--edit {text!r}: write DIR:INDEX=AMOUNT, e.g. dirs:0=2 (AMOUNT in the direction's "
                              "scale, within +-100 for each direction, repeated --edit flags included)")
        by_folder.setdefault(folder, {})[int(index)] = total
    return [(load_directions(Path(folder)), amounts) for folder, amounts in by_folder.items()]


def edit_drawer(edits: Sequence[Edit]) -> Callable[[nn.Module, torch.Tensor, torch.Tensor | None, float],
                                                   torch.Tensor]:
    """What `generate --edit` renders with: latents moved by `edits`, then drawn."""
    return lambda generator, z, labels, psi: edited_images(generator, z, edits, labels, psi)
