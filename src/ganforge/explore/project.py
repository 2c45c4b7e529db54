"""Projection: find the latent whose image best reproduces a given image (a GAN inversion by optimisation).

Loss = pixel MSE + a feature loss. The features come from a fixed, randomly initialised three-layer conv net
(seeded, so every run uses the same function): random conv features still respond to edges and local texture
(Ulyanov et al. 2018, "Deep Image Prior"; He et al. 2016, "A Powerful Generative Model Using Random Weights
for the Deep Image Representation"), which pixel MSE alone blurs over; they need no download and work for any
generator, even an exported one that has no discriminator. The run's own D is not used: its features are
trained to tell real from fake and drift during training, so they measure the wrong thing. Each layer's term
is normalised by the target's activation energy so no layer dominates.

Start: the best of `starts` random latents (cheap, avoids a bad basin). A prior term (||z||^2 / z_dim - 1)^2
keeps z on the shell where a Gaussian prior's mass lies; without it the optimum is often an atypical latent
that only this one image likes.

The feature loss uses EfficientNet-Lite0's ImageNet features when `ganforge[projected]` is installed (`--features
lite0`, the default then): a perceptual loss in the sense of Johnson et al. 2016 and of StyleGAN2's projector (which
uses VGG/LPIPS), with the frozen BatchNorm-folded network Projected GAN's D uses; images below 64 px are enlarged
for it. Without the extra, the random-conv features above.

A style-based G (StyleGAN2) is projected in W+ by default (one w per layer, Abdal et al. 2019), which reproduces
photos far better than W (Karras et al. 2020, Sec. 5, project in W, one w for all layers: `--space w`); the starts
are mapped latents and no Gaussian prior applies. Its per-layer noise maps are optimised beside w, as StyleGAN2's
projector does (noise_maps.py: regularised to stay white noise; noise.safetensors). `--edit DIR:INDEX=AMOUNT`
then draws the found latent moved along directions from `ganforge directions` (edited.png).

`--tune STEPS` adds pivotal tuning (Roich et al. 2022, pivotal_tuning.py): G itself is fine-tuned around the found
latent, written as the export tuned/, so that an edit keeps the photo's detail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from torch import nn

from ganforge.data.decode import DEFAULT_MAX_PIXELS, SkipInput, Target, decode, pillow_limits
from ganforge.data.store import to_uint8
from ganforge.errors import ConfigError, DataError
from ganforge.explore.classes import class_label, class_labels
from ganforge.explore.directions import Edit, edited_images
from ganforge.explore.noise_maps import (
    NOISE_WEIGHT,
    as_arrays,
    autocorrelation_penalty,
    make_noise_trainable,
    renormalise,
)
from ganforge.explore.pivotal_tuning import TUNE_LR, TUNED_FOLDER, tune_around_pivot, write_tuned_export
from ganforge.images import make_grid, save_png, to_pil
from ganforge.models.efficientnet_lite import extra_installed, load_pretrained
from ganforge.models.frozen_features import FrozenFeatures
from ganforge.models.stylegan2 import StyleGAN2Generator
from ganforge.regular_files import open_regular
from ganforge.runs import load_generator
from ganforge.runs.exported import CheckedGraph
from ganforge.runs.output_guard import check_output_folder, ganforge_png

SNAPSHOTS = 8  # images in the progress strip besides the target
SPACES = ("z", "w", "w+")
NOISE_MODES = ("optimise", "fixed")
FEATURE_SEED = 1234
PRIOR_WEIGHT = 0.01


@dataclass(frozen=True)
class Projection:
    latent: torch.Tensor  # the best latent found: [z_dim] in z, [w_dim] in W, [num_ws, w_dim] in W+
    image: torch.Tensor  # uint8 [C, H, W], G(latent)
    losses: list[float]  # total loss per step: the projection's, then pivotal tuning's
    pixel_mse: float  # final mean squared pixel error in G's [-1, 1] units
    written: tuple[str, ...] = ()  # the files written into the output folder
    pivot_image: torch.Tensor | None = None  # with --tune: uint8 G(latent) before tuning, the projection alone
    pivot_pixel_mse: float | None = None  # with --tune: pixel_mse before tuning


class RandomFeatures(nn.Module):
    """Three fixed random conv layers; forward returns each layer's activations. Input [B, C, H, W] in [-1, 1]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(FEATURE_SEED)
        self.layers = nn.ModuleList()
        for c_in, c_out, stride in ((channels, 32, 1), (32, 64, 2), (64, 64, 2)):
            conv = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            with torch.no_grad():  # He-normal, so activations keep their scale through the ReLUs
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2 / (c_in * 9)) ** 0.5)
            self.layers.append(conv)
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        features, x = [], images
        for conv in self.layers:
            x = F.relu(conv(x))
            features.append(x)
        return features


