"""Inputs that once ended in a traceback now end in one line naming the file or flag and what to do: doctor on an
export without nimg or with a bad "translator", on a log row whose kimg is text; evaluate --metrics pr --n 3;
G.sample(batch=0), load_generator(device="tpu"), gf.train(123); and `train --resume EXP`, which must refuse an
export folder instead of starting a fresh run inside it. Also: `ganforge push` with no network, evaluate on a folder
holding a file name that is not UTF-8 (or holds a newline; also in doctor and translate), and a client that leaves
mid-upload to `serve`."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

import ganforge as gf
from cli_helpers import invoke, one_error, tiny_pix2pix_run
from ganforge.errors import CheckpointError, ConfigError


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _edit(config: Path, **changes: object) -> None:
    record = json.loads(config.read_text())
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    config.write_text(json.dumps(record))


@pytest.fixture(scope="module")
def translator_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tracebacks-pix2pix")
    result = invoke("export", tiny_pix2pix_run(root), "--out", root / "export")
    assert result.exit_code == 0, result.output
    return root / "export"


def test_doctor_on_an_export_without_nimg_reports_it_at_zero(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    export = Path(shutil.copytree(noise[2], tmp_path / "export"))
    _edit(export / "config.json", nimg=None)
    result = invoke("doctor", export)
    assert result.exit_code == 0 and "0 kimg" in result.output and "Traceback" not in result.output, result.output


def test_doctor_on_a_translator_export_whose_translator_is_not_a_record(translator_export: Path,
                                                                         tmp_path: Path) -> None:
    export = Path(shutil.copytree(translator_export, tmp_path / "export"))
    _edit(export / "config.json", translator="x")
    result = invoke("doctor", export)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "lists no directions" in result.output, result.output


def test_doctor_on_a_log_row_whose_kimg_is_text(noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    run = Path(shutil.copytree(noise[1], tmp_path / "run"))
    with open(run / "log.jsonl", "a") as log:
        log.write(json.dumps({"tick": 99, "kimg": "abc"}) + "\n")
    result = invoke("doctor", run)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "kimg 'abc', not a number" in result.output, result.output


def test_evaluate_pr_on_three_images_is_refused_before_any_work(noise: tuple[Path, Path, Path]) -> None:
    error = one_error(invoke("evaluate", noise[1], "--metrics", "pr", "--n", "3", "--extractor", "random-conv"))
    assert "--n above 3" in error, error


def test_python_api_mistakes_are_config_errors(noise: tuple[Path, Path, Path]) -> None:
    generator = gf.load_generator(noise[1])
    with pytest.raises(ConfigError, match="batch"):
        generator.sample(2, batch=0)
    with pytest.raises(ConfigError, match="'tpu' is not a device"):
        gf.load_generator(noise[1], device="tpu")
    with pytest.raises(ConfigError, match="takes a TrainConfig, got int"):
        gf.train(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("device, problem", [("bogus", "'bogus' is not a device"), ("mps", "no Apple GPU"),
                                             ("meta", "'meta' is not a device ganforge runs on"),
                                             ("cuda:0", "no CUDA GPU is visible")])
def test_a_device_generate_cannot_use_is_one_line_naming_it(noise: tuple[Path, Path, Path], tmp_path: Path,
                                                            device: str, problem: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available() or device == "mps" and torch.backends.mps.is_available():
        pytest.skip(f"{device} is usable on this machine")
    for source in noise[1:]:  # a run and an export
        error = one_error(invoke("generate", source, "--seeds", "0-1", "--out", tmp_path / "g.png", "--device", device))
        assert f"--device {device}" in error.replace("'", "") and problem in error, error
    assert not (tmp_path / "g.png").exists()


def test_resuming_an_export_folder_is_refused_and_writes_nothing_there(noise: tuple[Path, Path, Path]) -> None:
    export = noise[2]
    before = _files(export)
    error = one_error(invoke("train", "--resume", export, "--no-progress"))
    assert "is an exported folder" in error and "pass the run folder" in error, error
    with pytest.raises(CheckpointError, match="is an exported folder"):
        gf.train(resume=export, progress=False)
    assert _files(export) == before and not (export / ".lock").exists()


def _connection_error() -> Exception:
    """What huggingface_hub raises with no network: its HTTP client's connection error, uncaught (httpx2's or
    httpx's in huggingface_hub 1.x and later, requests' before)."""
    for module, name in (("httpx2", "ConnectError"), ("httpx", "ConnectError"), ("requests", "ConnectionError")):
        try:
            error_class = getattr(importlib.import_module(module), name)
        except ImportError:
            continue
        return error_class("[Errno -3] Temporary failure in name resolution")
    pytest.skip("no HTTP client of huggingface_hub is installed")


@pytest.mark.parametrize("failing", ["create_repo", "upload_folder"])
def test_push_without_a_network_is_one_line_naming_the_repo(noise: tuple[Path, Path, Path],
                                                            monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    hub = pytest.importorskip("huggingface_hub", reason="the Hub extra (pip install 'ganforge[hub]') is not installed")
    error = _connection_error()

    def unreachable(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(hub.HfApi, "create_repo", lambda *args, **kwargs: None)
    monkeypatch.setattr(hub.HfApi, "upload_folder", lambda *args, **kwargs: None)
    monkeypatch.setattr(hub.HfApi, failing, unreachable)
    line = one_error(invoke("push", noise[2], "--repo", "someone/digits", "--token", "hf_test"))
    assert "--repo someone/digits: the upload to the Hugging Face Hub failed" in line, line
    assert "Temporary failure in name resolution" in line and "check the network connection" in line, line


def _image_folder(folder: Path, names: list[bytes]) -> Path:
    """PNGs under `folder` with the given raw (bytes) names, which need not be UTF-8."""
    folder.mkdir()
    for i, name in enumerate(names):
        Image.new("L", (16, 16), i * 40).save(os.path.join(os.fsencode(folder), name), "PNG")
    return folder


def test_evaluate_real_holding_a_file_name_that_is_not_utf8_scores_it(tmp_path: Path) -> None:
    real = _image_folder(tmp_path / "real", [b"a.png", b"bad\xff.png", b"c.png", b"d.png"])
    result = invoke("evaluate", "--real", real, "--fake", real, "--n", "4", "--extractor", "random-conv")
    assert result.exit_code == 0 and "fid" in result.output and "Traceback" not in result.output, result.output


def test_an_unreadable_image_with_an_undecodable_newline_name_is_one_escaped_line(tmp_path: Path) -> None:
    real = _image_folder(tmp_path / "real", [b"a.png", b"c.png"])
    (Path(os.fsdecode(os.fsencode(real) + b"/worse\xfe\nname.png"))).write_bytes(b"not an image")
    line = one_error(invoke("evaluate", "--real", real, "--fake", real, "--n", "3", "--extractor", "random-conv"))
    assert "worse\\xfe\\nname.png: not a readable image" in line and "remove it" in line, line


def test_a_client_leaving_mid_upload_is_no_server_error(translator_export: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("uvicorn", reason="needs the serve extra (pip install 'ganforge[serve]')")
    from serve_helpers import running_server

    with running_server(translator_export) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            client.sendall(b"POST /api/translate.png HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 100000\r\n"
                           b"\r\n" + b"\x89PNG\r\n\x1a\n" * 64)  # a tenth of the body, then the client is gone
        time.sleep(0.5)
        with urllib.request.urlopen(url + "/api/info", timeout=10) as answer:  # and the server still answers
            assert answer.status == 200
    log = capfd.readouterr().err
    assert "Exception in ASGI application" not in log and "ClientDisconnect" not in log, log


def test_doctor_shows_a_store_name_with_a_newline_and_undecodable_bytes_as_one_escaped_line(tmp_path: Path) -> None:
    store = Path(os.fsdecode(os.fsencode(tmp_path) + b"/fake\n\xffok.gfs"))
    store.write_bytes(b"no store")
    result = invoke("doctor", store)
    lines = [line for line in result.output.splitlines() if line.startswith("PROBLEM")]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "fake\\n\\xffok.gfs is not a readable ganforge store" in lines[0], lines
    assert not any(line.startswith("\xff") or line.startswith("ok.gfs") for line in result.output.splitlines())


def test_translate_lists_an_input_whose_name_holds_a_newline_on_one_escaped_line(translator_export: Path,
                                                                                tmp_path: Path) -> None:
    inputs = _image_folder(tmp_path / "inputs", [b"ok.png"])
    (inputs / "fake\nskipped other.png").write_bytes(b"not an image")
    result = invoke("translate", translator_export, inputs, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "skipped fake\\nskipped other.png: not an image" in result.output.splitlines(), result.output


@pytest.mark.parametrize("names", [7, "0123456789", {"a": 1}, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
def test_label_names_that_are_not_names_fall_back_to_class_indices(tiny_conditional_run: Path, tmp_path: Path,
                                                                   names: object) -> None:
    run = Path(shutil.copytree(tiny_conditional_run, tmp_path / "run"))
    record = json.loads((run / "config.json").read_text())
    record["dataset"]["label_names"] = names
    (run / "config.json").write_text(json.dumps(record))
    result = invoke("generate", run, "--seeds", "0-1", "--class", "3", "--out", tmp_path / "three.png")
    assert result.exit_code == 0, result.output
    result = invoke("generate", run, "--seeds", "0-1", "--out", tmp_path / "each")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["seed0000-0.png", "seed0001-1.png"]


@pytest.mark.parametrize("flags, problem", [
    (["--seeds", "0-19999", "--out", "g.png"], "20000 seeds in each of 10 classes are 200000 images, more than"),
    (["--grid", "2x2", "--out", "g.png"], "--grid and --columns lay out one class"),
    (["--seeds", "0-3", "--columns", "2", "--out", "g.png"], "--grid and --columns lay out one class"),
    (["--seeds", "0-3", "--out", "g.jpg"], "--out g.jpg: generate writes PNG"),
    (["--seeds", "", "--out", "g.png"], "--seeds is empty"),
])
def test_generate_flags_a_conditional_grid_cannot_honour_are_refused(tiny_conditional_run: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     flags: list[str], problem: str) -> None:
    monkeypatch.chdir(tmp_path)
    error = one_error(invoke("generate", tiny_conditional_run, *flags))
    assert problem in error, error
    assert list(tmp_path.iterdir()) == []
