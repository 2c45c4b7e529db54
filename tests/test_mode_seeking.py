"""MSGAN's mode-seeking term (`--mode-seeking`): it is high when G draws one image for many latents of a class,
compares only samples of one class, and pushes G's images of one class apart; the flag reaches the run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganforge.config import LossConfig, ModelConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.models import build_networks, validate
from ganforge.runs import load_generator
from ganforge.training.objective.mode_seeking import mode_seeking_loss
from ganforge.training.report import metric_panels, status_line

from data_slices import make_store
from run_helpers import ganforge, only_run, run_to_end

LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


def one_image_per_class(generator: torch.Generator) -> torch.Tensor:
    per_class = torch.rand(2, 1, 1, 8, 8, generator=generator) * 2 - 1
    return per_class.expand(2, 4, 1, 8, 8).reshape(8, 1, 8, 8) + 1e-3 * torch.randn(8, 1, 8, 8, generator=generator)


def test_a_class_drawn_as_one_image_costs_far_more_than_a_varied_class():
    rng = torch.Generator().manual_seed(0)
    latents = torch.randn(8, 16, generator=rng)
    varied = torch.rand(8, 1, 8, 8, generator=rng) * 2 - 1
    collapsed = one_image_per_class(rng)  # the two classes differ from each other, not within
    assert mode_seeking_loss(collapsed, latents, LABELS) > 100 * mode_seeking_loss(varied, latents, LABELS)
    # Without labels the same batch has pairs across the classes that differ, so it costs less.
    assert mode_seeking_loss(collapsed, latents, None) < mode_seeking_loss(collapsed, latents, LABELS) / 2


def test_a_batch_without_two_samples_of_a_class_adds_nothing_and_stays_finite():
    images = torch.randn(4, 3, 8, 8, requires_grad=True)
    loss = mode_seeking_loss(images, torch.randn(4, 16), torch.arange(4))
    loss.backward()
    assert loss.item() == 0.0 and images.grad is not None and torch.isfinite(images.grad).all()


def test_the_term_pushes_a_conditional_generators_images_of_one_class_apart():
    torch.manual_seed(0)
    generator = build_networks(ModelConfig(name="dcgan", g_width=8, z_dim=16, conditional=True, num_classes=2),
                               (1, 16, 16)).generator
    latents, labels = torch.randn(16, 16), torch.arange(16) % 2

    def spread() -> float:
        with torch.no_grad():
            images = generator(latents, labels)
        return float(torch.cdist(images[labels == 0].flatten(1), images[labels == 0].flatten(1), p=1).mean())

    before = spread()
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    for _ in range(20):
        optimizer.zero_grad()
        mode_seeking_loss(generator(latents, labels), latents, labels).backward()
        optimizer.step()
    assert spread() > 1.5 * before


@pytest.mark.parametrize("model", ["pix2pix", "aae"])
def test_families_that_draw_no_images_from_latents_refuse_the_flag(model):
    with pytest.raises(ConfigError, match=f"--mode-seeking .*--model {model} draws none"):
        validate(TrainConfig(model=ModelConfig(name=model), loss=LossConfig(mode_seeking=1.0)))
    validate(TrainConfig(model=ModelConfig(name="fastgan"), loss=LossConfig(mode_seeking=1.0)))


@pytest.mark.parametrize("value", ["-1", "nan", "1e9"])
def test_absurd_weights_are_refused_naming_the_flag(tmp_path, value):
    proc = ganforge("train", "--model", "dcgan", "--mode-seeking", value, "--dry-run", "--out", str(tmp_path))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "--mode-seeking" in out, out


def test_a_conditional_run_trains_with_the_term_and_records_it(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (32, 1, 16, 16), dtype=np.uint8)
    store = make_store(tmp_path / "s.gfs", images, np.arange(32) % 4, ["a", "b", "c", "d"]).path
    generators = []
    for weight in ("0", "1"):
        run_to_end("train", "--data", str(store), "--model", "dcgan", "--g-width", "8", "--d-width", "8", "--cond",
                   "--mode-seeking", weight, "--batch", "8", "--kimg", "0.064", "--tick-kimg", "0.032",
                   "--out", str(tmp_path / weight), "--no-progress")
        run = only_run(tmp_path / weight)
        assert json.loads((run / "config.json").read_text())["train"]["loss"]["mode_seeking"] == float(weight)
        ticks = [row for row in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "tick" in row]
        assert len(ticks) == 2 and all(np.isfinite(row["loss_g"]) for row in ticks)
        # The term is logged per tick (and shown as "ms" in the status line) only when it is trained.
        assert all(row["mode_seeking"] > 0 and np.isfinite(row["mode_seeking"]) for row in ticks) if weight == "1" \
            else not any("mode_seeking" in row for row in ticks)
        assert (" ms " in status_line(ticks[-1])) == (weight == "1")
        assert any(title.startswith("Mode-seeking") for title in metric_panels(ticks)) == (weight == "1")
        generators.append(load_generator(run)[0].state_dict())
    # Same seed, same data: only the term can have moved G elsewhere.
    assert any(not torch.equal(a, generators[1][name]) for name, a in generators[0].items())
