"""Wrong behaviour and unclear messages (issue 32): weights that would draw blank images, archive members that
abort a whole translate or pass for junk, a form upload, a start line that advertises a page that is not there,
file names that split a report line, --out flags that name a store or a run, and sizes and lengths that are
refused with the wrong reason or not at all. Each answer is the right behaviour or one line that says what to do.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cli_helpers import TRAIN, invoke, one_error, usage_error
from ganforge.data.store import Store
from ganforge.runs.checkpoint import CHECKSUM_KEY, content_checksum, latest_checkpoint
from ganforge.terminal_text import terminal_safe

from data_slices import make_pair_store


def _png_bytes(value: int = 128, size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), value).save(buffer, "PNG")
    return buffer.getvalue()


def _png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png_bytes(value))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 1. Weights that would draw blank images: NaN, or integers that load_state_dict would cast to floats.

SPOIL: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "NaN": lambda t: torch.full_like(t, float("nan")),
    "int32": lambda t: t.to(torch.int32),
}


def _spoil_file(path: Path, prefix: str, how: str) -> str:
    """Spoil the first floating tensor named `prefix`... in a safetensors file, keeping its checksum (when it has
    one) valid, as a hand-made file would; the tensor's name."""
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    name = sorted(k for k, t in tensors.items() if k.startswith(prefix) and t.is_floating_point())[0]
    tensors[name] = SPOIL[how](tensors[name])
    if metadata and CHECKSUM_KEY in metadata:
        metadata[CHECKSUM_KEY] = content_checksum(metadata["ganforge"], tensors)
    save_file(tensors, str(path), metadata=metadata)
    return name


@pytest.mark.parametrize("how", list(SPOIL))
def test_spoiled_weights_in_a_run_are_refused_naming_the_checkpoint_and_the_tensor(
        noise: tuple[Path, Path, Path], tmp_path: Path, how: str) -> None:
    run = Path(shutil.copytree(noise[1], tmp_path / "run"))
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None
    name = _spoil_file(checkpoint, "G.", how)
    error = one_error(invoke("generate", run, "--n", "2", "--out", tmp_path / "grid.png"))
    assert str(checkpoint) in error and name in error and how in error, error
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("how", list(SPOIL))
def test_spoiled_weights_in_an_export_are_refused_and_doctor_says_why(noise: tuple[Path, Path, Path],
                                                                      tmp_path: Path, how: str) -> None:
    export = Path(shutil.copytree(noise[2], tmp_path / "export"))
    name = _spoil_file(export / "model.safetensors", "", how)
    error = one_error(invoke("generate", export, "--n", "2", "--out", tmp_path / "grid.png"))
    assert str(export / "model.safetensors") in error and f"tensor {name} " in error and how in error, error
    report = invoke("doctor", export)
    assert report.exit_code == 1 and f"PROBLEM {export / 'model.safetensors'}: tensor {name} " in report.output
    assert how in report.output, report.output


