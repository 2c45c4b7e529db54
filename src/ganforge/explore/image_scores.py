"""What a labels direction (an InterFaceGAN-style boundary, Shen et al. 2020) is fitted to: a score per generated
image, or the class a conditional style-based G drew it in.

- a named image statistic: brightness, contrast, saturation, or how red, green or blue the image is;
- `detect:FOLDER`: a trained `ganforge detect` detector's verdict, as the logit of its P(generated) (the logit,
  so that images it is sure of do not all sit at 0 or 1): the direction along which samples look more generated,
  and its opposite, more real;
- `class:NAME`: for a class-conditional StyleGAN2, whose mapping network puts the class into w: 1 for latents
  mapped with class NAME, 0 for the other classes; the direction moves a w toward that class.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ganforge.detect.data import resize
from ganforge.detect.train import load_detector
from ganforge.errors import ConfigError

STATISTICS = ("brightness", "contrast", "saturation", "red", "green", "blue")
DETECT, CLASS = "detect:", "class:"
SCORE_HELP = f"{', '.join(STATISTICS)}, {DETECT}FOLDER (a detector's verdict) or {CLASS}NAME (a conditional stylegan2)"

Scorer = Callable[[torch.Tensor], torch.Tensor]  # uint8 images [N, C, H, W] -> scores [N]


def image_statistic(images: torch.Tensor, name: str) -> torch.Tensor:
    """A named statistic of uint8 images [N, C, H, W] -> [N]."""
    x = images.float() / 255
    rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    grey = rgb.mean(1)
    if name == "brightness":
        return grey.mean((1, 2))
    if name == "contrast":
        return grey.flatten(1).std(1)
    if name == "saturation":
        return (rgb.amax(1) - rgb.amin(1)).mean((1, 2))
    if name in ("red", "green", "blue"):
        return (rgb[:, ("red", "green", "blue").index(name)] - grey).mean((1, 2))
    raise ConfigError(f"--score {name!r}: choose {SCORE_HELP}")


def class_of(score: str) -> str | None:
    """The class name of a `class:NAME` score, else None."""
    if not score.startswith(CLASS):
        return None
    name = score.removeprefix(CLASS)
    if not name:
        raise ConfigError(f"--score {score!r}: name the class, e.g. {CLASS}cat")
    return name


def image_scorer(score: str) -> Scorer:
    """The scorer a `--score` text names (a statistic or `detect:FOLDER`); a one-line ConfigError for anything
    else, a CheckpointError naming the folder when it holds no detector."""
    if score.startswith(DETECT):
        return _detector_logit(Path(score.removeprefix(DETECT)))
    if score not in STATISTICS:
        raise ConfigError(f"--score {score!r}: choose {SCORE_HELP}")
    return lambda images: image_statistic(images, score)


def _detector_logit(folder: Path) -> Scorer:
    if not str(folder) or str(folder) == ".":
        raise ConfigError(f"--score {DETECT}FOLDER: give the folder of a detector `ganforge detect train` wrote")
    detector = load_detector(folder)

    def logit(images: torch.Tensor) -> torch.Tensor:
        probabilities = detector.probabilities(resize(images, detector.config.size)).double()
        return torch.logit(probabilities.clamp(1e-6, 1 - 1e-6))

    return logit
