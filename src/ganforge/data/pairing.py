"""How `prepare` builds a two-sided store for image-to-image translation: the settings and which sources they take.

A side is "A" (the input a model translates from) or "B" (the target it translates to). Paired sides come from
one folder of A|B images side by side (as pix2pix's datasets ship), from two folders matched by file name, or
from one folder whose images are the targets and whose inputs are derived from them (`make_pairs`); unpaired
sides come from two folders (CycleGAN's domains).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ganforge.config.setting import check_values, setting
from ganforge.errors import ConfigError

PAIR_LAYOUTS = ("none", "side-by-side", "by-name")
DERIVED_INPUTS = ("none", "downscale4x", "grey", "edges")
SR_FACTOR = 4  # downscale4x: SRGAN's x4 (Ledig et al. 2017)


@dataclass(frozen=True)
class PairOptions:
    pairs: str = setting("none", "Paired data: side-by-side (each SOURCE image is A|B, as pix2pix's datasets ship) "
                         "or by-name (--a and --b folders, files matched by name).", choices=PAIR_LAYOUTS)
    unpaired: bool = setting(False, "Two unpaired domains from --a and --b (CycleGAN).")
    make_pairs: str = setting("none", "Build pairs from one SOURCE folder of targets: downscale4x (input = bicubic "
                              "1/4 size, super-resolution), grey (colourisation) or edges (edges-to-photo).",
                              choices=DERIVED_INPUTS)
    val_fraction: float = setting(0.0, "Fraction of the pairs (of each domain, when unpaired) held out from "
                                  "training for `ganforge evaluate` (PSNR, SSIM, FID).", at_most=0.5)

    def __post_init__(self) -> None:
        check_values(self)
        modes = [flag for flag, on in (("--pairs", self.pairs != "none"), ("--unpaired", self.unpaired),
                                       ("--make-pairs", self.make_pairs != "none")) if on]
        if len(modes) > 1:
            raise ConfigError(f"{' and '.join(modes)} each say how the pairs are made; give one of them")
        if self.val_fraction < 0:
            raise ConfigError(f"--val-fraction must be in [0, 0.5], got {self.val_fraction:g}")

    @property
    def two_sided(self) -> bool:
        return self.pairs != "none" or self.unpaired or self.make_pairs != "none"

    @property
    def pairing(self) -> str:
        """The store's manifest pairing: "paired", "unpaired" or "none" (one-sided)."""
        return "unpaired" if self.unpaired else "paired" if self.two_sided else "none"

    @property
    def takes_two_folders(self) -> bool:
        return self.pairs == "by-name" or self.unpaired

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
