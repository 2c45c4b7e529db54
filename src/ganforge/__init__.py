"""ganforge: train generative adversarial networks on a folder of images.

    import ganforge as gf
    store = gf.prepare("photos/", out="cars.gfs", resolution=64, crop="pad")
    run = gf.train(data="cars.gfs", model="dcgan", kimg=50)
    G = gf.load_generator(run.path)
    images = G.sample(16, seed=0)
    scores = gf.evaluate(real="cars.gfs", fake=images, metrics=["fid", "kid"])

The names below load on first use, so `import ganforge` stays cheap (the CLI imports only what a command needs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ganforge.version import __version__

if TYPE_CHECKING:
    from ganforge.api import Run, Scores, evaluate, prepare, train, translate
    from ganforge.config import TrainConfig
    from ganforge.explore.arithmetic import arithmetic
    from ganforge.explore.direction_search import directions
    from ganforge.explore.directions import Directions, load_directions
    from ganforge.explore.interpolate import interpolate
    from ganforge.explore.project import project
    from ganforge.export.generator import export_generator
    from ganforge.generator import Generator, load_generator

_PUBLIC = {
    "prepare": "ganforge.api", "train": "ganforge.api", "evaluate": "ganforge.api", "Run": "ganforge.api",
    "Scores": "ganforge.api", "TrainConfig": "ganforge.config", "load_generator": "ganforge.generator",
    "Generator": "ganforge.generator", "interpolate": "ganforge.explore.interpolate",
    "arithmetic": "ganforge.explore.arithmetic", "project": "ganforge.explore.project",
    "export_generator": "ganforge.export.generator", "translate": "ganforge.api",
    "directions": "ganforge.explore.direction_search", "load_directions": "ganforge.explore.directions",
    "Directions": "ganforge.explore.directions",
}

__all__ = ["Directions", "Generator", "Run", "Scores", "TrainConfig", "__version__", "arithmetic", "directions",
           "evaluate", "export_generator", "interpolate", "load_directions", "load_generator", "prepare", "project",
           "train", "translate"]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ganforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
