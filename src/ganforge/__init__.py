"""ganforge: train generative adversarial networks on a folder of images."""

__version__ = "0.1.0"
