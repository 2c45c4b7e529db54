"""Request parameters the apps accept: each endpoint names its own, and anything else is a 400."""

from __future__ import annotations

from starlette.requests import Request

from ganforge.serve.render import BadParameter


def check_params(request: Request, *allowed: str) -> None:
    """Refuse unknown and repeated parameters: a typo like `sed=5` must not silently render seed 0."""
    for name in request.query_params:
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise BadParameter(name, f"unknown parameter {name!r}; this endpoint takes: {known}")
        if len(request.query_params.getlist(name)) > 1:
            raise BadParameter(name, f"{name} is given more than once")
