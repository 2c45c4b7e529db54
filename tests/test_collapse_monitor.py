"""The collapse monitor: its value on a collapsed set (one image 64 times) against a varied one, the warning and
when it may come, and its numbers in log.jsonl and its state (in the checkpoint's counters), the same after a resume
as in an unbroken run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import ganforge as gf
from ganforge.cli import main
from ganforge.config import AugmentConfig, LossConfig, ModelConfig, TrainConfig
from ganforge.data.store import Store, to_float
from ganforge.metrics.palette import palette_features
from ganforge.metrics.random_conv import RandomConvExtractor
from ganforge.training.collapse_monitor import (
    COLLAPSE_RATIO,
    PALETTE_RATIO,
    REFERENCE_SETS,
    collapse_monitor,
    is_collapsed,
    nearest_neighbour_distances,
    real_reference,
    reference_rows,
    remedies,
)
from ganforge.training.report import metric_panels, status_line
from ganforge.training.state import Counters

from data_slices import anime_store, mnist_store
from explore_helpers import one_thread


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(mnist_store(tmp_path_factory.mktemp("collapse") / "digits.gfs", 512))


class Drawing(nn.Module):
    """A stand-in G that draws one of its images for each latent, picked by the latent's values."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images = nn.Parameter(images, requires_grad=False)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.images[(z.abs().sum(1) * 1000).long() % len(self.images)]


def _state(generator: nn.Module, cur_nimg: int, tick: int, kimg: float = 10.0,
           counters: Counters | None = None) -> SimpleNamespace:
    """A run's state at `cur_nimg`, tick `tick`: its `counters` (the monitor's state among them) carried on."""
    counters = counters if counters is not None else Counters()
    counters.cur_nimg, counters.tick = cur_nimg, tick
    config = TrainConfig(model=ModelConfig(z_dim=8), kimg=kimg)
    return SimpleNamespace(generator=generator, generator_ema=None, config=config, counters=counters)


def test_one_image_repeated_has_no_diversity_and_real_digits_have_plenty(digits: Store) -> None:
    extractor = RandomConvExtractor()
    varied = extractor.extract(digits.uint8_batch(np.arange(64)))[0]
    same = extractor.extract(digits.uint8_batch(np.zeros(64, dtype=np.int64)))[0]
    assert float(nearest_neighbour_distances(same).median()) == 0.0
    assert float(nearest_neighbour_distances(varied).median()) > 1.0


def test_a_collapsed_generator_is_warned_about_once_past_the_start_and_a_varied_one_never(digits: Store) -> None:
    config = TrainConfig(model=ModelConfig(z_dim=8), kimg=10.0)
    lines: list[str] = []
    hook = collapse_monitor(config, digits, lines.append, torch.device("cpu"))
    reals = to_float(digits.uint8_batch(np.arange(0, 512)))
    collapsed = Drawing(reals[:3])  # three digits over and over
    varied = Drawing(reals)  # any of 512 real digits

    record: dict = {}
    counters = Counters()
    hook(_state(collapsed, cur_nimg=500, tick=1, counters=counters), record)  # a fresh G may draw alike: no warning
    assert lines == [] and record["diversity"] < COLLAPSE_RATIO * record["diversity_real"]
    assert record["near_twins"] == 64

    hook(_state(varied, cur_nimg=5000, tick=5, counters=counters), record)
    assert lines == [] and record["diversity"] > COLLAPSE_RATIO * record["diversity_real"]
    assert record["near_twins"] < 16
    assert "palette_diversity" not in record  # grey images have no palette to measure

    hook(_state(collapsed, cur_nimg=5500, tick=6, counters=counters), record)
    assert len(lines) == 1 and lines[0].startswith("samples are collapsing: diversity 0,")
    assert "64 of 64 samples have a near-twin" in lines[0] and "--lr-g" in lines[0]


