"""Reading outside what the user meant: a run whose config.json points train.data at a file that is no store (as
`../../../../etc/shadow`) gets one line naming the setting and the path from doctor, evaluate and resume, and no
message shows a byte of that file; a --config file that is no settings file is not quoted either. A string that a
local path could mean ("runs/00001-dcgan-mnsit", a typo) is a missing folder, never a Hub repo id to download,
and a Hub download fetches only a generator's files."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

import ganforge as gf
from cli_helpers import invoke, one_error
from ganforge.errors import ConfigError

# What a shadow file holds: a secret in its first 8 bytes (read as a store's header length they are a number that
# once appeared in an error) and further on.
SECRET = b"root:$6$saltsalt$SECRETHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"


def _assert_no_secret(text: str) -> None:
    header_length = str(struct.unpack("<Q", SECRET[:8])[0])
    for leaked in ("root:", "SECRETHASH", "saltsalt", "daemon", header_length, SECRET[:8].hex()):
        assert leaked not in text, text


def _run_reading(noise: tuple[Path, Path, Path], tmp_path: Path, data: str, keep_dataset: bool = True) -> Path:
    run = Path(shutil.copytree(noise[1], tmp_path / "run"))
    record = json.loads((run / "config.json").read_text())
    record["train"]["data"] = data
    if not keep_dataset:  # no recorded fingerprint or absolute path to find the real store by
        record["dataset"] = {k: v for k, v in record["dataset"].items() if k not in ("abs_path", "fingerprint")}
    (run / "config.json").write_text(json.dumps(record))
    return run


def test_a_run_whose_data_points_at_a_secret_names_the_setting_and_never_shows_its_bytes(
        noise: tuple[Path, Path, Path], tmp_path: Path) -> None:
    (tmp_path / "shadow").write_bytes(SECRET)
    relative = os.path.relpath(tmp_path / "shadow")  # ../../..-style, as a hostile config.json writes it
    run = _run_reading(noise, tmp_path, relative, keep_dataset=False)
    doctor = invoke("doctor", run)
    assert doctor.exit_code == 1 and "Traceback" not in doctor.output, doctor.output
    (problem,) = [line for line in doctor.output.splitlines() if line.startswith("PROBLEM")]
    assert f"train.data in {run / 'config.json'}: {relative} is not a readable ganforge store" in problem, problem
    evaluate = one_error(invoke("evaluate", run, "--n", "4", "--extractor", "random-conv"))
    assert f"train.data in {run / 'config.json'}: {relative}" in evaluate, evaluate
    resume = one_error(invoke("train", "--resume", run, "--kimg", "0.05", "--no-progress"))
    assert f"train.data in {run / 'config.json'}" in resume and relative in resume, resume
    generated = invoke("generate", run, "--n", "1", "--out", tmp_path / "g.png")  # needs no store
    assert generated.exit_code == 0, generated.output
    for output in (doctor.output, evaluate, resume):
        _assert_no_secret(output)


def test_a_resumed_run_whose_data_names_a_file_that_is_not_its_store_says_so_not_missing(
        noise: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shadow").write_bytes(SECRET)
    run = _run_reading(noise, tmp_path, str(tmp_path / "shadow"))
    (run / "config.json").write_text(json.dumps({**json.loads((run / "config.json").read_text()),
                                                 "dataset": {"fingerprint": "0" * 64}}))
    error = one_error(invoke("train", "--resume", run, "--kimg", "0.05", "--no-progress"))
    assert f"train.data in {run / 'config.json'} is {tmp_path / 'shadow'}, which is not the store" in error, error
    _assert_no_secret(error)


@pytest.mark.parametrize("name, content, says", [
    ("settings.yaml", b"root: $6$SECRETHASH: x\n", "cannot be read: not valid YAML (at line 1, column 20)"),
    ("settings.json", b"\xff" + SECRET, "is not UTF-8 text (byte 0 is not)")])
def test_a_config_file_that_is_no_settings_file_is_refused_without_quoting_it(tmp_path: Path, name: str,
                                                                              content: bytes, says: str) -> None:
    if name.endswith(".yaml"):
        pytest.importorskip("yaml", reason="YAML needs PyYAML (installed with ganforge[dev])")
    (tmp_path / name).write_bytes(content)
    result = invoke("train", "--config", tmp_path / name, "--dry-run")
    error = one_error(result)
    assert f"--config {tmp_path / name} {says}" in error, error
    _assert_no_secret(result.output)
    assert "0xff" not in result.output, result.output


def _no_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Replaces huggingface_hub's snapshot_download: calls are recorded and fail as a missing repo would, so no
    test touches the network; the list of calls is returned."""
    hub = pytest.importorskip("huggingface_hub", reason="the Hub extra (pip install 'ganforge[hub]') is not installed")
    calls: list[tuple[str, dict[str, Any]]] = []

    def snapshot_download(repo_id: str, **options: Any) -> str:
        calls.append((repo_id, options))
        raise OSError(f"{repo_id}: not on this test's Hub")

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    return calls


