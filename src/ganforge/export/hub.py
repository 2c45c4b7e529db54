"""Hugging Face Hub conventions: the model folder `ganforge export` writes (model.safetensors, config.json, a
README.md model card with YAML front matter, samples.png), finding a model by path or repo id, and uploading.

Everything here works offline; only `push` and loading a repo id not yet in the local cache need the network,
and those need the optional `huggingface_hub` package (pip install "ganforge[hub]").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganforge.errors import ConfigError
from ganforge.runs.hub_source import HUB_EXTRA, REPO_ID, fetch_generator_files, hub_repo_id


def front_matter(fields: dict[str, Any]) -> str:
    """YAML front matter for a model card, every scalar JSON-quoted (a JSON string is a YAML string), so that
    no dataset name or metric label can break the YAML."""
    return "---\n" + "".join(_yaml(key, value, 0) for key, value in fields.items()) + "---\n"


def _yaml(key: str, value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        return f"{pad}{key}:\n" + "".join(_yaml(k, v, indent + 2) for k, v in value.items())
    if isinstance(value, list):
        lines = f"{pad}{key}:\n"
        for item in value:
            if isinstance(item, dict):
                first, *rest = item.items()
                lines += _yaml(first[0], first[1], indent + 2).replace(" " * (indent + 2), f"{pad}- ", 1)
                lines += "".join(_yaml(k, v, indent + 2) for k, v in rest)
            else:
                lines += f"{pad}- {json.dumps(item)}\n"
        return lines
    return f"{pad}{key}: {json.dumps(value)}\n"


def card_metadata(meta: dict[str, Any], scores: dict[str, tuple[float, str]]) -> dict[str, Any]:
    """The card's front matter: licence (the dataset's when its record names one), library, pipeline, tags and
    the metrics the run logged, each with its protocol, in the Hub's model-index form."""
    train, dataset = meta["train"], meta.get("dataset", {})
    fields: dict[str, Any] = {
        "license": str(dataset.get("license") or "other"),
        "library_name": "ganforge",
        "pipeline_tag": "unconditional-image-generation",
        "tags": ["ganforge", "gan", "image-generation", train["model"]["name"]]
                + (["class-conditional"] if train["model"].get("conditional") else []),
    }
    if scores:
        fields["model-index"] = [{
            "name": str(meta.get("name", train["model"]["name"])),
            "results": [{
                "task": {"type": "unconditional-image-generation"},
                "dataset": {"name": str(dataset.get("name", "?")), "type": str(dataset.get("name", "?"))},
                "metrics": [{"type": name, "value": value, "name": f"{name.upper()} ({protocol})"}
                            for name, (value, protocol) in scores.items()],
            }],
        }]
    return fields


def resolve_model_path(path: str | Path) -> Path:
    """A local folder as it is; otherwise a string that can only be a Hub repo id ("user/name", see
    runs/hub_source.py), from the local Hub cache first and then the network, through huggingface_hub."""
    local = Path(path)
    if local.exists():
        return local
    repo_id = hub_repo_id(path, str(path))
    return fetch_generator_files(repo_id, repo_id, network=True)


def hub_client(token: str | None = None) -> Any:
    """huggingface_hub's HfApi, or one line saying how to install it (checked before any export work)."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise ConfigError(f"ganforge push needs huggingface_hub: {HUB_EXTRA}") from exc
    return HfApi(token=token)


def push(client: Any, folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an exported model folder to the Hub repo `repo_id` (created if missing); the repo's URL."""
    try:
        client.create_repo(repo_id, private=private, exist_ok=True)
        client.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload a ganforge generator")
    except Exception as exc:
        if not _from_the_network(exc):
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"--repo {repo_id}: the upload to the Hugging Face Hub failed ({reason}); check the "
                          "network connection and your token (--token, $HF_TOKEN or `huggingface-cli login`), "
                          "then push again") from exc
    return f"https://huggingface.co/{repo_id}"


# The packages whose errors mean the Hub could not be reached or refused the request: huggingface_hub wraps its
# HTTP client's errors in some versions and lets them through in others (requests, then httpx), so errors are
# recognised by where they come from rather than by class.
_NETWORK_PACKAGES = frozenset({"huggingface_hub", "requests", "urllib3", "httpx", "httpx2", "httpcore", "h11"})


def _from_the_network(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(cls.__module__.split(".")[0] in _NETWORK_PACKAGES
                                           for cls in type(exc).__mro__)


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id):
        raise ConfigError(f"--repo {repo_id!r} is not a Hub repo id; write user/name")
    return repo_id