def test_a_lasting_collapse_is_said_when_it_starts_then_once_per_tenth_of_the_run(digits: Store) -> None:
    """An hour's run that collapsed at most ticks printed the warning 175 times (BENCHMARKS.md), burying the rest of
    its output: a fall is said when it starts, reminded with "still" each tenth of the run, said again after a
    recovery, and a resumed run (its counters restored) keeps the same rhythm."""
    config = TrainConfig(model=ModelConfig(z_dim=8), kimg=10.0)
    lines: list[str] = []
    hook = collapse_monitor(config, digits, lines.append, torch.device("cpu"))
    reals = to_float(digits.uint8_batch(np.arange(0, 512)))
    collapsed, varied = Drawing(reals[:3]), Drawing(reals)
    counters = Counters()
    said: list[tuple[int, str]] = []
    for tick in range(3, 31):  # 3 to 30 kimg of a 30-kimg run in 1-kimg ticks: varied at 10-14, collapsed otherwise
        if tick == 20:  # stopped and resumed: a new monitor, the counters as the checkpoint restores them
            hook = collapse_monitor(config, digits, lines.append, torch.device("cpu"))
            counters = Counters(**dict(counters.__dict__))
        before = len(lines)
        hook(_state(varied if 10 <= tick <= 14 else collapsed, cur_nimg=1000 * tick, tick=tick, kimg=30.0,
                    counters=counters), {})
        said += [(tick, "still" if "are still collapsing" in line else "new") for line in lines[before:]]
    assert said == [(3, "new"), (6, "still"), (9, "still"), (15, "new"), (18, "still"), (21, "still"), (24, "still"),
                    (27, "still"), (30, "still")], said


class ClassVariations(nn.Module):
    """A stand-in conditional G that draws, for each class, one digit of that class blended with another picked by
    the latent: variations on one image per class (what a conditional G collapsed within its classes draws)."""

    def __init__(self, reals: torch.Tensor, labels: torch.Tensor, variation: float) -> None:
        super().__init__()
        self.reals, self.labels, self.variation = nn.Parameter(reals, requires_grad=False), labels, variation

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        picks = (z.abs().sum(1) * 1000).long()
        drawn = []
        for pick, label in zip(picks.tolist(), labels.tolist(), strict=True):
            pool = torch.nonzero(self.labels == label).flatten()
            template, other = self.reals[pool[0]], self.reals[pool[pick % len(pool)]]
            drawn.append(self.variation * other + (1 - self.variation) * template)
        return torch.stack(drawn)


def test_a_conditional_generator_drawing_variations_of_one_image_per_class_is_warned_about(digits: Store) -> None:
    # Measured over all 64 samples against any 64 digits, its classes look varied enough (55 % of the real
    # images' diversity): within each class, against real digits of that class, it is collapsed.
    config = TrainConfig(model=ModelConfig(z_dim=8, conditional=True, num_classes=10), kimg=10.0)
    reals = to_float(digits.uint8_batch(np.arange(512)))
    labels = torch.as_tensor(digits.labels[:512])
    lines: list[str] = []
    hook = collapse_monitor(config, digits, lines.append, torch.device("cpu"))
    record: dict = {}
    state = _state(ClassVariations(reals, labels, 0.38), cur_nimg=5000, tick=5)
    state.config = config
    hook(state, record)
    assert record["near_twins"] >= 32
    assert len(lines) == 1 and "samples have a near-twin in their class" in lines[0], lines
    assert "--mode-seeking 1, --no-cond or --model projected" in lines[0]  # what held Fashion-MNIST's classes
    lines.clear()
    seeking = dataclasses.replace(config, loss=LossConfig(mode_seeking=1.0))
    state.config, state.counters = seeking, Counters(cur_nimg=5000, tick=5)  # another run, not yet warned
    collapse_monitor(seeking, digits, lines.append, torch.device("cpu"))(state, {})
    assert len(lines) == 1 and "--mode-seeking" not in lines[0] and "--no-cond" in lines[0]  # already on


