"""A model named by a string (`gf.load_generator`, `train --init`): a local folder, or a Hugging Face Hub repo id.

"owner/name" is also the shape of a relative path, so a typo of a local folder ("runs/00001-dcgan-mnsit")
matches the repo-id pattern; taken to the Hub, it would download somebody's repo. A string is a repo id only
when no local path of that shape could be meant, and a download fetches only the files a generator is read from,
never a whole snapshot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError
from ganforge.regular_files import read_json
from ganforge.runs.exported import DISCRIMINATOR_FILE, FORMATS
from ganforge.runs.folder import CONFIG_FILE

HUB_EXTRA = "pip install 'ganforge[hub]'"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
# What loading an export reads: its record and its weights under the data formats' names (exports before ganforge
# 0.2 named the safetensors file generator.safetensors), and the discriminator `--init` fine-tunes from. Never a
# TorchScript graph: it is code that runs when loaded, and a repo id names somebody else's files.
CODE_FORMATS = frozenset({"torchscript"})
GENERATOR_FILES = (CONFIG_FILE, *(name for fmt, name in FORMATS.items() if fmt not in CODE_FORMATS),
                   "generator.safetensors", DISCRIMINATOR_FILE)
# Names that end like a file are paths: no ganforge model on the Hub is named like its own files.
_FILE_SUFFIXES = (".json", ".safetensors", ".onnx", ".pt", ".pth", ".pkl", ".ckpt", ".bin", ".gfs", ".npz",
                  ".zip", ".tar", ".gz", ".png", ".jpg", ".jpeg")
_PATH_STARTS = (".", "/", "~", "runs/", "exports/")


def hub_repo_id(given: str | Path, named: str) -> str:
    """`given` (which names no existing path) as a Hub repo id. A string that a local path could mean, and any
    Path, is a missing folder instead: ConfigError "no such run or export folder", with `named` (the flag and
    value, as the message should show them) first."""
    text = str(given)
    if isinstance(given, Path) or _could_be_local(text):
        raise ConfigError(f"{named}: no such run or export folder; check the path (a Hub model is named "
                          "owner/name)")
    if not REPO_ID.match(text):
        raise ConfigError(f"{named}: no such run or export folder, and not a Hub repo id (owner/name)")
    return text


def _could_be_local(text: str) -> bool:
    first = text.split("/", 1)[0]
    return ("\\" in text or text.count("/") != 1 or text.startswith(_PATH_STARTS)
            or text.lower().endswith(_FILE_SUFFIXES) or Path(first).is_dir())


def fetch_generator_files(repo_id: str, named: str, *, network: bool) -> Path:
    """The local folder of Hub repo `repo_id`'s generator files: from the local cache, else (when `network`)
    downloaded, only GENERATOR_FILES. ConfigError, starting with `named`, when neither has it."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ConfigError(f"{named}: no such run, export or model folder here; to load it as a Hugging Face Hub "
                          f"repo id: {HUB_EXTRA}") from exc
    try:
        return _data_only(_download(snapshot_download, repo_id, local_files_only=True), named)
    except _NotFetched as exc:
        if not network:
            raise ConfigError(f"{named}: no such folder, and no Hub repo of that name in the local cache; "
                              f"download it first (`huggingface-cli download {repo_id}`) or pass its folder") from exc
    try:
        return _data_only(_download(snapshot_download, repo_id, local_files_only=False), named)
    except _NotFetched as exc:
        raise ConfigError(f"{named}: no such folder here, and no Hub repo of that name in the local cache or "
                          f"reachable online ({type(exc.__cause__).__name__}); check the name and the network") from exc


class _NotFetched(Exception):
    """The Hub library could not give the files (its own error types differ between its versions)."""


def _download(snapshot_download: Any, repo_id: str, *, local_files_only: bool) -> Path:
    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(GENERATOR_FILES), local_files_only=local_files_only))
    except Exception as exc:
        raise _NotFetched() from exc


def _data_only(folder: Path, named: str) -> Path:
    """`folder`, unless its record says its generator is code (TorchScript): ConfigError then. A record that cannot
    be read is left to the loader, which reports it."""
    try:
        record = read_json(folder / CONFIG_FILE)
    except (OSError, ValueError):
        return folder
    if isinstance(record, dict) and record.get("format") in CODE_FORMATS:
        raise ConfigError(f"{named}: its generator is a {record['format']} graph, which is code that runs when "
                          "loaded; ganforge loads Hub models only as safetensors or ONNX. If you trust its author, "
                          f"download it (`huggingface-cli download {named}`) and pass the folder")
    return folder
