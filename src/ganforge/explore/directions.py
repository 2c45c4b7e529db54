"""Semantic directions in a generator's latent space, and edits along them (`ganforge directions`, `--edit`).

Three ways to find them:
- sefa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): the top eigenvectors of
  A^T A, where A is the first weight that reads the latent (DCGAN's, FastGAN's and Projected GAN's first
  transposed convolution, MLP's and R3GAN's first linear layer) or, for StyleGAN2, the style affine layers of the
  chosen synthesis layers: the latent moves that change that first layer most. No sampling, a closed form.
- ganspace (Haerkoenen et al. 2020): principal components of sampled W (StyleGAN2), or of the first layer's
  activations regressed back onto z (the paper's BigGAN variant) for the other families.
- labels (an InterFaceGAN-style boundary, Shen et al. 2020): the normal of a linear fit of a score of the
  generated images (a named image statistic: brightness, contrast, saturation, red, green, blue) on their latents.

A direction is a unit vector in z (or W, with a range of style layers for StyleGAN2) with a scale: the standard
deviation of latents along it, so that amounts are in the units a user can reason about (+-3 is far).
"""

from __future__ import annotations

import json
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
from ganforge.runs import load_generator

METHODS = ("sefa", "ganspace", "labels")
SCORES = ("brightness", "contrast", "saturation", "red", "green", "blue")
TENSORS, RECORD, FIGURE = "directions.safetensors", "directions.json", "directions.png"
SAMPLES = 2000  # latents sampled for ganspace, labels and W scales


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
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.vectors.contiguous(), "scales": self.scales.contiguous()}, str(folder / TENSORS))
        record = {"ganforge_directions": 1, "method": self.method, "space": self.space, "count": len(self),
                  "values": self.values, "layers": list(self.layers) if self.layers else None,
                  "source": self.source, "score": self.score}
        (folder / RECORD).write_text(json.dumps(record, indent=2))


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


def _mapping(generator: nn.Module) -> nn.Module:
    return generator.get_submodule("mapping")


def _num_ws(generator: nn.Module) -> int:
    count = generator.get_submodule("synthesis").num_ws
    assert isinstance(count, int)
    return count


def find_directions(generator: nn.Module, config: TrainConfig, method: str, k: int, *,
                    layers: tuple[int, int] | None = None, score: str = "brightness", samples: int = SAMPLES,
                    source: str = "") -> Directions:
    """The top `k` directions of `generator` (eval mode, on the CPU) by `method`."""
    if method not in METHODS:
        raise ConfigError(f"--method {method!r}: choose {', '.join(METHODS)}")
    styled = style_based(generator)
    if layers is not None and not styled:
        raise ConfigError("--layers picks StyleGAN2's style layers; this generator reads z once: drop --layers")
    if styled:
        num_ws = _num_ws(generator)
        layers = layers or (0, num_ws)
        if not 0 <= layers[0] < layers[1] <= num_ws:
            raise ConfigError(f"--layers {layers[0]}-{layers[1] - 1} is outside this G's style layers 0-{num_ws - 1}")
    with torch.no_grad():
        z = seed_latents(list(range(samples)), config.model.z_dim)
        labels = torch.arange(samples) % config.model.num_classes if config.model.conditional else None
        latents = _mapping(generator)(z, labels) if styled else z
        if method == "sefa":
            vectors, values = _top_eigenvectors(_sefa_matrix(generator, config, layers), k)
        elif method == "ganspace":
            vectors, values = _ganspace(generator, config, z, latents, labels, k, styled)
        else:
            vectors, values = _boundary(generator, latents, labels, score, styled)
    scales = (latents - latents.mean(0)) @ vectors.T
    return Directions(method, "w" if styled else "z", vectors, scales.std(0), values,
                      layers if styled else None, source, score if method == "labels" else "")


