"""Training schemes: the pair of step functions that trains a model family, named by the model registry.

A D step returns what its G step needs (the fakes with their graph for a GAN; the codes and reals for the
adversarial autoencoder), so the loop can run any scheme without knowing which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganforge.training.aae_steps import aae_discriminator_step, aae_generator_step
from ganforge.training.steps import gan_discriminator_step, gan_generator_step

SCHEMES: dict[str, tuple[Callable[..., Any], Callable[..., None]]] = {
    "gan": (gan_discriminator_step, gan_generator_step),
    "aae": (aae_discriminator_step, aae_generator_step),
}
