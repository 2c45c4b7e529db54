"""The web app's API through FastAPI's test client: images by GET, every parameter checked, JSON errors."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.generate import SEED_MAX, render, seed_latents
from ganforge.runs import load_generator

from explore_helpers import invoke, invoke_error
from serve_helpers import free_port, local_client

try:
    from fastapi.testclient import TestClient  # noqa: F401  (local_client's; tells whether httpx2 is here)

    from ganforge.serve.app import is_loopback
except (ImportError, RuntimeError) as exc:  # starlette's TestClient raises RuntimeError without httpx2/httpx
    pytest.skip(f"needs the serve extra and httpx2 (pip install 'ganforge[serve]' httpx2): {exc}",
                allow_module_level=True)


@pytest.fixture(scope="module")
def client(tiny_run):
    return local_client(tiny_run)


@pytest.fixture(scope="module")
def conditional_client(tiny_conditional_run):
    return local_client(tiny_conditional_run)


def png(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_info_describes_the_generator_and_reports_no_classes_for_unconditional_runs(client, tiny_run):
    info = client.get("/api/info").json()
    assert info["name"] == tiny_run.name and info["z_dim"] == 100 and info["image_shape"] == [1, 28, 28]
    assert info["classes"] == [] and info["source"] == "run" and info["limits"]["seed_max"] == SEED_MAX
    assert str(tiny_run.parent) not in json.dumps(info)  # the folder's name only, never where it lives


def test_image_embeds_seed_and_psi_and_is_the_same_for_the_same_query(client):
    image = png(client.get("/api/image.png", params={"seed": 42, "psi": 0.7}))
    assert image.size == (28, 28) and image.text["seed"] == "42" and image.text["psi"] == "0.7"
    assert "Synthetic" in image.text["Description"]
    again = client.get("/api/image.png", params={"seed": 42, "psi": 0.7})
    assert again.content == client.get("/api/image.png?seed=42&psi=0.7").content
    assert png(client.get("/api/image.png?seed=43&psi=0.7")).tobytes() != image.tobytes()
    assert "max-age" in again.headers["cache-control"]


def test_exported_latent_text_imports_back_to_the_same_image(client):
    latent = client.get("/api/latent", params={"seed": 7}).json()
    assert latent["z_dim"] == 100 and len(latent["z"].split(",")) == 100
    by_seed = png(client.get("/api/image.png", params={"seed": 7, "psi": 0.9}))
    by_latent = png(client.get("/api/image.png", params={"z": latent["z"], "psi": 0.9}))
    assert by_seed.tobytes() == by_latent.tobytes() and by_latent.text["latent"] == "imported"


def test_interpolation_starts_at_seed_and_strip_has_one_cell_per_frame(client):
    start = png(client.get("/api/image.png", params={"seed": 1, "seed_b": 2, "t": 0}))
    assert start.tobytes() == png(client.get("/api/image.png?seed=1")).tobytes()
    middle = png(client.get("/api/image.png", params={"seed": 1, "seed_b": 2, "t": 0.5, "method": "lerp"}))
    assert middle.text["t"] == "0.5" and middle.text["method"] == "lerp"
    strip = png(client.get("/api/strip.png", params={"seed": 1, "seed_b": 2, "frames": 5}))
    assert strip.size == (5 * 30 + 2, 32)


def test_grid_and_scale_give_the_documented_sizes(client):
    assert png(client.get("/api/grid.png", params={"seed": SEED_MAX, "n": 4})).size == (62, 62)  # seeds wrap
    assert png(client.get("/api/image.png", params={"seed": 3, "scale": 8})).size == (224, 224)


@pytest.mark.parametrize("url, param", [
    ("/api/image.png?seed=-1", "seed"),
    (f"/api/image.png?seed={SEED_MAX + 1}", "seed"),
    ("/api/image.png?seed=abc", "seed"),
    ("/api/image.png?seed=1&psi=2.5", "psi"),
    ("/api/image.png?seed=1&psi=nan", "psi"),
    ("/api/image.png", "seed"),
    ("/api/image.png?seed=1&z=0.5", "seed"),
    ("/api/image.png?z=1,2,3", "z"),
    ("/api/image.png?z=" + ",".join(["1e9"] * 100), "z"),
    ("/api/image.png?seed=1&seed_b=2&t=1.5", "t"),
    ("/api/image.png?seed=1&method=cubic", "method"),
    ("/api/image.png?seed=1&sed=2", "sed"),
    ("/api/image.png?seed=1&seed=2", "seed"),
    ("/api/image.png?seed=1&scale=17", "scale"),
    ("/api/strip.png?seed=1&seed_b=2&frames=17", "frames"),
    ("/api/strip.png?seed=1&seed_b=2&frames=1", "frames"),
    ("/api/grid.png?n=65", "n"),
    ("/api/grid.png?n=64&scale=16", "scale"),
    ("/api/latent?seed=1&psi=1", "psi"),
    ("/api/image.png?seed=1&t=0.7", "t"),  # t and method are for a point between two seeds
    ("/api/image.png?seed=1&method=lerp", "method"),
])
def test_bad_parameters_get_a_400_naming_the_parameter(client, url, param):
    response = client.get(url)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["param"] == param and param in body["error"]


def test_run_page_files_are_fixed_names_never_client_paths(client):
    assert png(client.get("/api/run/samples.png")).size[0] > 28
    assert png(client.get("/api/run/loss.png")).size == (640, 360)
    for url in ("/api/run/config.png", "/api/run/..%2Fconfig.json", "/api/run/../../etc/passwd",
                "/static/..%2F..%2Fgenerate.py"):
        response = client.get(url)
        assert response.status_code == 404 and "error" in response.json(), url
    status = client.get("/api/run/status").json()
    assert status["run"] and status["latest"]["tick"] == 2 and status["files"]["samples"] is not None


def test_pages_are_served_with_the_synthetic_image_label(client):
    page = client.get("/")
    assert page.status_code == 200 and "SYNTHETIC IMAGE" in page.text
    assert client.get("/run").status_code == 200 and client.get("/static/generator.js").status_code == 200


def test_an_exported_folder_serves_without_a_run_page(tiny_run, tmp_path):
    invoke("export", tiny_run, "--out", tmp_path / "e")
    exported = local_client(tmp_path / "e")
    assert exported.get("/api/info").json()["source"] == "export"
    assert exported.get("/api/run/status").json() == {"run": False}
    assert exported.get("/api/run/samples.png").status_code == 404
    assert png(exported.get("/api/image.png?seed=5")).size == (28, 28)


def test_only_loopback_counts_as_private():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_serve_command_rejects_bad_ports_and_missing_runs(tiny_run, tmp_path):
    assert "--port 70000 is not a TCP port" in invoke_error("serve", tiny_run, "--port", "70000")
    assert "no such run folder" in invoke_error("serve", tmp_path / "none")


def test_serve_binds_loopback_by_default_and_warns_before_binding_elsewhere(tiny_run, monkeypatch):
    import uvicorn

    calls = []

    def record(server, sockets):  # instead of serving: the address of the socket the command bound
        calls.append(sockets[0].getsockname())
        sockets[0].close()

    monkeypatch.setattr(uvicorn.Server, "run", record)
    ports = free_port(), free_port()
    assert "warning" not in invoke("serve", tiny_run, "--port", str(ports[0]))
    output = invoke("serve", tiny_run, "--host", "0.0.0.0", "--port", str(ports[1]))
    assert "warning: --host 0.0.0.0 makes this server reachable from other machines" in output
    assert calls == [("127.0.0.1", ports[0]), ("0.0.0.0", ports[1])]


def test_info_lists_the_class_names_of_a_conditional_run(conditional_client):
    assert conditional_client.get("/api/info").json()["classes"] == [str(digit) for digit in range(10)]


def test_conditional_image_is_drawn_in_the_requested_class(conditional_client, tiny_conditional_run):
    seven = png(conditional_client.get("/api/image.png", params={"seed": 5, "class": "7"}))
    assert seven.text["class"] == "7" and seven.text["seed"] == "5"
    generator, config, _ = load_generator(tiny_conditional_run)
    latents = seed_latents([5, 5], config.model.z_dim)
    expected = render(generator, latents, labels=torch.tensor([7, 3]))[:, 0].numpy()
    assert np.array_equal(np.asarray(seven), expected[0])
    three = png(conditional_client.get("/api/image.png", params={"seed": 5, "class": "3"}))
    assert np.array_equal(np.asarray(three), expected[1]) and not np.array_equal(expected[0], expected[1])


def test_conditional_interpolation_strip_and_grid_keep_the_class(conditional_client):
    start = png(conditional_client.get("/api/image.png", params={"seed": 1, "class": "4"}))
    strip = png(conditional_client.get("/api/strip.png", params={"seed": 1, "seed_b": 2, "frames": 3, "class": "4"}))
    assert strip.text["class"] == "4" and np.array_equal(np.asarray(strip)[2:30, 2:30], np.asarray(start))
    between = png(conditional_client.get("/api/image.png", params={"seed": 1, "seed_b": 2, "t": 0, "class": "4"}))
    assert between.tobytes() == start.tobytes()
    assert png(conditional_client.get("/api/grid.png", params={"n": 4, "class": "9"})).text["class"] == "9"


@pytest.mark.parametrize("url, message", [
    ("/api/image.png?seed=1", "class is required; choose one of: 0, 1, 2"),
    ("/api/image.png?seed=1&class=cat", "class 'cat' is not one of this generator's classes"),
    ("/api/image.png?seed=1&class=10", "choose one of: 0, 1, 2"),
    ("/api/strip.png?seed=1&seed_b=2&class=", "not one of"),
    ("/api/grid.png?n=4", "class is required"),
    ("/api/image.png?seed=1&class=1&class=2", "more than once"),
])
def test_a_missing_or_unknown_class_gets_a_400_naming_it(conditional_client, url, message):
    response = conditional_client.get(url)
    assert response.status_code == 400, response.text
    assert response.json()["param"] == "class" and message in response.json()["error"]


def test_an_unconditional_generator_refuses_a_class(client):
    response = client.get("/api/image.png?seed=1&class=3")
    assert response.status_code == 400 and response.json()["param"] == "class"
    assert "unconditional" in response.json()["error"]


def test_a_conditional_safetensors_export_serves_its_classes(tiny_conditional_run, tmp_path):
    invoke("export", tiny_conditional_run, "--out", tmp_path / "e")
    exported = local_client(tmp_path / "e")
    assert exported.get("/api/info").json()["classes"] == [str(digit) for digit in range(10)]
    assert png(exported.get("/api/image.png?seed=5&class=2")).size == (28, 28)


def test_a_run_image_replaced_while_it_is_served_arrives_whole(tiny_run, tmp_path):
    # Training replaces samples/latest.png by rename; a response must be one whole file, old or new (a length
    # taken from one file and bytes from the next broke responses off mid-image).
    import http.client
    import shutil
    import threading
    import urllib.parse

    from serve_helpers import running_server

    run = shutil.copytree(tiny_run, tmp_path / "run")
    latest = run / "samples" / "latest.png"
    versions = [latest.read_bytes(), (run / "loss.png").read_bytes()]
    stop = threading.Event()

    def keep_replacing() -> None:
        turn = 0
        while not stop.is_set():
            staged = latest.with_name(f".staged-{turn % 2}")
            staged.write_bytes(versions[turn % 2])
            staged.replace(latest)
            turn += 1

    replacer = threading.Thread(target=keep_replacing)
    with running_server(run) as url:
        address = urllib.parse.urlsplit(url)
        replacer.start()
        try:
            bodies, failures = [], []
            for _ in range(200):
                connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
                try:
                    connection.request("GET", "/api/run/samples.png")
                    bodies.append(connection.getresponse().read())
                except (http.client.HTTPException, OSError) as error:
                    failures.append(type(error).__name__)
                finally:
                    connection.close()
        finally:
            stop.set()
            replacer.join()
    assert not failures and all(body in versions for body in bodies), (failures, len(bodies))