def test_the_warning_names_only_remedies_the_run_does_not_already_use() -> None:
    # A Projected GAN run (DiffAugment and a 10-kimg EMA in its recipe) that collapses is not told to train
    # Projected GAN with DiffAugment and an EMA (BENCHMARKS.md, "The monitor on a Projected GAN run").
    assert remedies(TrainConfig()) == ["--augment diffaugment", "--ema-kimg 10", "--model projected"]
    projected = TrainConfig(model=ModelConfig(name="projected"), augment=AugmentConfig(name="diffaugment"),
                            ema_kimg=10.0)
    # MSGAN's term held Projected GAN's 32 px cars, where the recipe alone narrowed to a few grey saloons
    # and the pixel head widened its 32 px faces' palettes
    assert remedies(projected) == ["--mode-seeking 1", "--pixel-head"]
    seeking = dataclasses.replace(projected, loss=LossConfig(mode_seeking=1.0),
                                  model=ModelConfig(name="projected", pixel_head=True))
    assert remedies(seeking) == []
    assert remedies(dataclasses.replace(seeking, ema_kimg=1.0)) == ["--ema-kimg 10"]
    conditional = TrainConfig(model=ModelConfig(conditional=True, num_classes=10), ema_kimg=10.0)
    assert remedies(conditional) == ["--augment diffaugment", "--mode-seeking 1", "--no-cond", "--model projected"]


def test_many_samples_with_a_near_twin_is_collapse_even_with_half_the_diversity_left() -> None:
    assert is_collapsed(diversity=0.6, real=1.0, twins=40, samples=64)  # variations on a few images
    assert is_collapsed(diversity=0.7, real=1.0, twins=20, samples=64)  # under a third of them
    assert not is_collapsed(diversity=0.8, real=1.0, twins=16, samples=64)  # as many as a healthy run has had
    assert not is_collapsed(diversity=0.6, real=1.0, twins=10, samples=64)  # less varied, not repeating
    assert is_collapsed(diversity=0.4, real=1.0, twins=0, samples=64)
    assert not is_collapsed(diversity=0.0, real=0.0, twins=64, samples=64)  # no real reference: no verdict


def test_the_logged_diversity_is_the_same_after_a_resume(digits: Store, tmp_path: Path) -> None:
    settings = {"data": str(digits.path), "model": "dcgan", "g_width": 8, "d_width": 8, "batch": 32,
                "tick_kimg": 0.064, "snap": 1, "progress": False, "echo": lambda _: None}
    with one_thread():
        whole = gf.train(kimg=0.192, out=str(tmp_path / "whole"), **settings).path
        half = gf.train(kimg=0.096, out=str(tmp_path / "half"), **settings).path
        gf.train(resume=str(half), kimg=0.192, progress=False, echo=lambda _: None)

    def diversity(run: Path) -> dict[int, tuple[float, float, int]]:
        rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        return {r["nimg"]: (r["diversity"], r["diversity_real"], r["near_twins"]) for r in rows if "tick" in r}

    unbroken, resumed = diversity(whole), diversity(half)  # the resumed run also ended a tick at its first end
    assert set(unbroken) == {64, 128, 192} and {64, 192} <= set(resumed)
    assert unbroken[64] == resumed[64] and unbroken[192] == resumed[192]
    rows = [json.loads(line) for line in (whole / "log.jsonl").read_text().splitlines()]
    assert any(title.startswith("Diversity") for title in metric_panels(rows))  # drawn in metrics.png


def test_the_first_warning_keeps_the_checkpoint_from_before_the_fall(digits: Store, tmp_path: Path) -> None:
    with one_thread():
        run = gf.train(data=str(digits.path), model="dcgan", g_width=8, d_width=8, batch=32, kimg=0.192,
                       tick_kimg=0.064, snap=1, keep=5, out=str(tmp_path), progress=False, echo=lambda _: None).path
    config = TrainConfig(model=ModelConfig(z_dim=8), kimg=0.4)
    lines: list[str] = []
    hook = collapse_monitor(config, digits, lines.append, torch.device("cpu"), run)
    reals = to_float(digits.uint8_batch(np.arange(0, 512)))
    counters = Counters()
    hook(_state(Drawing(reals), cur_nimg=130, tick=3, kimg=0.4, counters=counters), {})  # after the checkpoint of 128
    # The run is stopped here and resumed: a new monitor, the counters as the checkpoint restores them.
    hook = collapse_monitor(config, digits, lines.append, torch.device("cpu"), run)
    counters = Counters(**dict(counters.__dict__))
    hook(_state(Drawing(reals[:3]), cur_nimg=200, tick=4, kimg=0.4, counters=counters), {})
    assert len(lines) == 1 and "kimg 0.128, from before the fall, is kept in" in lines[0], lines
    kept = run / "before-collapse"
    assert [p.name for p in (kept / "checkpoints").iterdir()] == ["ckpt-0000000128.safetensors"]
    result = CliRunner().invoke(main, ["generate", str(kept), "--seeds", "0-3", "--out", str(tmp_path / "g.png")])
    assert result.exit_code == 0 and (tmp_path / "g.png").is_file(), result.output
    hook = collapse_monitor(config, digits, lines.append, torch.device("cpu"), run)  # resumed once more
    hook(_state(Drawing(reals[:3]), cur_nimg=260, tick=5, kimg=0.4, counters=Counters(**counters.__dict__)), {})
    assert len(lines) == 2 and "is kept in" not in lines[1] and "No checkpoint" not in lines[1]
    assert [p.name for p in (kept / "checkpoints").iterdir()] == ["ckpt-0000000128.safetensors"]


