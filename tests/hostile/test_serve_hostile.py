"""Hostile cases for `ganforge serve`: run folders whose files link elsewhere, and requests naming a foreign Host."""

import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from serve_helpers import free_port, local_client, running_server

try:
    from fastapi.testclient import TestClient  # noqa: F401  (local_client's; tells whether httpx2 is here)

    from ganforge.serve.hosts import allowed_hosts, host_name
except (ImportError, RuntimeError) as exc:  # starlette's TestClient raises RuntimeError without httpx2/httpx
    pytest.skip(f"needs the serve extra and httpx2 (pip install 'ganforge[serve]' httpx2): {exc}",
                allow_module_level=True)

SECRET = b"root:x:0:0:root:/root:/bin/bash\n"  # what /etc/passwd starts with; a file outside every run folder


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A copy of the tiny run to make hostile, plus a secret file beside (outside) it."""
    (tmp_path / "secret").write_bytes(SECRET)
    return Path(shutil.copytree(tiny_run, tmp_path / "run", symlinks=True))


def _refused(response) -> None:
    assert response.status_code == 404 and "error" in response.json(), response.text
    assert SECRET not in response.content


@pytest.mark.parametrize("name, relative", [("samples", "samples/latest.png"), ("loss", "loss.png")])
def test_a_run_file_symlinked_out_of_the_run_folder_is_a_404_never_the_target(run_copy, name, relative):
    (run_copy / relative).unlink()
    (run_copy / relative).symlink_to(run_copy.parent / "secret")
    client = local_client(run_copy)
    _refused(client.get(f"/api/run/{name}.png"))
    assert client.get("/api/run/status").json()["files"][name] is None  # not even its time is reported


def test_a_samples_folder_symlinked_out_of_the_run_folder_is_refused(run_copy):
    outside = run_copy.parent / "elsewhere"
    shutil.move(run_copy / "samples", outside)
    (run_copy / "samples").symlink_to(outside, target_is_directory=True)
    _refused(local_client(run_copy).get("/api/run/samples.png"))


def test_a_run_file_that_is_not_a_regular_file_is_refused(run_copy):
    (run_copy / "loss.png").unlink()
    (run_copy / "loss.png").mkdir()
    _refused(local_client(run_copy).get("/api/run/loss.png"))


def test_a_symlink_to_another_file_inside_the_run_folder_is_served(run_copy):
    (run_copy / "samples" / "latest.png").unlink()
    (run_copy / "samples" / "latest.png").symlink_to(Path("..") / "loss.png")
    response = local_client(run_copy).get("/api/run/samples.png")
    assert response.status_code == 200 and response.content == (run_copy / "loss.png").read_bytes()


def test_a_log_symlinked_out_of_the_run_folder_is_not_read(run_copy):
    (run_copy / "log.jsonl").unlink()
    (run_copy.parent / "outside.jsonl").write_text(json.dumps({"tick": 99, "kimg": 1.0}) + "\n")
    (run_copy / "log.jsonl").symlink_to(run_copy.parent / "outside.jsonl")
    assert local_client(run_copy).get("/api/run/status").json()["latest"] is None


@pytest.mark.parametrize("url", ["/api/run/..%2F..%2Fsecret.png", "/api/run/%2E%2E%2Fsecret.png",
                                 "/api/run/samples%2Flatest.png", "/api/run/..%2Frun%2Floss.png"])
def test_dot_dot_and_slashes_in_a_run_file_name_are_a_404(run_copy, url):
    _refused(local_client(run_copy).get(url))


def test_a_foreign_host_header_is_refused_with_one_line_and_loopback_names_work(tiny_run):
    client = local_client(tiny_run)
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "[::1]:8000", "", "127.0.0.1:x"):
        response = client.get("/api/info", headers={"Host": host})
        assert response.status_code == 400, host
        error = response.json()["error"]
        assert "Host" in error and "--host" in error and "\n" not in error
    for host in ("localhost:8000", "127.0.0.1:8000", "localhost", "127.0.0.1", "LOCALHOST:1234"):
        assert client.get("/api/info", headers={"Host": host}).status_code == 200, host


def test_a_real_server_refuses_a_foreign_host_header(tiny_run):
    with running_server(tiny_run) as url:
        port = int(url.rsplit(":", 1)[1])
        for host, status in ((f"evil.example:{port}", 400), (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200)):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                connection.request("GET", "/api/info", headers={"Host": host})
                assert connection.getresponse().status == status, host
            finally:
                connection.close()


def test_host_widens_what_is_accepted_only_as_far_as_the_bind_address():
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost"}
    assert allowed_hosts("::1") == {"[::1]", "localhost"}
    assert allowed_hosts("192.168.1.4") == {"192.168.1.4"}
    assert allowed_hosts("Box.LAN") == {"box.lan"}
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None  # every interface: any name
    assert host_name("[0:0:0:0:0:0:0:1]:80") == "[::1]" and host_name("::1") != "[::1]"


def test_an_app_bound_to_every_interface_accepts_any_host_and_one_bound_to_ipv6_loopback_only_its_names(tiny_run):
    every_interface = local_client(tiny_run, host="0.0.0.0")
    assert every_interface.get("/api/info", headers={"Host": "box.lan:8000"}).status_code == 200
    ipv6 = local_client(tiny_run, host="::1")
    assert ipv6.get("/api/info", headers={"Host": "[::1]:8000"}).status_code == 200
    assert ipv6.get("/api/info", headers={"Host": "127.0.0.1:8000"}).status_code == 400


def test_a_port_in_use_is_one_line_before_any_serving_on(tiny_run):
    from click.testing import CliRunner

    from ganforge.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", str(tiny_run), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"error: --port {port} is already in use on 127.0.0.1 (another server?); stop "
                                     "it or choose another with --port N")


def test_the_serve_command_answers_on_the_socket_it_bound(tiny_run):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "serve", str(tiny_run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2) as response:
                    assert response.status == 200 and "z_dim" in json.loads(response.read())
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.terminate()  # reading a live server's output would wait for it forever
                    pytest.fail(f"ganforge serve did not answer on port {port}: {proc.communicate(timeout=30)[0]}")
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
