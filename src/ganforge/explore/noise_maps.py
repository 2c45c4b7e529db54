"""StyleGAN2's per-layer noise maps as variables of a projection, and the regulariser that keeps them noise.

A style-based G adds a noise map times a learned strength at every synthesis layer; in evaluation the map is a fixed
buffer. StyleGAN2's projector (Karras et al. 2020, Sec. 5 and Appendix D) optimises those maps along with w, so
that stochastic detail (hair strands, freckles) need not be forced through w. Left free, the maps would learn to
carry the image itself; the regulariser penalises their spatial autocorrelation at every scale of a pyramid (a
map's product with itself shifted by one pixel, down to 8x8), and after each step each map is brought back to zero
mean and unit variance, so they stay white noise that the optimiser has merely chosen.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.errors import ConfigError
from ganforge.models.stylegan2 import StyleGAN2Generator
from ganforge.models.stylegan2_layers import SynthesisLayer

NOISE_WEIGHT = 1e5  # StyleGAN2's projector's weight on the regulariser
SMALLEST_SCALE = 8  # the pyramid stops here: coarser maps have too few pixels for an autocorrelation


def make_noise_trainable(generator: StyleGAN2Generator) -> list[torch.Tensor]:
    """Replace each synthesis layer's fixed noise map by a trainable copy, in place; the copies, in layer order.
    The generator keeps drawing with them (so edits of the projected latent use them too)."""
    maps = []
    for layer in generator.modules():
        if isinstance(layer, SynthesisLayer):
            trainable = layer.noise_const.detach().clone().requires_grad_(True)
            layer.noise_const = trainable  # still a registered buffer: state_dict() carries the chosen maps
            maps.append(trainable)
    return maps


def autocorrelation_penalty(maps: list[torch.Tensor]) -> torch.Tensor:
    """Sum over maps and pyramid scales of the squared mean product of a map with itself shifted one pixel down
    and one pixel right (wrapping): 0 for white noise, large for a map that draws structure."""
    penalty = torch.zeros((), device=maps[0].device) if maps else torch.zeros(())
    for noise in maps:
        while True:
            penalty = penalty + (noise * noise.roll(1, dims=3)).mean().pow(2)
            penalty = penalty + (noise * noise.roll(1, dims=2)).mean().pow(2)
            if min(noise.shape[-2:]) <= SMALLEST_SCALE:
                break
            noise = F.avg_pool2d(noise, 2)
    return penalty


@torch.no_grad()
def renormalise(maps: list[torch.Tensor]) -> None:
    """Each map back to zero mean and unit variance, in place."""
    for noise in maps:
        noise.sub_(noise.mean()).div_(noise.square().mean().sqrt().clamp_min(1e-8))


def as_arrays(maps: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """The maps as float32 arrays named by layer order, for noise.safetensors."""
    return {f"layer{i:02d}": m.detach().cpu().numpy().astype(np.float32) for i, m in enumerate(maps)}


def load_noise_maps(generator: StyleGAN2Generator, arrays: dict[str, np.ndarray]) -> None:
    """Put the maps of a projection's noise.safetensors back into `generator`, so that its latent.npy redraws
    projected.png exactly; a file that does not fit this generator is refused."""
    layers = [m for m in generator.modules() if isinstance(m, SynthesisLayer)]
    names = [f"layer{i:02d}" for i in range(len(layers))]
    if sorted(arrays) != names:
        raise ConfigError(f"the noise maps are for {len(arrays)} layers; this generator has {len(layers)}")
    for layer, name in zip(layers, names, strict=True):
        if tuple(arrays[name].shape) != tuple(layer.noise_const.shape):
            raise ConfigError(f"noise map {name} is {tuple(arrays[name].shape)}; this generator's is "
                              f"{tuple(layer.noise_const.shape)}")
        layer.noise_const = torch.from_numpy(np.asarray(arrays[name], np.float32)).to(layer.noise_const.device)