@pytest.mark.parametrize("typo", ["runs/00001-dcgan-mnsit", "./00001-dcgan-mnsit", "exports/digits",
                                  "someone/model.safetensors", "a/b/c", "~/runs", "/no/such/run"])
def test_a_string_a_local_path_could_mean_is_a_missing_folder_not_a_hub_download(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, typo: str) -> None:
    calls = _no_hub(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ConfigError, match="no such run or export folder"):
        gf.load_generator(typo)
    error = one_error(invoke("train", "--init", typo, "--dry-run"))
    assert f"--init {typo}: no such run or export folder" in error, error
    assert calls == []


def test_a_name_whose_first_part_is_a_local_folder_is_a_path(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    calls = _no_hub(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    with pytest.raises(ConfigError, match="experiments/run-7: no such run or export folder"):
        gf.load_generator("experiments/run-7")
    with pytest.raises(ConfigError, match="no such run or export folder"):
        gf.load_generator(Path("someone") / "digits")  # a Path is always a path
    assert calls == []


def test_a_hub_repo_id_fetches_only_a_generators_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _no_hub(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="someone/digits: no such folder here, and no Hub repo") as refused:
        gf.load_generator("someone/digits")
    assert "\n" not in str(refused.value)
    assert [(repo, options.get("local_files_only", False)) for repo, options in calls] == [
        ("someone/digits", True), ("someone/digits", False)]  # the cache first, then the network
    for _, options in calls:
        assert set(options["allow_patterns"]) == {"config.json", "model.safetensors", "generator.onnx",
                                                  "generator.safetensors", "discriminator.safetensors"}
    calls.clear()
    error = one_error(invoke("train", "--init", "someone/digits", "--dry-run"))
    assert "no Hub repo of that name in the local cache" in error, error
    assert [options.get("local_files_only") for _, options in calls] == [True]  # training never downloads


@pytest.mark.parametrize("field, value", [("precision", "x" * 1_000_000), ("tick_kimg", "9" * 500_000 + "x")])
def test_a_megabyte_value_in_a_settings_file_is_shown_cut_in_one_short_line(tmp_path: Path, field: str,
                                                                            value: str) -> None:
    (tmp_path / "settings.json").write_text(json.dumps({field: value}))
    error = one_error(invoke("train", "--config", tmp_path / "settings.json", "--dry-run"))
    assert len(error) < 400 and f"({len(repr(value)):,} characters)" in error, error[:400]


def test_a_hub_model_whose_generator_is_torchscript_is_refused_not_run(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub", reason="the Hub extra (pip install 'ganforge[hub]') is not installed")
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    snapshot = cache / "models--someone--digits" / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (cache / "models--someone--digits" / "refs").mkdir()
    (cache / "models--someone--digits" / "refs" / "main").write_text("0123456789abcdef")
    # A record that names the graph under a data format's file name too: the format, not the name, decides.
    (snapshot / "config.json").write_text(json.dumps({"ganforge_export": 1, "format": "torchscript",
                                                      "file": "model.safetensors"}))
    (snapshot / "model.safetensors").write_bytes(b"not loaded")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="someone/digits: its generator is a torchscript graph, which is code"):
        gf.load_generator("someone/digits")
