"""`ganforge export`: every format loads back through ganforge's one loader and renders what the run renders."""

import importlib.util
import json
import shutil

import pytest
import torch
from PIL import Image

from ganforge.export.generator import ONNX_TOLERANCE
from ganforge.generate import render, seed_latents
from ganforge.runs import load_generator

from data_slices import mnist_store
from explore_helpers import invoke, invoke_error

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def reference(tiny_ema_run):
    generator, config, nimg = load_generator(tiny_ema_run)
    latents = torch.randn(5, config.model.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return latents, generator(latents), nimg


@pytest.mark.parametrize("fmt, tolerance", [
    ("safetensors", 0.0),
    ("torchscript", 1e-5),
    pytest.param("onnx", ONNX_TOLERANCE, marks=pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")),
])
def test_exported_generator_loads_back_and_matches_the_run(tiny_ema_run, reference, tmp_path, fmt, tolerance):
    out = tmp_path / f"g-{fmt}"
    output = invoke("export", tiny_ema_run, "--format", fmt, "--out", out)
    assert "exported G_ema" in output
    meta = json.loads((out / "config.json").read_text())
    assert meta["format"] == fmt and meta["weights"] == "G_ema" and meta["z_dim"] == 100
    assert meta["image_shape"] == [1, 28, 28] and meta["check"]["max_abs_diff"] <= tolerance
    latents, expected, nimg = reference
    generator, config, exported_nimg = load_generator(out)
    with torch.no_grad():
        assert (generator(latents) - expected).abs().max() <= tolerance
    assert exported_nimg == nimg and config.model.g_width == 8


def test_exported_folder_works_without_its_run(tiny_ema_run, tmp_path):
    copy = tmp_path / "run-copy"
    shutil.copytree(tiny_ema_run, copy)
    invoke("export", copy, "--out", tmp_path / "shipped")
    shutil.rmtree(copy)  # the export must not read the run again
    invoke("generate", tmp_path / "shipped", "--seeds", "0-3", "--truncation", "0.8", "--out", tmp_path / "g.png")
    image = Image.open(tmp_path / "g.png")
    assert image.text["psi"] == "0.8" and image.size == (2 * 30 + 2, 2 * 30 + 2)


def test_generate_renders_the_same_pixels_from_run_and_export(tiny_ema_run, tmp_path):
    invoke("export", tiny_ema_run, "--format", "torchscript", "--out", tmp_path / "ts")
    from_run = render(load_generator(tiny_ema_run).generator, seed_latents([1, 2, 3], 100))
    from_export = render(load_generator(tmp_path / "ts").generator, seed_latents([1, 2, 3], 100))
    assert torch.equal(from_run, from_export)


def test_model_card_names_data_length_weights_and_says_no_metrics_were_logged(tiny_ema_run, tmp_path):
    invoke("export", tiny_ema_run, "--out", tmp_path / "e")
    card = (tmp_path / "e" / "README.md").read_text()
    assert "synthetic image" in card and "digits" in card and "0.3 kimg of 0.3 planned" in card
    assert "G-EMA" in card and "No FID/KID was logged" in card


def test_model_card_reports_logged_fid_and_kid_with_their_protocol(tiny_ema_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_ema_run, copy)
    with open(copy / "log.jsonl", "a") as log:
        log.write(json.dumps({"kimg": 0.3, "fid_random-conv": 41.25, "extractor": "random-conv", "n_fake": 500})
                  + "\n")
        log.write(json.dumps({"kimg": 0.3, "kid50": {"metric": "kid", "scores": {"kid": 0.0123, "kid_std": 0.001},
                                                     "extractor": "inception-v3", "n_real": 1000}}) + "\n")
    invoke("export", copy, "--out", tmp_path / "e")
    card = (tmp_path / "e" / "README.md").read_text()
    assert "| 0.3 | fid_random-conv | 41.25 | extractor=random-conv, n_fake=500 |" in card
    assert "| 0.3 | kid | 0.0123 | metric=kid, extractor=inception-v3, n_real=1000 |" in card


def test_model_card_front_matter_is_yaml_with_the_hub_fields_and_the_logged_metrics(tiny_ema_run, tmp_path):
    yaml = pytest.importorskip("yaml", reason="pyyaml is in the dev extra")
    copy = tmp_path / "run"
    shutil.copytree(tiny_ema_run, copy)
    with open(copy / "log.jsonl", "a") as log:
        fid = {"metric": "fid", "scores": {"fid": 88.5}, "extractor": "inception-v3", "n_fake": 500}
        log.write(json.dumps({"kimg": 0.3, "fid": fid}) + "\n")
    invoke("export", copy, "--format", "hf", "--out", tmp_path / "e")
    text = (tmp_path / "e" / "README.md").read_text()
    assert text.startswith("---\n")
    fields = yaml.safe_load(text.split("---\n")[1])
    assert fields["library_name"] == "ganforge" and fields["pipeline_tag"] == "unconditional-image-generation"
    assert fields["license"] == "other" and {"ganforge", "gan", "dcgan"} <= set(fields["tags"])
    (metric,) = fields["model-index"][0]["results"][0]["metrics"]
    assert metric["type"] == "fid" and metric["value"] == 88.5 and "extractor=inception-v3" in metric["name"]
    assert "![samples, seeds 0-15](samples.png)" in text and (tmp_path / "e" / "samples.png").is_file()


def test_export_refuses_to_mix_into_a_folder_of_other_files(tiny_ema_run, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert "other files in it" in invoke_error("export", tiny_ema_run, "--out", tmp_path / "busy")
    invoke("export", tiny_ema_run, "--out", tmp_path / "again")
    invoke("export", tiny_ema_run, "--format", "torchscript", "--out", tmp_path / "again")  # re-export over an export


def test_export_reads_a_run_folder_only(tiny_ema_run, tmp_path):
    invoke("export", tiny_ema_run, "--out", tmp_path / "e")
    assert "already an exported folder" in invoke_error("export", tmp_path / "e", "--out", tmp_path / "f")
    assert "no such run folder" in invoke_error("export", tmp_path / "nothing")


def test_damaged_export_is_a_clear_error(tiny_ema_run, tmp_path):
    invoke("export", tiny_ema_run, "--out", tmp_path / "e")
    (tmp_path / "e" / "model.safetensors").write_bytes(b"junk")
    assert "cannot be loaded" in invoke_error("generate", tmp_path / "e", "--out", tmp_path / "g.png")


def test_conditional_runs_export_as_weights_and_the_tools_draw_them_in_a_class(tmp_path):
    store = mnist_store(tmp_path / "digits.gfs", 64)
    invoke("train", "--model", "dcgan",
           "--data", store, "--cond", "--kimg", "0.064", "--tick-kimg", "0.064", "--batch", "32",
           "--g-width", "8", "--d-width", "8", "--no-progress", "--out", tmp_path / "runs")
    (run,) = (tmp_path / "runs").iterdir()
    assert "safetensors reload" in invoke("export", run, "--out", tmp_path / "e")
    assert "traces G(z) only" in invoke_error("export", run, "--format", "onnx", "--out", tmp_path / "o")
    assert "give --class NAME" in invoke_error("interpolate", run, "--out", tmp_path / "x.png")
    for source in (run, tmp_path / "e"):  # the export keeps the class names and draws what the run draws
        out = tmp_path / f"walk-{source.name}.png"
        invoke("interpolate", source, "--seeds", "1,2", "--frames", "3", "--class", "6", "--out", out)
        assert Image.open(out).text["class"] == "6"
    assert Image.open(tmp_path / f"walk-{run.name}.png").tobytes() == Image.open(tmp_path / "walk-e.png").tobytes()
    # Into a folder without --class: one file per seed, the classes in turn, the class in name and metadata.
    invoke("generate", run, "--n", "12", "--out", tmp_path / "files")
    names = sorted(p.name for p in (tmp_path / "files").iterdir())
    assert len(names) == 12 and names[:3] == ["seed0000-0.png", "seed0001-1.png", "seed0002-2.png"]
    assert "seed0011-1.png" in names and Image.open(tmp_path / "files" / "seed0007-7.png").text["class"] == "7"
