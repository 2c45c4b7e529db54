"""Small inputs that ask for a lot of memory: a 50 KB PNG of 50,000,000 x 1 px (Lanczos weights and intermediates
of gigabytes when stretched), uploads decoded all at once beside the translation slots, a MemoryError read as a
corrupt image, an ONNX export whose graph makes images of another size or type, a config.json that says 16384^2,
a 20000^2 PNG among a detector's real images. Each input is bounded by what it will produce, a refusal is one
line naming the file, and running out of memory is "busy, retry", never "bad input"."""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from cli_helpers import invoke, one_error
from ganforge.errors import CheckpointError
from ganforge.runs import load_generator

from data_slices import make_store
from serve_helpers import LOCAL_BASE_URL


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _grey_png(width: int, height: int, header_only: bool = False) -> bytes:
    """An 8-bit grey PNG of mid-grey rows, compressed a megabyte at a time (Pillow would hold every pixel first);
    `header_only`: no pixels at all, enough for Pillow to open it and refuse its size."""
    packer, row = zlib.compressobj(9), b"\x00" + b"\x80" * width  # each row: filter byte "none", then pixels
    rows_per_block = max(1, (1 << 20) // len(row))
    data = [] if header_only else [packer.compress(row * min(rows_per_block, height - start))
                                   for start in range(0, height, rows_per_block)]
    data.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(data)) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def wide_png() -> bytes:
    png = _grey_png(50_000_000, 1)
    assert len(png) < 100_000  # 50 M pixels in under 100 KB
    return png


def _digit_png() -> bytes:
    digit = np.zeros((16, 16), np.uint8)
    digit[4:12, 7:9] = 255
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("crop", ["none", "pad"])
def test_a_line_of_fifty_million_pixels_translates_like_any_other_input(translator: Path, wide_png: bytes,
                                                                        tmp_path: Path, crop: str) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "line.png").write_bytes(wide_png)
    (inputs / "digit.png").write_bytes(_digit_png())
    result = invoke("translate", translator, inputs, "--out", tmp_path / "out", "--crop", crop)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "translated 2 of 2" in result.output
    assert Image.open(tmp_path / "out" / "line.png").size == (16, 16)


def test_a_column_of_fifty_million_pixels_is_stretched_without_a_giant_intermediate(translator: Path,
                                                                                    tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "column.png").write_bytes(_grey_png(1, 50_000_000))  # the shape: 1 px wide, 97 KB
    result = invoke("translate", translator, inputs, "--out", tmp_path / "out", "--crop", "none")
    assert result.exit_code == 0 and "translated 1 of 1" in result.output, result.output


# --- serve: uploads -------------------------------------------------------------------------------------------------

def _client(run: Path, max_parallel: int = 2, **limits: int):  # -> fastapi's TestClient (the serve extra)
    testclient = pytest.importorskip("fastapi.testclient")
    from ganforge.serve.translate_app import create_translation_app

    return testclient.TestClient(create_translation_app(run, max_parallel=max_parallel, **limits),
                                 base_url=LOCAL_BASE_URL)


def test_serve_translates_a_line_of_fifty_million_pixels_with_crop_none(translator: Path, wide_png: bytes) -> None:
    response = _client(translator).post("/api/translate.png?crop=none", content=wide_png)
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (16, 16)


def test_serve_decodes_no_more_uploads_at_once_than_its_translation_slots(translator: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import ganforge.serve.translate_app as translate_app

    client = _client(translator, max_parallel=2)
    running, most, lock = 0, 0, threading.Lock()
    decode = translate_app.decode

    def counting_decode(*args, **kwargs):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.05)  # long enough for every request to arrive while the first ones decode
            return decode(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(translate_app, "decode", counting_decode)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: client.post("/api/translate.png", content=_digit_png()).status_code,
                                 range(8)))
    assert statuses == [200] * 8 and 1 <= most <= 2, (statuses, most)


