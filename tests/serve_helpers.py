"""A real uvicorn server on a free 127.0.0.1 port in a background thread, for the browser test and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOCAL_BASE_URL = "http://127.0.0.1:8000"  # the test client's default Host, "testserver", is refused like any stranger


def local_client(source: Path, host: str = "127.0.0.1") -> Any:
    """FastAPI's test client for `ganforge serve SOURCE --host HOST`, sending Host: 127.0.0.1:8000."""
    from fastapi.testclient import TestClient

    from ganforge.serve.app import create_app

    return TestClient(create_app(source, host=host), base_url=LOCAL_BASE_URL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(source: Path, timeout_s: float = 30.0, directions: Path | None = None) -> Iterator[str]:
    """Yields the base URL of `ganforge serve SOURCE [--directions DIR]` while it runs; stops it on exit."""
    import uvicorn

    from ganforge.serve.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(source, directions=directions), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url + "/api/info", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or not thread.is_alive():
                server.should_exit = True
                raise RuntimeError(f"the test server on {url} did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