def _sefa_matrix(generator: nn.Module, config: TrainConfig, layers: tuple[int, int] | None) -> torch.Tensor:
    """A: [outputs, latent dim], the linear map from the latent to the first thing it drives."""
    if layers is not None:  # StyleGAN2: style affines of layers [start, end) (ws index order, see synthesis)
        weights = [_weight(module) for index, module in _style_affines(generator) if layers[0] <= index < layers[1]]
        return torch.cat([w.reshape(w.shape[0], -1) for w in weights])
    module = latent_layer(generator, config.model.z_dim)
    weight = module.weight.detach().float()
    if isinstance(module, nn.ConvTranspose2d):  # [z_dim, out, kh, kw]: each z unit paints a pattern
        return weight.reshape(weight.shape[0], -1).T
    return weight  # Linear [out, z_dim]


def _weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight.detach().float()


def latent_layer(generator: nn.Module, z_dim: int) -> nn.Linear | nn.ConvTranspose2d:
    """The first layer that reads z: a Linear with z_dim inputs or a ConvTranspose2d with z_dim input channels."""
    for module in generator.modules():
        if isinstance(module, nn.Linear) and module.in_features == z_dim:
            return module
        if isinstance(module, nn.ConvTranspose2d) and module.in_channels == z_dim:
            return module
    raise ConfigError(f"this generator has no first layer reading z ({z_dim} inputs) for sefa; use --method "
                      "ganspace or labels")


def _style_affines(generator: nn.Module) -> list[tuple[int, nn.Module]]:
    """(ws index, affine layer) of a StyleGAN2 synthesis network: convs[0] reads ws[0], to_rgb[0] ws[1], and at
    level l >= 1 convs[2l-1], convs[2l] and to_rgb[l] read ws[2l-1], ws[2l] and ws[2l+1]."""
    synthesis = generator.get_submodule("synthesis")
    def affine(layer: nn.Module) -> nn.Module:
        return next(module for name, module in layer.named_modules() if name.endswith("affine"))

    found = [(i, affine(conv)) for i, conv in enumerate(synthesis.get_submodule("convs").children())]
    found += [(2 * level + 1, affine(rgb)) for level, rgb in enumerate(synthesis.get_submodule("to_rgb").children())]
    return found


def _top_eigenvectors(matrix: torch.Tensor, k: int) -> tuple[torch.Tensor, list[float]]:
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix.T @ matrix).double())
    order = eigenvalues.argsort(descending=True)[:k]
    return eigenvectors[:, order].T.float(), [float(v) for v in eigenvalues[order]]


def _ganspace(generator: nn.Module, config: TrainConfig, z: torch.Tensor, latents: torch.Tensor,
              labels: torch.Tensor | None, k: int, styled: bool) -> tuple[torch.Tensor, list[float]]:
    if styled:  # PCA of W itself
        centred = latents - latents.mean(0)
        _, singular, components = torch.linalg.svd(centred.double(), full_matrices=False)
        variance = singular ** 2 / (singular ** 2).sum()
        return components[:k].float(), [float(v) for v in variance[:k]]
    layer = latent_layer(generator, config.model.z_dim)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _, __, output: captured.append(output.flatten(1)))
    try:
        generator(z, labels) if labels is not None else generator(z)
    finally:
        handle.remove()
    activations = captured[0].double()
    centred = activations - activations.mean(0)
    _, singular, components = torch.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ components[:k].T  # [N, k]
    # z from the components' coordinates by least squares: each component's direction in z (GANSpace Sec. 2).
    mapped = torch.linalg.lstsq(coordinates, z.double()).solution  # [k, z_dim]
    variance = singular ** 2 / (singular ** 2).sum()
    return nn.functional.normalize(mapped, dim=1).float(), [float(v) for v in variance[:k]]


def image_score(images: torch.Tensor, score: str) -> torch.Tensor:
    """A named statistic of uint8 images [N, C, H, W] -> [N]."""
    x = images.float() / 255
    rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    grey = rgb.mean(1)
    if score == "brightness":
        return grey.mean((1, 2))
    if score == "contrast":
        return grey.flatten(1).std(1)
    if score == "saturation":
        return (rgb.amax(1) - rgb.amin(1)).mean((1, 2))
    if score in ("red", "green", "blue"):
        return (rgb[:, ("red", "green", "blue").index(score)] - grey).mean((1, 2))
    raise ConfigError(f"--score {score!r}: choose {', '.join(SCORES)}")


