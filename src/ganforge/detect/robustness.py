"""`ganforge detect attack`: the detector's accuracy on real and generated images attacked at each eps (FGSM or
PGD), as a table and a plot, and a grid of attacked images beside their perturbations, magnified to be seen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganforge.detect.attack import attack
from ganforge.detect.data import FAKE, REAL, held_out, load_images, to_network
from ganforge.detect.train import Detector
from ganforge.images import make_grid, save_png
from ganforge.plots import plot_curves

GRID_IMAGES = 8


def attack_detector(detector: Detector, real: list[str], fake: list[str], name: str, eps_values: list[float],
                    steps: int, count: int, out: Path, seed: int = 1_000_000) -> list[dict[str, Any]]:
    """Rows of (eps, accuracy on attacked reals, on attacked fakes); writes attack.png and attacked.png."""
    size = detector.config.size
    sets = {"real": torch.cat([load_images(p, count, size, REAL, skip=held_out(detector, p)).images for p in real]),
            "generated": torch.cat([load_images(p, count, size, FAKE, seed).images for p in fake])}
    model = detector.model
    device = next(model.parameters()).device
    rows = []
    for eps in eps_values:
        row: dict[str, Any] = {"attack": name, "eps": eps, "eps_255": eps * 255}
        for label_name, images in sets.items():
            label = FAKE if label_name == "generated" else REAL
            correct = 0
            for chunk in images.split(128):
                x = to_network(chunk, device)
                y = torch.full((len(x),), label, device=device)
                attacked = attack(name, model, x, y, eps, steps)
                with torch.no_grad():
                    correct += int(((model(attacked) > 0).float() == y).sum())
            row[f"accuracy_{label_name}"] = correct / len(images)
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    plot_curves({f"{k} images": [(r["eps_255"], r[f"accuracy_{k}"]) for r in rows] for k in sets},
                out / "attack.png", x_label=f"{name} eps x 255 (y: accuracy)")
    _write_grid(detector, sets["generated"][:GRID_IMAGES], name, max(eps_values), steps, out / "attacked.png")
    return rows


def _write_grid(detector: Detector, images: torch.Tensor, name: str, eps: float, steps: int, path: Path) -> None:
    """Three rows: the generated images, the same attacked at the largest eps, and the perturbation scaled so
    that +-eps spans the full grey range."""
    device = next(detector.model.parameters()).device
    x = to_network(images, device)
    attacked = attack(name, detector.model, x, torch.ones(len(x), device=device), eps, steps)
    magnified = ((attacked - x) / max(eps, 1e-12) * 0.5 + 0.5).clamp(0, 1)
    rows = torch.cat([x, attacked, magnified]).mul(255).round().to(torch.uint8).cpu()
    save_png(make_grid(rows, len(x)), path, {"rows": "generated; attacked; perturbation (mid grey = 0, +-eps = "
                                                     "white/black)", "attack": name, "eps": f"{eps:.5g}"})


def describe_rows(rows: list[dict[str, Any]]) -> str:
    lines = ["| attack | eps | accuracy on real | accuracy on generated |", "|---|---|---|---|"]
    lines += [f"| {r['attack']} | {r['eps_255']:g}/255 | {r['accuracy_real']:.1%} | {r['accuracy_generated']:.1%} |"
              for r in rows]
    return "\n".join(lines)