def test_a_fall_before_any_checkpoint_says_none_was_kept(digits: Store, tmp_path: Path) -> None:
    lines: list[str] = []
    hook = collapse_monitor(TrainConfig(model=ModelConfig(z_dim=8), kimg=10.0), digits, lines.append,
                            torch.device("cpu"), tmp_path)
    hook(_state(Drawing(to_float(digits.uint8_batch(np.arange(3)))), cur_nimg=5000, tick=5), {})
    assert "No checkpoint from before the fall is on disk" in lines[0] and not (tmp_path / "before-collapse").exists()


@pytest.fixture(scope="module")
def anime32(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """2,048 anime faces at 32 px: natural colour photos, far more alike in layout than digits of different classes."""
    return Store(anime_store(tmp_path_factory.mktemp("anime"), 2048, 32))


def test_on_colour_photos_a_generator_drawing_like_the_data_is_not_warned_about_and_six_faces_are(
        anime32: Store) -> None:
    """The thresholds were set on digits; a G as varied as the anime faces must not set them off (a false alarm
    would teach users to ignore the warning), and one drawing six faces over and over must."""
    config = TrainConfig(model=ModelConfig(z_dim=8), kimg=10.0)
    lines: list[str] = []
    hook = collapse_monitor(config, anime32, lines.append, torch.device("cpu"))
    # Any of 2,048 faces (two of 64 latents pick the same one about once: a near-twin pair of the stand-in's own).
    reals = to_float(anime32.uint8_batch(np.arange(2048)))
    record: dict = {}
    counters = Counters()
    for tick, shift in enumerate((0, 700, 1400), start=5):  # other faces each time
        hook(_state(Drawing(torch.roll(reals, shift, 0)), cur_nimg=1000 * tick, tick=tick, counters=counters), record)
        assert lines == [] and record["diversity"] > 0.8 * record["diversity_real"], record
        assert record["near_twins"] < 16, record
        assert record["palette_diversity"] > 0.8 * record["palette_diversity_real"], record
    hook(_state(Drawing(reals[:6]), cur_nimg=9000, tick=9, counters=counters), record)
    assert len(lines) == 1 and "64 of 64 samples have a near-twin" in lines[0], lines


def test_faces_drawn_closer_together_than_real_ones_but_all_different_are_not_called_twins(anime32: Store) -> None:
    """The false alarm of the 64 px faces' runs (BENCHMARKS.md, "Near-twins by distance"): 64 different faces, each
    drawn a fifth of the way towards the mean face, sit at 0.8 of the real faces' diversity. Real faces' nearest
    neighbours all lie near their median, so a threshold ranked among them (closer than 95 % of real pairs) called
    half of these faces twins and warned; by distance none of them is one."""
    config = TrainConfig(model=ModelConfig(z_dim=8), kimg=10.0)
    lines: list[str] = []
    hook = collapse_monitor(config, anime32, lines.append, torch.device("cpu"))
    faces = torch.as_tensor(anime32.uint8_batch(np.arange(2048))).float()
    alike = (0.8 * faces + 0.2 * faces.mean(0, keepdim=True)).round().to(torch.uint8)
    record: dict = {}
    hook(_state(Drawing(to_float(alike)), cur_nimg=5000, tick=5), record)
    assert 0.65 < record["diversity"] / record["diversity_real"] < 0.9, record
    assert record["near_twins"] < 8 and lines == [], (record, lines)


def test_the_real_reference_is_pooled_over_several_sets_and_a_tiny_store_gives_one(digits: Store,
                                                                                   tmp_path: Path) -> None:
    extractor = RandomConvExtractor()
    pooled, _, groups = real_reference(digits, None, 5, extractor)
    rng = np.random.default_rng(5)  # the sets are drawn one after another from one stream
    sets = [nearest_neighbour_distances(extractor.extract(torch.as_tensor(
        digits.uint8_batch(reference_rows(digits, None, rng)[0])))[0]) for _ in range(REFERENCE_SETS)]
    assert groups is None and pooled == pytest.approx(float(torch.cat(sets).median()))
    assert len({float(s.median()) for s in sets}) == REFERENCE_SETS  # distinct sets, not one drawn again
    tiny = Store(mnist_store(tmp_path / "tiny.gfs", 40))
    alone = float(nearest_neighbour_distances(extractor.extract(torch.as_tensor(tiny.uint8_batch(
        np.arange(40))))[0]).median())
    assert real_reference(tiny, None, 5, extractor)[0] == pytest.approx(alone)


def test_a_palette_is_measured_by_colour_alone() -> None:
    red, blue = torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    red[:, 0], blue[:, 2] = 250, 250
    red[1, 0, :16] = 210  # another shape in the same coarse colour
    features = palette_features(torch.cat([red, blue]))
    assert torch.allclose(features.norm(dim=1), torch.ones(3))
    assert float((features[0] - features[1]).norm()) == 0.0
    assert float((features[0] - features[2]).norm()) == pytest.approx(2**0.5)
    with pytest.raises(ValueError, match="RGB"):
        palette_features(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))


