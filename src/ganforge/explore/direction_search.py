"""Finding semantic directions in a generator's latent space (`ganforge directions`, `gf.directions`).

Three ways:
- sefa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): the top eigenvectors of
  A^T A, where A is the first weight that reads the latent (DCGAN's, FastGAN's and Projected GAN's first
  transposed convolution, MLP's and R3GAN's first linear layer) or, for StyleGAN2, the style affine layers of the
  chosen synthesis layers: the latent moves that change that first layer most. No sampling, a closed form.
- ganspace (Haerkoenen et al. 2020): principal components of sampled W (StyleGAN2), or of the first layer's
  activations regressed back onto z (the paper's BigGAN variant) for the other families.
- labels (an InterFaceGAN-style boundary, Shen et al. 2020): the normal of a linear fit of a score of the
  generated images on their latents: a named image statistic, a detector's verdict, or for a conditional StyleGAN2
  the class it drew (image_scores.py).

What a direction is, and edits along it, are in directions.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data.store import to_uint8
from ganforge.errors import ConfigError
from ganforge.explore.directions import FIGURE, Directions, mapping_network, style_based, style_count, write_figure
from ganforge.explore.image_scores import class_of, image_scorer
from ganforge.generate import seed_latents
from ganforge.runs import load_generator, resolve_class

METHODS = ("sefa", "ganspace", "labels")
SAMPLES = 2000  # latents sampled for ganspace, labels and W scales
CHUNK = 500  # latents per pass of G when ganspace reads its first layer


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
        num_ws = style_count(generator)
        layers = layers or (0, num_ws)
        if not 0 <= layers[0] < layers[1] <= num_ws:
            raise ConfigError(f"--layers {layers[0]}-{layers[1] - 1} is outside this G's style layers 0-{num_ws - 1}")
    with torch.no_grad():
        device = next(generator.parameters()).device
        z = seed_latents(list(range(samples)), config.model.z_dim).to(device)
        labels = (torch.arange(samples, device=device) % config.model.num_classes if config.model.conditional
                  else None)
        latents = mapping_network(generator)(z, labels) if styled else z
        if method == "sefa":
            vectors, values = _top_eigenvectors(_sefa_matrix(generator, config, layers), k)
        elif method == "ganspace":
            vectors, values = _ganspace(generator, config, z, latents, labels, k, styled)
        else:
            vectors, values = _boundary(generator, config, latents, labels, score, styled, source)
    vectors, latents = vectors.cpu(), latents.cpu()
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

    def keep_and_stop(_: nn.Module, __: object, output: torch.Tensor) -> None:
        captured.append(output.flatten(1).double())
        raise _FirstLayerDone  # the rest of G is not needed

    handle = layer.register_forward_hook(keep_and_stop)
    try:  # in chunks: --samples may be far more than one pass of G holds in memory
        for start in range(0, len(z), CHUNK):
            chunk = z[start:start + CHUNK]
            try:
                generator(chunk, labels[start:start + CHUNK]) if labels is not None else generator(chunk)
            except _FirstLayerDone:
                pass
    finally:
        handle.remove()
    activations = torch.cat(captured)
    centred = activations - activations.mean(0)
    _, singular, components = torch.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ components[:k].T  # [N, k]
    # z from the components' coordinates by least squares: each component's direction in z (GANSpace Sec. 2).
    mapped = torch.linalg.lstsq(coordinates, z.double()).solution  # [k, z_dim]
    variance = singular ** 2 / (singular ** 2).sum()
    return nn.functional.normalize(mapped, dim=1).float(), [float(v) for v in variance[:k]]


class _FirstLayerDone(Exception):
    """Raised by GANSpace's hook once the layer it reads has run."""


def _boundary(generator: nn.Module, config: TrainConfig, latents: torch.Tensor, labels: torch.Tensor | None,
              score: str, styled: bool, source: str) -> tuple[torch.Tensor, list[float]]:
    """The normal of the least-squares linear fit of the images' score (or their class) on their latents, and the
    fit's R^2."""
    class_name = class_of(score)
    if class_name is not None:
        target = _class_target(config, labels, styled, class_name, source)
    else:
        scorer = image_scorer(score)
        target = torch.cat([scorer(to_uint8(_draw(generator, chunk, None if labels is None else labels[i:i + 100],
                                                  styled)))
                            for i, chunk in zip(range(0, len(latents), 100), latents.split(100), strict=True)])
    target = target.double()
    centred = (latents - latents.mean(0)).double()
    coefficients = torch.linalg.lstsq(centred, (target - target.mean()).unsqueeze(1)).solution.squeeze(1)
    fitted = centred @ coefficients
    spread = (target - target.mean()) ** 2
    r2 = 1 - float(((target - target.mean() - fitted) ** 2).sum() / spread.sum().clamp_min(1e-12))
    return nn.functional.normalize(coefficients, dim=0).float().unsqueeze(0), [r2]


def _class_target(config: TrainConfig, labels: torch.Tensor | None, styled: bool, class_name: str,
                  source: str) -> torch.Tensor:
    """1 for latents mapped with class `class_name`, 0 for the others: only a conditional style-based G puts the
    class into the latent (w); elsewhere the class is an input beside z, and no direction in z holds it."""
    if labels is None or not styled:
        raise ConfigError(f"--score class:{class_name} needs a class-conditional stylegan2, whose w holds the class; "
                          "for this generator the class is an input beside z: draw it with --class instead")
    return (labels == resolve_class(Path(source), config, class_name)).double()


def _draw(generator: nn.Module, latents: torch.Tensor, labels: torch.Tensor | None, styled: bool) -> torch.Tensor:
    if styled:
        ws = latents.unsqueeze(1).repeat(1, style_count(generator), 1)
        return generator.get_submodule("synthesis")(ws)
    return generator(latents, labels) if labels is not None else generator(latents)


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
