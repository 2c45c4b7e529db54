"""What every ganforge web app shares: the static files, the Host check, errors as JSON naming the parameter, and
quiet ends to uploads the client gave up on.

No `from __future__ import annotations`: FastAPI reads the handler annotations at runtime.
"""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ganforge.serve.hosts import HostCheck, allowed_hosts
from ganforge.serve.render import BadParameter

STATIC = Path(__file__).parent / "static"


def base_app(host: str) -> FastAPI:
    """An app answering only requests addressed to `host`, with a 4xx {"error", "param"} for every bad request."""
    app = FastAPI(title="ganforge", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(HostCheck, allowed=allowed_hosts(host))

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> JSONResponse:
        return JSONResponse({"error": str(exc), "param": exc.param}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        param = str(first["loc"][-1]) if first.get("loc") else ""
        return JSONResponse({"error": f"{param}: {first['msg']}", "param": param}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": f"{request.url.path}: {exc.detail}"}, status_code=exc.status_code)

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client closed the connection mid-upload: nobody reads an answer, and it is no server error to log
        # ("Exception in ASGI application" with a traceback).
        return Response(status_code=400)

    return app