def test_faces_drawn_in_one_palette_are_warned_about_by_their_colours_though_their_shapes_vary(anime32: Store) -> None:
    """What the random features under-read (BENCHMARKS.md: a G drawing every face in one or two hair colours kept
    0.8-0.9 of the real faces' diversity in them): the same faces drained of their own colours, each in its own
    brightness plus the data's mean colour cast, keep 0.9 of the shapes' diversity and few near-twins, but their
    palettes fall to about a third of the real faces', and the warning says it is their colours."""
    config = TrainConfig(model=ModelConfig(z_dim=8), kimg=10.0)
    lines: list[str] = []
    hook = collapse_monitor(config, anime32, lines.append, torch.device("cpu"))
    faces = torch.as_tensor(anime32.uint8_batch(np.arange(2048))).float()
    brightness = (faces * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    mean_colour = faces.mean((0, 2, 3))[None, :, None, None]
    one_palette = (brightness + mean_colour - mean_colour.mean()).round().clamp(0, 255).to(torch.uint8)
    record: dict = {}
    hook(_state(Drawing(to_float(one_palette)), cur_nimg=5000, tick=5), record)
    assert record["diversity"] > 0.8 * record["diversity_real"] and record["near_twins"] < 32, record
    assert record["palette_diversity"] < min(0.45, PALETTE_RATIO) * record["palette_diversity_real"], record
    assert len(lines) == 1 and lines[0].startswith("samples' colours are narrowing: palette diversity"), lines
    assert "of the real images'" in lines[0] and "--lr-g" in lines[0]
    # metrics.png: the palettes drawn; DiffAugment's p, 1 at every tick, is not (it says nothing ADA's would)
    panels = metric_panels([{"kimg": 5.0, "augment_p": 1.0, **record}, {"kimg": 6.0, "augment_p": 1.0, **record}])
    assert "Palette diversity: samples vs real images" in panels and "ADA p" not in panels
    assert "ADA p" in metric_panels([{"kimg": 5.0, "augment_p": 0.0}, {"kimg": 6.0, "augment_p": 1.0}])
    # and the status line prints p only while ADA adapts it
    tick = {"tick": 6, "kimg": 6.0, "time_s": 60.0, "sec_per_tick": 10.0, "sec_per_kimg": 10.0, "img_per_s": 100.0,
            "loss_d": 1.0, "loss_g": 1.0, "d_real": 0.5, "d_fake": 0.5, "acc_real": 0.5, "acc_fake": 0.5,
            "peak_mem_gb": 1.0}
    assert " p " not in status_line({**tick, "augment_p": 1.0}) and " p " not in status_line(tick)
    assert " p 0.125 " in status_line({**tick, "augment_p": 0.125})