def test_doctor_names_the_nan_tensor_of_a_run_whose_store_is_gone(noise: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    run = Path(shutil.copytree(noise[1], tmp_path / "run"))
    record = json.loads((run / "config.json").read_text())
    record["train"]["data"] = str(tmp_path / "gone.gfs")
    (run / "config.json").write_text(json.dumps(record))
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None
    name = _spoil_file(checkpoint, "G.", "NaN")
    report = invoke("doctor", run)
    assert report.exit_code == 1 and f"PROBLEM {checkpoint} is damaged (tensor {name} holds NaN" in report.output


def test_init_from_an_export_with_integer_weights_is_refused(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    store, _, export = noise
    copy = Path(shutil.copytree(export, tmp_path / "export"))
    name = _spoil_file(copy / "model.safetensors", "", "int32")
    error = one_error(invoke("train", "--data", store, "--out", tmp_path / "runs", "--init", copy, "--kimg", "0.025",
                             "--no-progress"))
    assert f"--init {copy}: its tensor G.{name} is int32, not floating point" in error, error
    assert not (tmp_path / "runs").exists()


# 2. Archive members: one bad member skips that input only; "./" in a member's path is not a hidden file.

def test_a_member_whose_name_no_disk_can_hold_is_skipped_and_the_rest_translated(translator: Path,
                                                                                 tmp_path: Path) -> None:
    long_file, long_folder = "a" * 300 + ".png", "d" * 300 + "/b.png"
    archive = _zip(tmp_path / "in.zip", {long_file: _png_bytes(), long_folder: _png_bytes(), "ok.png": _png_bytes()})
    result = invoke("translate", translator, archive, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"skipped {long_file}: name too long for an output file" in result.output
    assert f"skipped {long_folder}: name too long for an output file" in result.output
    assert "translated 1 of 3 inputs" in result.output and _files(tmp_path / "out").keys() == {"ok.png"}


def test_a_member_under_a_folder_named_like_another_member_is_translated_beside_it(translator: Path,
                                                                                   tmp_path: Path) -> None:
    """Already right: x.png and x.png/y.png each get an output of their own."""
    archive = _zip(tmp_path / "in.zip", {"x.png": _png_bytes(), "x.png/y.png": _png_bytes(), "ok.png": _png_bytes()})
    result = invoke("translate", translator, archive, "--out", tmp_path / "out")
    assert result.exit_code == 0 and "translated 3 of 3 inputs" in result.output, result.output
    assert len(_files(tmp_path / "out")) == 3


def test_members_with_dot_folders_in_their_path_are_images_not_junk(translator: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "in.zip", {"./dot.png": _png_bytes(), "e/./f.png": _png_bytes(),
                                         "g//h.png": _png_bytes(), "./.hidden.png": _png_bytes()})
    result = invoke("translate", translator, archive, "--out", tmp_path / "out")
    assert result.exit_code == 0 and "translated 3 of 4 inputs" in result.output, result.output
    assert "skipped .hidden.png: junk file" in result.output
    assert _files(tmp_path / "out").keys() == {"dot.png", "e/f.png", "g/h.png"}


def test_prepare_reads_dot_folder_members_of_a_zip_and_a_tar_too(tmp_path: Path) -> None:
    members = {"./dot.png": _png_bytes(10), "e/./f.png": _png_bytes(20), "plain.png": _png_bytes(30)}
    archive = _zip(tmp_path / "in.zip", members)
    assert invoke("prepare", archive, "--out", tmp_path / "zip.gfs").exit_code == 0
    assert Store(tmp_path / "zip.gfs").manifest.count == 3
    import tarfile

    with tarfile.open(tmp_path / "in.tar", "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert invoke("prepare", tmp_path / "in.tar", "--out", tmp_path / "tar.gfs").exit_code == 0
    assert Store(tmp_path / "tar.gfs").manifest.count == 3


# 3 and 4. serve: a form upload is told to send the file's bytes; the start line names only pages that exist.

def test_a_form_upload_is_told_to_send_the_image_bytes_as_the_body(translator: Path) -> None:
    from serve_helpers import local_client

    client = local_client(translator)
    form = client.post("/api/translate.png", files={"file": ("x.png", _png_bytes(), "image/png")})
    assert form.status_code == 400 and "multipart/form-data" in form.json()["error"], form.text
    assert "curl --data-binary @x.png" in form.json()["error"]
    body = form.request.content  # the same multipart body without its Content-Type header
    unlabelled = client.post("/api/translate.png", content=body, headers={"Content-Type": "application/octet-stream"})
    assert unlabelled.status_code == 400 and "send the image's bytes as the body" in unlabelled.json()["error"]
    assert client.post("/api/translate.png", content=_png_bytes()).status_code == 200


def test_serve_advertises_the_run_page_only_where_there_is_one(noise: tuple[Path, Path, Path], translator: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from serve_helpers import free_port

    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets: sockets[0].close())
    lines = {}
    for name, source in (("run", noise[1]), ("export", noise[2]), ("translator", translator)):
        result = invoke("serve", source, "--port", str(free_port()))
        assert result.exit_code == 0, result.output
        lines[name] = next(line for line in result.output.splitlines() if line.startswith("serving"))
    assert lines["run"].endswith("(training run page: /run, API docs: /api/docs); Ctrl-C stops"), lines
    for name in ("export", "translator"):
        assert lines[name].endswith("/ (API docs: /api/docs); Ctrl-C stops"), lines


# 5. File names are printed one per line, whatever they hold.

def test_file_names_are_escaped_as_a_terminal_would_act_on_them() -> None:
    assert terminal_safe("plain name é.png") == "plain name é.png"
    assert terminal_safe("a\nb\r\t.png") == "a\\nb\\r\\t.png"
    assert terminal_safe("x\x1b[2J.png") == "x\\x1b[2J.png"
    assert terminal_safe("r\u202egnp.exe") == "r\\u202egnp.exe"
    assert terminal_safe(b"caf\xe9.png".decode("utf-8", "surrogateescape")) == "caf\\xe9.png"
    assert terminal_safe(Path("d\n/e.png")) == "d\\n/e.png"


def test_detect_score_prints_a_name_with_a_newline_on_one_line(detector: Path, tmp_path: Path) -> None:
    forged = "real.png\n0.0000  forged.png"
    _png(tmp_path / "images" / forged)
    (tmp_path / "images" / "broken\x1b[2J.png").write_bytes(b"not a png")
    result = invoke("detect", "score", detector, tmp_path / "images")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(f"  {tmp_path / 'images'}/real.png\\n0.0000  forged.png"), lines
    assert lines[1].startswith(f"skipped {tmp_path / 'images'}/broken\\x1b[2J.png: "), lines


def test_translate_prints_a_skipped_members_name_on_one_line(translator: Path, tmp_path: Path) -> None:
    archive = _zip(tmp_path / "in.zip", {"bad\nname.png": b"not a png", "ok.png": _png_bytes()})
    result = invoke("translate", translator, archive, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "skipped bad\\nname.png: " in result.output and "\nname.png" not in result.output


def test_spoiled_weights_in_a_detector_are_refused(detector: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(detector, tmp_path / "det"))
    checkpoint = latest_checkpoint(copy)
    assert checkpoint is not None
    name = _spoil_file(checkpoint, "model.", "int32")
    error = one_error(invoke("detect", "score", copy, _png(tmp_path / "x.png")))
    assert str(checkpoint) in error and f"tensor {name} is int32" in error, error


# 6. An --out that names a store, a run, an export or a detector.

def test_detect_train_refuses_an_out_that_is_a_store_run_export_or_detector(noise: tuple[Path, Path, Path],
                                                                           detector: Path) -> None:
    store, run, export = noise
    before = {p: _files(p) for p in (run, export, detector)}
    flags = ["--real", str(store), "--fake", str(run), "--steps", "1"]
    error = usage_error(["detect", "train", *flags, "--out", str(store)])
    assert error == f"error: --out {store} is a store, not a folder; name a new folder for the detector"
    for folder, kind in ((run, "a run"), (export, "an export")):
        error = usage_error(["detect", "train", *flags, "--out", str(folder)])
        assert error == f"error: --out {folder} is {kind} folder, which ganforge reads and keeps; name a new one"
    error = usage_error(["detect", "train", *flags, "--out", str(detector)])
    assert error == f"error: --out {detector} holds a detector already; continue it with --resume, or name a new folder"
    assert "--resume" not in usage_error(["detect", "train", *flags, "--out", str(store)])
    assert {p: _files(p) for p in (run, export, detector)} == before


def test_train_refuses_an_out_that_is_a_store_or_a_run(noise: tuple[Path, Path, Path]) -> None:
    store, run, _ = noise
    before = _files(run)
    error = usage_error(["train", "--data", str(store), "--out", str(store), *TRAIN])
    assert error.startswith(f"error: --out {store} is a store, not a folder; --out names the folder runs are made in")
    error = usage_error(["train", "--data", str(store), "--out", str(run), *TRAIN])
    assert error == f"error: --out {run} is a run folder, which ganforge reads and keeps; name a new one"
    assert _files(run) == before


# 7. prepare --unpaired names the side that holds no images.

@pytest.mark.parametrize("contents, said", [({}, "holds no images"),
                                            ({"x.png": b"not a png"}, "holds no usable images (skipped: ")])
def test_prepare_unpaired_with_an_empty_b_says_that_b_holds_no_images(tmp_path: Path, contents: dict[str, bytes],
                                                                      said: str) -> None:
    for index in range(3):
        _png(tmp_path / "a" / f"{index}.png", 40 * index)
    (tmp_path / "b").mkdir()
    for name, data in contents.items():
        (tmp_path / "b" / name).write_bytes(data)
    error = one_error(invoke("prepare", "--unpaired", "--a", tmp_path / "a", "--b", tmp_path / "b",
                             "--out", tmp_path / "s.gfs"))
    assert error.startswith(f"error: --b {tmp_path / 'b'} {said}") and "file names" not in error, error
    assert not (tmp_path / "s.gfs").exists()


# 8. Image-to-image families on images too small for them name the smallest size they train on.

@pytest.mark.parametrize("model, side", [("pix2pix", 1), ("pix2pix", 2), ("pix2pix", 12), ("cyclegan", 1)])
def test_a_store_too_small_for_an_image_to_image_family_names_the_smallest_size(tmp_path: Path, model: str,
                                                                                 side: int) -> None:
    images = np.full((4, 1, side, side), 128, np.uint8)
    store = make_pair_store(tmp_path / "tiny.gfs", images, images.copy(),
                            pairing="paired" if model == "pix2pix" else "unpaired").path
    error = usage_error(["train", "--data", str(store), "--out", str(tmp_path / "runs"), "--model", model,
                         "--batch", "4", "--kimg", "0.008", "--no-progress"])
    assert f"{model} trains on images of at least 16x16" in error and f"got {side}x{side}" in error, error
    assert "multiples of 1" not in error and not (tmp_path / "runs").exists()


# 9. A --kimg shorter than one batch.

def test_a_kimg_shorter_than_one_batch_is_refused_with_the_shortest_kimg(noise: tuple[Path, Path, Path],
                                                                         tmp_path: Path) -> None:
    error = usage_error(["train", "--data", str(noise[0]), "--out", str(tmp_path / "runs"), *TRAIN,
                         "--batch", "1000", "--kimg", "0.004"])
    assert error == ("error: --kimg 0.004 is 4 images, less than one --batch of 1000; the shortest run at this batch "
                     "is --kimg 1 (or pass a smaller --batch)")
    assert not (tmp_path / "runs").exists()


# 10. doctor on a run whose recorded image shape has a 0.

@pytest.mark.parametrize("shape", [[1, 0, 16], [0, 16, 16], [1, 16], "16x16"])
def test_doctor_reports_a_run_whose_recorded_shape_is_not_an_image_shape(noise: tuple[Path, Path, Path],
                                                                         tmp_path: Path, shape: object) -> None:
    run = Path(shutil.copytree(noise[1], tmp_path / "run"))
    record = json.loads((run / "config.json").read_text())
    record["dataset"]["shape"] = shape
    (run / "config.json").write_text(json.dumps(record))
    report = invoke("doctor", run)
    assert report.exit_code == 1, report.output
    assert f"PROBLEM {run / 'config.json'}: dataset.shape is {shape}, not the [channels, height, width]" \
        in report.output, report.output
    generate = one_error(invoke("generate", run, "--n", "1", "--out", tmp_path / "g.png"))
    assert "dataset.shape" in generate
