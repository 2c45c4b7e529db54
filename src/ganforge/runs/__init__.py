"""Runs as data: run folders and checkpoints (written by training, read by every tool) and exported folders."""

from ganforge.runs.load import (
    LoadedGenerator,
    LoadedTranslator,
    class_names,
    holds_translator,
    load_discriminator,
    load_generator,
    load_run_generator,
    load_translator,
    resolve_class,
    sampling_generator,
)

__all__ = ["LoadedGenerator", "LoadedTranslator", "class_names", "holds_translator", "load_discriminator",
           "load_generator",
           "load_run_generator", "load_translator", "resolve_class", "sampling_generator"]
