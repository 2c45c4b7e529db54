"""The mode-seeking term of MSGAN (Mao et al. 2019, Eq. 3): G is asked to map different latents to different
images, so a class-conditional G cannot draw one item per class whatever z says.

Over every pair of samples in G's batch that share a class (every pair, without labels), the term is
1 / (eps + mean of d(G(z1), G(z2)) / d(z1, z2)), each distance a mean absolute difference, as in the paper's
code. Weighted by --mode-seeking it joins G's adversarial loss. Measured in BENCHMARKS.md ("Conditional DCGAN's
collapse within classes"): on Fashion-MNIST, the class-conditional DCGAN drew six of ten classes as one garment
over and over without it.
"""

from __future__ import annotations

import torch

EPS = 1e-5  # MSGAN's: bounds the term (at 1 / EPS) when G draws the same image for every latent


def mode_seeking_loss(images: torch.Tensor, latents: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """A 0-d tensor, low when the batch's images differ as much as their latents do; 0 when no two samples share
    a class (nothing to compare). Vectorised over all pairs, with no read back to the host."""
    pixels, codes = images.flatten(1).float(), latents.flatten(1).float()
    pairs = ~torch.eye(len(pixels), dtype=torch.bool, device=pixels.device)
    if labels is not None:
        pairs &= labels[:, None] == labels[None, :]
    image_distance = torch.cdist(pixels, pixels, p=1) / pixels.shape[1]
    latent_distance = (torch.cdist(codes, codes, p=1) / codes.shape[1]).masked_fill(~pairs, 1.0)
    weights = pairs.float()
    count = weights.sum()
    ratio = (image_distance / latent_distance * weights).sum() / count.clamp_min(1.0)
    return torch.where(count > 0, 1.0 / (ratio + EPS), torch.zeros_like(ratio))
