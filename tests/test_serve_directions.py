"""Sliders in `ganforge serve --directions DIR`: /api/info lists the directions, /api/image.png?edit= draws the
edit `generate --edit` draws, every edit parameter is checked (400 naming it), and directions that do not fit the
generator are refused at start in one line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.explore.direction_search import find_directions
from ganforge.explore.directions import Directions, edited_images, load_directions
from ganforge.generate import seed_latents
from ganforge.runs import load_generator

from serve_helpers import LOCAL_BASE_URL

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'ganforge[serve]'")


@pytest.fixture(scope="module")
def directions(tiny_ema_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    generator, config, _ = load_generator(tiny_ema_run)
    folder = tmp_path_factory.mktemp("serve-directions") / "dirs"
    find_directions(generator, config, "sefa", 12).save(folder)
    return folder


@pytest.fixture(scope="module")
def client(tiny_ema_run: Path, directions: Path):
    from fastapi.testclient import TestClient

    from ganforge.serve.app import create_app

    return TestClient(create_app(tiny_ema_run, directions=directions), base_url=LOCAL_BASE_URL)


def _pixels(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_info_lists_the_directions_and_the_page_gets_ten_sliders(client) -> None:
    info = client.get("/api/info").json()
    assert info["directions"] == {"method": "sefa", "space": "z", "count": 12, "sliders": 10, "score": "",
                                  "layers": None}


def test_an_edit_draws_what_generate_edit_draws(client, tiny_ema_run: Path, directions: Path) -> None:
    generator, config, _ = load_generator(tiny_ema_run)
    z = seed_latents([5], config.model.z_dim)
    expected = edited_images(generator, z, [(load_directions(directions), {0: 2.5, 3: -1.0})])
    edited = _pixels(client.get("/api/image.png?seed=5&edit=0:2.5,3:-1"))
    plain = _pixels(client.get("/api/image.png?seed=5"))
    assert np.array_equal(edited, expected[0, 0].numpy()) and not np.array_equal(edited, plain)
    assert np.array_equal(_pixels(client.get("/api/image.png?seed=5&edit=0:0")), plain)  # zero moves nothing


@pytest.mark.parametrize("edit, problem", [
    ("12:1", "not one of 0-11"), ("0:1,0:2", "each once"), ("0:nan", "finite"), ("0:11", "within +-10"),
    ("x:1", "cannot read"), ("0", "cannot read"), (",".join(f"{i % 12}:1" for i in range(21)), "at most 20"),
])
def test_a_bad_edit_is_a_400_naming_it(client, edit: str, problem: str) -> None:
    response = client.get("/api/image.png", params={"seed": 1, "edit": edit})
    assert response.status_code == 400 and response.json()["param"] == "edit" and problem in response.json()["error"]


def test_an_edit_with_an_interpolation_or_without_directions_is_refused(client, tiny_ema_run: Path) -> None:
    response = client.get("/api/image.png?seed=1&seed_b=2&edit=0:1")
    assert response.status_code == 400 and "drop seed_b" in response.json()["error"]
    from fastapi.testclient import TestClient

    from ganforge.serve.app import create_app

    plain = TestClient(create_app(tiny_ema_run), base_url=LOCAL_BASE_URL)
    assert plain.get("/api/info").json()["directions"] is None
    response = plain.get("/api/image.png?seed=1&edit=0:1")
    assert response.status_code == 400 and "--directions" in response.json()["error"]


def test_directions_of_another_generator_are_refused_at_start(tiny_ema_run: Path, tmp_path: Path) -> None:
    from ganforge.serve.app import create_app

    other = Directions("sefa", "z", torch.eye(3, 7), torch.ones(3), [1.0, 1.0, 1.0])
    other.save(tmp_path / "other")
    with pytest.raises(ConfigError, match="were found for another generator"):
        create_app(tiny_ema_run, directions=tmp_path / "other")
    from ganforge.models import build_networks

    style = build_networks(ModelConfig(name="stylegan2", z_dim=100, fmap_base=128, fmap_max=16), (1, 8, 8)).generator
    in_w = find_directions(style.eval(), _config("stylegan2"), "sefa", 2)
    in_w.save(tmp_path / "w")
    with pytest.raises(ConfigError, match="are in W, for a style-based generator"):
        create_app(tiny_ema_run, directions=tmp_path / "w")


def _config(name: str):
    from ganforge.config import TrainConfig

    return TrainConfig(model=ModelConfig(name=name, z_dim=100, fmap_base=128, fmap_max=16))
