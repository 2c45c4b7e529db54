"""`ganforge serve` on an image-to-image run: upload an image, get its translation; every bad request is a 4xx
that names the parameter or the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.data.store import to_float, to_uint8
from ganforge.runs import load_translator

from data_slices import digit_pairs_store, digits_fashion_store
from run_helpers import only_run
from serve_helpers import LOCAL_BASE_URL, local_client

try:
    from fastapi.testclient import TestClient

    from ganforge.serve.translate_app import create_translation_app
except (ImportError, RuntimeError) as exc:  # starlette's TestClient raises RuntimeError without httpx2/httpx
    pytest.skip(f"needs the serve extra and httpx2 (pip install 'ganforge[serve]' httpx2): {exc}",
                allow_module_level=True)

TINY = ["--g-width", "4", "--d-width", "4", "--batch", "4", "--kimg", "0.016", "--tick-kimg", "0.016", "--seed", "8",
        "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-translation")
    made = {}
    for model, store in (("pix2pix", digit_pairs_store(root)), ("cyclegan", digits_fashion_store(root))):
        result = CliRunner().invoke(main, ["train", "--data", str(store), "--out", str(root / model), "--model",
                                           model, *TINY])
        assert result.exit_code == 0, result.output
        made[model] = only_run(root / model)
    return made


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_an_uploaded_image_comes_back_translated(runs) -> None:
    client = local_client(runs["pix2pix"])
    assert "translate.js" in client.get("/").text
    info = client.get("/api/info").json()
    assert info["directions"] == {"a2b": {"input_shape": [1, 16, 16], "output_shape": [3, 16, 16]}}
    digit = np.zeros((16, 16), np.uint8)
    digit[4:12, 7:9] = 255
    response = client.post("/api/translate.png?scale=2", content=_png(Image.fromarray(digit)))
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    served = Image.open(io.BytesIO(response.content))
    assert served.size == (32, 32) and served.mode == "RGB"
    with torch.no_grad():
        expected = to_uint8(load_translator(runs["pix2pix"]).translator(to_float(torch.from_numpy(digit[None, None]))))
    assert np.array_equal(np.asarray(served)[::2, ::2].transpose(2, 0, 1), expected[0].numpy())


def test_cyclegan_serves_both_directions(runs) -> None:
    client = local_client(runs["cyclegan"])
    assert set(client.get("/api/info").json()["directions"]) == {"a2b", "b2a"}
    photo = _png(Image.new("RGB", (40, 30), (200, 10, 10)))  # another size and colour mode: fitted like prepare
    for direction in ("a2b", "b2a"):
        response = client.post(f"/api/translate.png?direction={direction}&crop=pad", content=photo)
        assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (16, 16)


@pytest.mark.parametrize("query, body, status, param, message", [
    ("", b"just some text", 400, "file", "file: not an image"),
    ("", b"\x89PNG\r\n\x1a\n\x00\x00 truncated", 400, "file", "corrupt or truncated"),
    ("", b"", 400, "file", "the upload is empty"),
    ("?direction=b2a", None, 400, "direction", "translates a2b only"),
    ("?direction=sideways", None, 400, "direction", "direction"),
    ("?scale=0", None, 400, "scale", "scale"),
    ("?scale=9", None, 400, "scale", "scale"),
    ("?crop=zoom", None, 400, "crop", "crop"),
    ("?sclae=2", None, 400, "sclae", "unknown parameter 'sclae'"),
    ("?scale=2&scale=3", None, 400, "scale", "given more than once"),
])
def test_bad_requests_get_a_4xx_naming_what_is_wrong(runs, query: str, body: bytes | None, status: int, param: str,
                                                      message: str) -> None:
    content = body if body is not None else _png(Image.new("L", (16, 16), 0))
    response = local_client(runs["pix2pix"]).post(f"/api/translate.png{query}", content=content)
    assert response.status_code == status and response.json()["param"] == param
    assert message in response.json()["error"]


def test_uploads_over_the_limit_are_refused_before_and_while_reading(runs) -> None:
    client = TestClient(create_translation_app(runs["pix2pix"], max_upload_bytes=1 << 20), base_url=LOCAL_BASE_URL)
    response = client.post("/api/translate.png", content=b"\0" * ((1 << 20) + 1))
    assert response.status_code == 413 and "1 MB upload limit" in response.json()["error"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for _ in range(20):
            yield b"\0" * (1 << 16)

    response = client.post("/api/translate.png", content=chunks())
    assert response.status_code == 413 and response.json()["param"] == "file"
    small = TestClient(create_translation_app(runs["pix2pix"], max_upload_bytes=64 << 10), base_url=LOCAL_BASE_URL)
    response = small.post("/api/translate.png", content=b"\0" * (65 << 10))
    assert "0.0625 MB upload limit" in response.json()["error"]  # not "the 0 MB upload limit"
    stranger = TestClient(create_translation_app(runs["pix2pix"]))  # Host: testserver, not the bound address
    assert stranger.get("/api/info").status_code == 400