def load_target(path: Path, shape: tuple[int, int, int]) -> torch.Tensor:
    """An image file as [1, C, H, W] in [-1, 1], decoded as `prepare` decodes (EXIF rotation, alpha, 16-bit,
    decompression bombs, a resize bounded by what it makes), centre-cropped to G's aspect and resized."""
    channels, height, width = shape
    try:
        with pillow_limits(DEFAULT_MAX_PIXELS), open_regular(path) as fp:
            pixels = decode(fp, Target(height, width, channels, "center", (255, 255, 255), (0, 0, 0)))
    except OSError as exc:
        raise DataError(f"{path} cannot be read as an image ({exc.strerror or exc}); give a PNG or JPEG file"
                        ) from exc
    except SkipInput as skip:
        raise DataError(f"{path} cannot be read as an image ({skip.reason}); give a PNG or JPEG file") from skip
    return (torch.from_numpy(pixels.astype(np.float32))[None] / 127.5 - 1.0).contiguous()


def project(source: Path, image_path: Path, out: Path, *, steps: int = 300, lr: float = 0.05, starts: int = 64,
            feature_weight: float = 1.0, seed: int = 0, device: str = "cpu", class_name: str | None = None,
            space: str | None = None, features: str | None = None, edits: Sequence[Edit] = (),
            noise: str | None = None, noise_weight: float = NOISE_WEIGHT, tune_steps: int = 0,
            tune_lr: float = TUNE_LR) -> Projection:
    """What `ganforge project` does: writes latent.npy, projected.png, target.png and progress.png into `out`
    (and edited.png with `edits`, noise.safetensors with optimised noise, tuned/ with `tune_steps`).

    A conditional run searches z with the class fixed to `class_name`: latent.npy reproduces the image only
    together with that class, which is written into the PNGs' metadata. `space`: z, w or w+ (w and w+ for a
    style-based G only); by default w+ for a style-based G, z otherwise. `features`: lite0 or random-conv (by
    default lite0 when ganforge[projected] is installed). `noise`: optimise or fixed, StyleGAN2's noise maps (by
    default optimised, regularised with `noise_weight`, for a style-based G in W/W+). `tune_steps`: pivotal tuning
    of G around the found latent afterwards, written as the export tuned/ (projected.png and edited.png then come
    from the tuned G).
    """
    if steps < 1 or starts < 1 or lr <= 0 or feature_weight < 0:
        raise ConfigError("--steps and --starts must be at least 1, --lr positive, --feature-weight not negative")
    if not 0 <= tune_steps <= 100_000 or not 0 < tune_lr < 1 or not 0 <= noise_weight < float("inf"):
        raise ConfigError("--tune must be 0-100000 steps, --tune-lr in (0, 1), --noise-weight finite and not negative")
    if noise is not None and noise not in NOISE_MODES:
        raise ConfigError(f"--noise {noise!r}: choose {' or '.join(NOISE_MODES)}")
    if space is not None and space not in SPACES:
        raise ConfigError(f"--space {space!r} is not a latent space; choose z, w or w+")
    features = features or ("lite0" if extra_installed() else "random-conv")
    if features not in FEATURES:
        raise ConfigError(f"--features {features!r}: choose {' or '.join(FEATURES)}")
    check_output_folder(out, "--out", OUTPUT_FILES, _earlier_projection, inputs=[image_path])
    loaded, config, nimg = load_generator(source, device)
    label = class_label(source, config, class_name)
    if next(loaded.parameters(), None) is None:
        raise ConfigError(f"{source} is an ONNX export, which has no gradients; project with the run folder or a "
                          "safetensors/torchscript export")
    if tune_steps and isinstance(loaded, CheckedGraph):  # a TorchScript export
        raise ConfigError(f"--tune writes the tuned weights as a safetensors export, and {source} is a TorchScript "
                          "graph; project with the run folder or its safetensors export")
    style = loaded if isinstance(loaded, StyleGAN2Generator) else None
    space = space or ("w+" if style is not None else "z")
    if space != "z" and style is None:
        raise ConfigError(f"--space {space} needs a style-based generator with a mapping network (--model stylegan2, "
                          "run folder or safetensors export); project this one in z")
    noise = noise or ("optimise" if style is not None and space != "z" else "fixed")
    if noise == "optimise" and (style is None or space == "z"):
        raise ConfigError("--noise optimise needs a style-based generator projected in w or w+; use --noise fixed")
    loaded.requires_grad_(False)  # only the latent (and the noise maps) are optimised
    dev = next(loaded.parameters()).device
    noise_maps = make_noise_trainable(style) if style is not None and noise == "optimise" else []

    def generator(latent: torch.Tensor) -> torch.Tensor:
        """G(latent) [B, C, H, W], in the chosen class for a conditional G; in W, synthesis alone."""
        if style is not None and space != "z":
            ws = latent if latent.dim() == 3 else latent.unsqueeze(1).expand(-1, style.num_ws, -1)
            return style.synthesis(ws)
        labels = class_labels(label, len(latent), dev)
        return loaded(latent) if labels is None else loaded(latent, labels)

    def mapped(z: torch.Tensor) -> torch.Tensor:
        """The starts as the space optimised sees them: z itself, or w = f(z) (one per layer in W+)."""
        if style is None or space == "z":
            return z
        w = style.mapping(z, class_labels(label, len(z), dev))
        return w if space == "w" else w.unsqueeze(1).repeat(1, style.num_ws, 1)

    with torch.no_grad():
        shape = tuple(generator(mapped(torch.zeros(1, config.model.z_dim, device=dev))).shape[1:])
    target = load_target(image_path, (shape[0], shape[1], shape[2])).to(dev)
    extract = feature_network(features, shape[0], dev)
    target_features = extract(target)

    def loss_of(images: torch.Tensor) -> torch.Tensor:
        """Per-image loss [B] against the target."""
        pixel = (images - target).pow(2).flatten(1).mean(1)
        feature = sum(((f - t).pow(2).flatten(1).mean(1) / t.pow(2).mean().clamp_min(1e-8)
                       for f, t in zip(extract(images), target_features, strict=True)), torch.zeros(()))
        return pixel + feature_weight * feature

    with torch.no_grad():
        candidates = torch.randn(starts, config.model.z_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
        candidates = torch.cat([mapped(z) for z in candidates.split(32)])
        scores = torch.cat([loss_of(generator(z)) for z in candidates.split(32)])
    latent = candidates[int(scores.argmin())].clone()[None].requires_grad_(True)
    optimizer = torch.optim.Adam([latent, *noise_maps], lr=lr)
    # Linear decay over the last quarter: large steps find the basin, small ones settle in it.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, 4.0 * (1.0 - i / steps)))
    snapshot_at = {round(i * (steps - 1) / max(SNAPSHOTS - 1, 1)) for i in range(SNAPSHOTS)}
    snapshots, step_losses = [], []
    for step in range(steps):
        images = generator(latent)
        loss = loss_of(images).mean()
        if space == "z":  # a Gaussian prior's shell; W has no such prior
            loss = loss + PRIOR_WEIGHT * (latent.pow(2).mean() - 1.0).pow(2)
        if noise_maps:
            loss = loss + noise_weight * autocorrelation_penalty(noise_maps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        renormalise(noise_maps)
        step_losses.append(loss.detach())  # kept on the device; read once at the end
        if step in snapshot_at:
            snapshots.append(images.detach())
    latent, losses = latent.detach(), [float(v) for v in step_losses]
    for noise_map in noise_maps:
        noise_map.requires_grad_(False)
    text = {"run": str(source), "image": image_path.name, "steps": str(steps), "kimg": f"{nimg / 1000:.1f}",
            "seed": str(seed), "space": space, "features": features, "noise": noise}
    pivot_image, pivot_pixel_mse = None, None
    if tune_steps:
        with torch.no_grad():
            pivot = generator(latent)
        pivot_image, pivot_pixel_mse = to_uint8(pivot[0]).cpu(), float((pivot - target).pow(2).mean())
        losses += tune_around_pivot(loaded, lambda: generator(latent), loss_of, tune_steps, tune_lr)
        snapshots.append(generator(latent).detach())
        text.update(tuned=f"{tune_steps} steps at lr {tune_lr:g}: draw with {TUNED_FOLDER}/",
                    pixel_mse_before_tuning=f"{pivot_pixel_mse:.5f}")
    with torch.no_grad():
        final = generator(latent)
        pixel_mse = float((final - target).pow(2).mean())
    result = Projection(latent[0].cpu(), to_uint8(final[0]).cpu(), losses, pixel_mse,
                        pivot_image=pivot_image, pivot_pixel_mse=pivot_pixel_mse)
    text["pixel_mse"] = f"{pixel_mse:.5f}"
    if class_name is not None:
        text["class"] = class_name
    written = _write(out, result, to_uint8(target).cpu(), to_uint8(torch.cat(snapshots)).cpu(), text, noise_maps)
    if tune_steps:
        write_tuned_export(out / TUNED_FOLDER, loaded, config, nimg, source,
                           {"image": image_path.name, "steps": tune_steps, "lr": tune_lr, "space": space})
        written.append(f"{TUNED_FOLDER}/")
    if edits:
        edited = edited_images(loaded, result.latent[None], edits, class_labels(label, 1, "cpu"),
                               in_w=space != "z")
        save_png(to_pil(edited[0].permute(1, 2, 0).numpy()), out / "edited.png",
                 {**text, "edit": "; ".join(f"{d.source or d.method}: {a}" for d, a in edits)})
        written.append("edited.png")
    return replace(result, written=tuple(written))


FEATURES = ("lite0", "random-conv")
LITE0_MIN_SIDE = 64  # EfficientNet-Lite0's deepest tap (stride 32) needs images of at least this size


def feature_network(name: str, channels: int, device: torch.device) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """images [B, C, H, W] in [-1, 1] -> a list of feature maps, by `name`: lite0 (ImageNet features; smaller
    images enlarged) or random-conv."""
    if name == "random-conv":
        return RandomFeatures(channels).to(device)
    network = FrozenFeatures(load_pretrained()).to(device)

    def lite0(images: torch.Tensor) -> list[torch.Tensor]:
        side = min(images.shape[-2:])
        if side < LITE0_MIN_SIDE:
            size = [round(s * LITE0_MIN_SIDE / side) for s in images.shape[-2:]]
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        return network.features(images)

    return lite0


OUTPUT_FILES = ("latent.npy", "projected.png", "target.png", "progress.png", "edited.png", "noise.safetensors",
                *(f"{TUNED_FOLDER}/{name}" for name in ("model.safetensors", "config.json", "samples.png")))


def _earlier_projection(path: Path) -> bool:
    """A file an earlier projection into the same folder wrote: its PNGs carry ganforge's mark, and its other
    files (latent.npy, noise.safetensors, tuned/) are vouched for by the projected.png of their projection
    folder."""
    folder = path.parent.parent if path.parent.name == TUNED_FOLDER else path.parent
    return ganforge_png(path if path.parent == folder and path.suffix == ".png" else folder / "projected.png")


def _write(out: Path, result: Projection, target: torch.Tensor, snapshots: torch.Tensor, text: dict[str, str],
           noise_maps: list[torch.Tensor]) -> list[str]:
    """The projection's files in `out`; their names. An earlier projection's noise.safetensors or tuned/ that this
    one does not replace is removed: it would not fit the new latent.npy."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for latent.npy and the images")
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "latent.npy", result.latent.numpy().astype(np.float32))
    save_png(to_pil(result.image.permute(1, 2, 0).numpy()), out / "projected.png", text)
    save_png(to_pil(target[0].permute(1, 2, 0).numpy()), out / "target.png", text)
    # The strip reads left to right: the target, then G(z) from the first step to the last (then after tuning).
    strip = torch.cat([target, snapshots])
    save_png(make_grid(strip, columns=len(strip)), out / "progress.png",
             {**text, "layout": "target, then G(z) at evenly spaced steps"})
    for name in OUTPUT_FILES:  # each checked as an earlier projection's own by check_output_folder
        if name == "noise.safetensors" or name.startswith(TUNED_FOLDER):
            (out / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # kept if it holds anything else
        (out / TUNED_FOLDER).rmdir()
    if not noise_maps:
        return ["latent.npy", "projected.png", "target.png", "progress.png"]
    save_file(as_arrays(noise_maps), str(out / "noise.safetensors"))
    return ["latent.npy", "noise.safetensors", "projected.png", "target.png", "progress.png"]