def test_serve_holds_at_most_four_upload_limits_a_slot_and_answers_more_busy(translator: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import ganforge.serve.translate_app as translate_app

    client = _client(translator, max_parallel=1, max_upload_bytes=len(_digit_png()))  # room: four of these
    arrived, release, lock = [], threading.Event(), threading.Lock()
    translate = translate_app._translate

    def held_translate(*args, **kwargs):
        with lock:
            arrived.append(1)
        release.wait(60)  # each request holds its upload until the test has sent one more
        return translate(*args, **kwargs)

    monkeypatch.setattr(translate_app, "_translate", held_translate)
    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(client.post, "/api/translate.png", content=_digit_png()) for _ in range(4)]
        deadline = time.monotonic() + 60
        while len(arrived) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(arrived) == 4
        refused = client.post("/api/translate.png", content=_digit_png())
        release.set()
        statuses = [future.result().status_code for future in held]
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5" and "retry" in refused.json()["error"]
    assert statuses == [200] * 4
    assert client.post("/api/translate.png", content=_digit_png()).status_code == 200  # room again once answered


def test_serve_refuses_a_scale_whose_output_would_pass_the_side_limit(translator: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import ganforge.serve.translate_app as translate_app

    monkeypatch.setattr(translate_app, "MAX_OUTPUT_SIDE", 64)  # as a 512 px run meets the real 2048 at scale 8
    response = _client(translator).post("/api/translate.png?scale=8", content=_digit_png())
    assert response.status_code == 400 and response.json()["param"] == "scale", response.text
    assert "scale 8 would make a 128x128 px image; the limit is 64 px a side" in response.json()["error"]


def test_running_out_of_memory_while_decoding_is_busy_retry_not_a_bad_image(translator: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(self: ImageFile.ImageFile) -> None:
        raise MemoryError

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_memory)
    response = _client(translator).post("/api/translate.png", content=_digit_png())
    assert response.status_code == 503 and "retry" in response.json()["error"], response.text
    assert response.headers["retry-after"]


def test_an_image_over_the_pixel_limit_is_a_bomb_even_when_the_warning_is_not_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Another thread leaving pillow_limits resets the warning filters for all: the limit must not depend on them.
    from ganforge.data.decode import SkipInput, open_image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    buffer = io.BytesIO()
    Image.new("L", (12, 12)).save(buffer, "PNG")  # 144 px: over the limit, under twice it (Pillow only warns)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(SkipInput, match="decompression bomb"):
        open_image(io.BytesIO(buffer.getvalue()))


def test_translate_skips_an_input_it_has_no_memory_for_and_says_so(translator: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a.png").write_bytes(_digit_png())
    Image.new("L", (16, 16), 7).save(inputs / "b.bmp")
    load = ImageFile.ImageFile.load

    def no_memory_for_bmp(self: ImageFile.ImageFile):
        if self.format == "BMP":
            raise MemoryError
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_memory_for_bmp)
    result = invoke("translate", translator, inputs, "--out", tmp_path / "out")
    assert result.exit_code == 0 and "translated 1 of 2" in result.output, result.output
    assert "out of memory" in result.output and "corrupt" not in result.output


# --- exports: declared and produced sizes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def export(noise: tuple[Path, Path, Path]) -> Path:
    return noise[2]


def _hostile_graph(path: Path, make: str, input_name: str, input_shape: list[int | str]) -> None:
    """An ONNX graph at `path` taking `input_name` [batch, ...] and making `make`: "expand" (images of
    1x40000x40000, a shape onnxruntime knows when it loads the graph), "2x2" (images of 1x2x2, a shape computed
    from the input's values, so known only once it runs), "int64" (images of 1x16x16 as int64) or "fails" (a
    reshape of one value per input into 3x3, which fails when it runs)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    side = {"expand": 40000, "2x2": 2, "int64": 16, "fails": 3}[make]
    axes = list(range(1, len(input_shape)))
    constants = [helper.make_tensor("side", TensorProto.FLOAT, [4], [1, 1, side, side]),
                 helper.make_tensor("four", TensorProto.INT64, [4], [-1, 1, 1, 1]),
                 helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    nodes = [helper.make_node("ReduceMean", [input_name], ["mean"], axes=axes, keepdims=1),
             helper.make_node("Reshape", ["mean", "four"], ["cell"]),
             # shape = side + 0 * max(input): the same numbers, but only known once the input is there
             helper.make_node("ReduceMax", [input_name], ["top"], keepdims=0),
             helper.make_node("Mul", ["top", "zero"], ["nothing"]),
             helper.make_node("Add", ["side", "nothing"] if make in ("2x2", "fails") else ["side", "zero"],
                              ["shape_f"]),
             helper.make_node("Cast", ["shape_f"], ["shape"], to=TensorProto.INT64),
             helper.make_node("Reshape" if make == "fails" else "Expand", ["cell", "shape"], ["wide"]),
             helper.make_node("Cast", ["wide"], ["images_out"],
                              to=TensorProto.INT64 if make == "int64" else TensorProto.FLOAT)]
    given = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)
    made = helper.make_tensor_value_info("images_out", TensorProto.INT64 if make == "int64" else TensorProto.FLOAT,
                                         None if make in ("2x2", "fails") else ["batch", 1, side, side])
    model = helper.make_model(helper.make_graph(nodes, "hostile", [given], [made], initializer=constants),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def _onnx_export(export: Path, tmp_path: Path, make: str) -> Path:
    """A copy of `export` turned into an ONNX export whose graph is a _hostile_graph."""
    folder = Path(shutil.copytree(export, tmp_path / f"onnx-{make}"))
    meta = json.loads((folder / "config.json").read_text())
    _hostile_graph(folder / "generator.onnx", make, "z", ["batch", meta["train"]["model"]["z_dim"]])
    (folder / "model.safetensors").unlink()
    meta.update(format="onnx", file="generator.onnx")
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("make, says", [("expand", "declares images of 1x40000x40000 (CxHxW), but the export's "
                                                   "config.json records 1x16x16"),
                                        ("2x2", "makes images of 1x2x2 (CxHxW), but the export's config.json "
                                                "records 1x16x16"),
                                        ("int64", "outputs tensor(int64), not float32 images"),
                                        ("fails", "its graph fails on 1 input(s) in its Reshape node")])
def test_an_onnx_graph_that_makes_other_images_than_its_export_records_is_one_line(export: Path, tmp_path: Path,
                                                                                   make: str, says: str) -> None:
    folder = _onnx_export(export, tmp_path, make)
    error = one_error(invoke("generate", folder, "--n", "4", "--out", tmp_path / "g.png"))
    assert "generator.onnx" in error and says in error, error
    assert not (tmp_path / "g.png").exists()
    doctor = invoke("doctor", folder)
    assert "Traceback" not in doctor.output and says in doctor.output, doctor.output
    pytest.importorskip("fastapi")  # `serve` refuses it as it starts, instead of dying on its first sample
    from ganforge.serve.app import create_app

    with pytest.raises(CheckpointError, match=r"generator.onnx: its graph"):
        create_app(folder)


@pytest.mark.parametrize("make", ["2x2", "int64"])
def test_an_onnx_translator_that_makes_other_images_is_refused_by_translate_and_serve_at_start(
        translator: Path, tmp_path: Path, make: str) -> None:
    folder = tmp_path / "export"
    assert invoke("export", translator, "--format", "onnx", "--out", folder).exit_code == 0
    _hostile_graph(folder / "generator.onnx", make, "images", ["batch", 1, 16, 16])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "digit.png").write_bytes(_digit_png())
    error = one_error(invoke("translate", folder, tmp_path / "in", "--out", tmp_path / "out"))
    assert "generator.onnx: its graph" in error and ("1x2x2" in error or "int64" in error), error
    assert not any((tmp_path / "out").rglob("*.png"))
    pytest.importorskip("fastapi")
    from ganforge.serve.translate_app import create_translation_app

    with pytest.raises(CheckpointError, match=r"generator.onnx: its graph"):
        create_translation_app(folder)


def test_an_onnx_graph_is_run_on_one_latent_before_a_batch(export: Path, tmp_path: Path) -> None:
    loaded = load_generator(_onnx_export(export, tmp_path, "2x2"))
    session, batches = loaded.generator.session, []
    run = session.run
    session.run = lambda names, feed: batches.append(len(feed["z"])) or run(names, feed)
    with pytest.raises(CheckpointError, match="makes images of 1x2x2"):
        loaded.generator(torch.randn(64, loaded.config.model.z_dim))
    assert batches == [1]


def test_a_translator_export_that_records_16384_squared_images_is_refused_before_loading(translator: Path,
                                                                                         tmp_path: Path) -> None:
    folder = tmp_path / "export"
    assert invoke("export", translator, "--out", folder).exit_code == 0
    error = _translate_with_a_16384_squared_record(folder, tmp_path)
    assert "config.json: dataset.shape says 3x16384x16384 images, more than the 16,777,216 pixels" in error, error
    assert not (tmp_path / "out").exists()


def test_a_run_whose_config_records_16384_squared_images_is_refused_before_loading(translator: Path,
                                                                                  tmp_path: Path) -> None:
    run = Path(shutil.copytree(translator, tmp_path / "run"))
    error = _translate_with_a_16384_squared_record(run, tmp_path)
    assert "records images of 3x16384x16384, more than the 16,777,216 pixels" in error, error


def _translate_with_a_16384_squared_record(folder: Path, tmp_path: Path) -> str:
    """The one error line of `translate` through `folder` once its config.json says 16384 x 16384 images."""
    meta = json.loads((folder / "config.json").read_text())
    meta["dataset"]["shape"], meta["train"]["model"]["input_shape"] = [3, 16384, 16384], [1, 16384, 16384]
    (folder / "config.json").write_text(json.dumps(meta))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "digit.png").write_bytes(_digit_png())
    return one_error(invoke("translate", folder, tmp_path / "in", "--out", tmp_path / "out"))


# --- readers of real images: bombs -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("memory-detector")
    rng = np.random.default_rng(0)
    real = make_store(root / "real.gfs", rng.integers(0, 128, (32, 1, 16, 16), dtype=np.uint8)).path
    fake = make_store(root / "fake.gfs", rng.integers(128, 256, (32, 1, 16, 16), dtype=np.uint8)).path
    result = invoke("detect", "train", "--real", real, "--fake", fake, "--out", root / "det", "--steps", "2",
                    "--batch", "8", "--size", "16", "--images-per-source", "16", "--tick-steps", "2", "--snap", "1")
    assert result.exit_code == 0, result.output
    return root / "det"


def _folder_with_a_bomb(tmp_path: Path) -> Path:
    folder = tmp_path / "real"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (16, 16), 40 * i).save(folder / f"{i}.png")
    (folder / "2.png").write_bytes(_grey_png(20000, 20000, header_only=True))  # only the header: 400 M px
    return folder


def test_detect_attack_with_a_bomb_among_the_real_images_is_one_line_naming_it(detector: Path, tmp_path: Path,
                                                                                 ) -> None:
    folder = _folder_with_a_bomb(tmp_path)
    error = one_error(invoke("detect", "attack", detector, "--real", folder, "--fake", detector.parent / "fake.gfs",
                             "--eps", "0", "--n", "4",
                             "--out", tmp_path / "attack"))
    assert str(folder / "2.png") in error and "decompression bomb" in error, error


def test_evaluate_real_with_a_bomb_among_the_images_is_one_line_naming_it(tmp_path: Path) -> None:
    from ganforge.errors import DataError
    from ganforge.metrics.sources import FolderSource

    folder = _folder_with_a_bomb(tmp_path)
    with pytest.raises(DataError, match=r"2.png: more than [\d,]+ pixels, refused as a decompression bomb"):
        list(FolderSource(folder).batches(8, 8))


def test_project_with_a_bomb_as_its_target_is_one_line_naming_it(noise: tuple[Path, Path, Path],
                                                                  tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(_grey_png(20000, 20000, header_only=True))
    error = one_error(invoke("project", noise[1], tmp_path / "bomb.png", "--steps", "1", "--starts", "1", "--out",
                             tmp_path / "p"))
    assert "bomb.png cannot be read as an image (decompression bomb)" in error, error


def test_a_folder_of_large_images_is_read_in_batches_of_bounded_pixels(tmp_path: Path) -> None:
    from ganforge.metrics.sources import MAX_BATCH_PIXELS, FolderSource

    for i in range(2):
        (tmp_path / f"{i}.png").write_bytes(_grey_png(6000, 6000))  # 36 M px each, 36 KB on disk
    sizes = [len(batch) for batch in FolderSource(tmp_path).batches(64, 2)]
    assert sizes == [1, 1] and 36_000_000 <= MAX_BATCH_PIXELS < 72_000_000


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak memory through Linux's /proc")
def test_detect_resizes_a_column_of_millions_of_pixels_without_a_giant_intermediate(tmp_path: Path) -> None:
    # Resized width first, 1 x 2,000,000 px to 16 x 16 was a [3, 2000000, 16] float intermediate: 384 MB (15 GB
    # and a minute for 1 x 5,000,000 px at 256). Measured in a fresh process, its peak reset after the imports.
    (tmp_path / "column.png").write_bytes(_grey_png(1, 2_000_000))
    script = ("import re, sys; from pathlib import Path; from ganforge.detect.score import read_image\n"
              "def kb(key): return int(re.search(key + r':\\s+(\\d+)', Path('/proc/self/status').read_text())[1])\n"
              "Path('/proc/self/clear_refs').write_text('5'); before = kb('VmRSS')\n"
              "image = read_image(Path(sys.argv[1]), 16)\n"
              "print(tuple(image.shape), (kb('VmHWM') - before) >> 10)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "column.png")], capture_output=True,
                          text=True, timeout=60, check=True)
    shape, grown_mb = done.stdout.split(")")
    assert shape == "(3, 16, 16" and int(grown_mb) < 150, done.stdout


# --- config.json as a link to /dev/zero ----------------------------------------------------------------------------

def test_a_detectors_config_json_linked_to_dev_zero_is_one_line(detector: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(detector, tmp_path / "det"))
    _to_dev_zero(copy / "config.json")
    Image.new("L", (16, 16), 9).save(tmp_path / "square.png")
    error = one_error(invoke("detect", copy, tmp_path / "square.png"))
    assert "config.json" in error and "not a regular file" in error, error


def _to_dev_zero(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to("/dev/zero")


def test_a_runs_log_linked_to_dev_zero_is_one_line_on_resume_and_on_export(noise: tuple[Path, Path, Path],
                                                                          tmp_path: Path) -> None:
    run = Path(shutil.copytree(noise[1], tmp_path / "run"))
    _to_dev_zero(run / "log.jsonl")
    error = one_error(invoke("train", "--resume", run, "--kimg", "0.05"))
    assert "log.jsonl: not a regular file (a character device); move it away" in error, error
    error = one_error(invoke("export", run, "--out", tmp_path / "export"))
    assert "log.jsonl: not a regular file (a character device); move it away" in error, error
    assert not (tmp_path / "export").exists()


def test_a_settings_file_linked_to_dev_zero_is_one_line(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _to_dev_zero(tmp_path / "settings.json")
    error = one_error(invoke("train", "--config", tmp_path / "settings.json", "--data", noise[0]))
    assert "--config" in error and "not a regular file (a character device)" in error, error


def test_prepare_refuses_a_first_image_no_run_could_train_on_and_takes_it_with_a_resolution(tmp_path: Path) -> None:
    # Without --resolution the first image sets every image's size: a 4100 x 4100 photo would make a store of
    # 50 MB per image. The refusal names it and the flag; with the flag the same folder prepares.
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a_huge.png").write_bytes(_grey_png(4100, 4100))
    Image.new("RGB", (64, 64), (200, 10, 10)).save(folder / "b_small.png")
    error = one_error(invoke("prepare", folder, "--out", tmp_path / "s.gfs"))
    assert "a_huge.png is 4100x4100 px" in error and "--resolution" in error
    assert not (tmp_path / "s.gfs").exists()
    result = invoke("prepare", folder, "--out", tmp_path / "s.gfs", "--resolution", "32")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.gfs").is_file()
