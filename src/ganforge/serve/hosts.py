"""Which Host headers `ganforge serve` answers: only the names of the address it binds.

A server on 127.0.0.1 is still reachable from any web page the user opens: the page's site points its own
DNS name at 127.0.0.1 (DNS rebinding) and the browser then treats the server as that site. Such requests
carry the attacker's name in their Host header, so answering only the bound address's names stops them.
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

_SHOWN_MAX = 100  # characters of a refused Host header echoed back


def allowed_hosts(bind: str) -> frozenset[str] | None:
    """Host names (without port) a server bound to `bind` answers; None: any (0.0.0.0 or ::, every interface)."""
    address = _ip(bind)
    if address is not None and address.is_unspecified:
        return None
    if bind.lower() == "localhost":
        return frozenset({"localhost", "127.0.0.1", "[::1]"})
    name = _host_form(bind)
    if address is not None and address.is_loopback:
        return frozenset({name, "localhost"})  # only this machine can resolve "localhost" to itself
    return frozenset({name})


def host_name(header: str) -> str | None:
    """'localhost:8000' -> 'localhost', '[::1]:8000' -> '[::1]' (lower case); None unless it is host[:port]."""
    name, port = (header, "") if header.endswith("]") or ":" not in header else header.rsplit(":", 1)
    if not name or (port and not port.isdigit()):
        return None
    return _host_form(name[1:-1] if name.startswith("[") and name.endswith("]") else name)


class HostCheck:
    """ASGI middleware: a request whose Host header is not one of `allowed` gets a 400 and never reaches the app."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host", "")
        if host_name(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        names = ", ".join(sorted(self.allowed))
        message = (f"Host {header[:_SHOWN_MAX]!r} refused: this server answers only to {names} (any port); "
                   "browse to one of those, or start ganforge serve with --host set to the address you use")
        await JSONResponse({"error": message, "param": "Host"}, status_code=400)(scope, receive, send)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _host_form(name: str) -> str:
    """How a Host header writes an address: IPv6 in brackets, compressed; names in lower case."""
    address = _ip(name)
    if isinstance(address, ipaddress.IPv6Address):
        return f"[{address.compressed}]"
    return str(address) if address is not None else name.lower()