def _boundary(generator: nn.Module, latents: torch.Tensor, labels: torch.Tensor | None, score: str,
              styled: bool) -> tuple[torch.Tensor, list[float]]:
    """The normal of the least-squares linear fit of the images' score on their latents, and the fit's R^2."""
    images = torch.cat([to_uint8(_draw(generator, chunk, None if labels is None else labels[i:i + 100], styled))
                        for i, chunk in zip(range(0, len(latents), 100), latents.split(100), strict=True)])
    target = image_score(images, score).double()
    centred = (latents - latents.mean(0)).double()
    coefficients = torch.linalg.lstsq(centred, (target - target.mean()).unsqueeze(1)).solution.squeeze(1)
    fitted = centred @ coefficients
    spread = (target - target.mean()) ** 2
    r2 = 1 - float(((target - target.mean() - fitted) ** 2).sum() / spread.sum().clamp_min(1e-12))
    return nn.functional.normalize(coefficients, dim=0).float().unsqueeze(0), [r2]


def _draw(generator: nn.Module, latents: torch.Tensor, labels: torch.Tensor | None, styled: bool) -> torch.Tensor:
    if styled:
        ws = latents.unsqueeze(1).repeat(1, _num_ws(generator), 1)
        return generator.get_submodule("synthesis")(ws)
    return generator(latents, labels) if labels is not None else generator(latents)


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
    deltas = [(directions.delta(amounts).to(device), directions.layers) for directions, amounts in edits]
    images = []
    for start in range(0, len(latents), batch):
        chunk = latents[start:start + batch].to(device)
        label = labels[start:start + batch].to(device) if labels is not None else None
        if space == "z":
            moved = truncate(chunk, psi) + sum((delta for delta, _ in deltas), torch.zeros_like(chunk[0]))
            images.append(to_uint8(generator(moved, label) if label is not None else generator(moved)).cpu())
            continue
        w = chunk if in_w else _mapping(generator)(chunk, label, psi)
        num_ws = _num_ws(generator)
        ws = w.clone() if w.dim() == 3 else w.unsqueeze(1).repeat(1, num_ws, 1)  # W+ latents: one w per layer
        for delta, layers in deltas:
            first, last = layers or (0, num_ws)
            ws[:, first:last] += delta
        images.append(to_uint8(generator.get_submodule("synthesis")(ws)).cpu())
    return torch.cat(images)


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
            if not folder or not index.strip().isdigit() or not -100 <= step <= 100:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--edit {text!r}: write DIR:INDEX=AMOUNT, e.g. dirs:0=2 (AMOUNT in the direction's "
                              "scale, within +-100)") from None
        by_folder.setdefault(folder, {})[int(index)] = by_folder.get(folder, {}).get(int(index), 0.0) + step
    return [(load_directions(Path(folder)), amounts) for folder, amounts in by_folder.items()]


def edit_drawer(edits: Sequence[Edit]) -> Callable[[nn.Module, torch.Tensor, torch.Tensor | None, float],
                                                   torch.Tensor]:
    """What `generate --edit` renders with: latents moved by `edits`, then drawn."""
    return lambda generator, z, labels, psi: edited_images(generator, z, edits, labels, psi)


def directions(run: str | Path, method: str = "sefa", k: int = 10, *, out: str | Path | None = None,
               layers: tuple[int, int] | None = None, score: str = "brightness", samples: int = SAMPLES,
               seeds: Sequence[int] = (0, 1), device: str = "cpu") -> Directions:
    """`ganforge directions`: the top `k` directions of a run's (or export's) generator by `method`; with `out`,
    written there (directions.safetensors, directions.json) with the figure directions.png."""
    generator, config, _ = load_generator(Path(run), device)
    found = find_directions(generator, config, method, k, layers=layers, score=score, samples=samples,
                            source=str(run))
    if out is not None:
        found.save(Path(out))
        write_figure(generator, config, found, list(seeds), Path(out) / FIGURE)
    return found
