"""The web app: two static pages and a JSON/PNG API over one generator (FastAPI; `pip install 'ganforge[serve]'`).

Every image is a GET with its controls as query parameters (so a page, a script and an HTTP cache can all use
it), every parameter is range-checked, unknown parameters are refused, and a bad request gets a 400 with
{"error": ..., "param": ...}. Nothing from the client is ever used as a file system path: the run page's files
are fixed names inside the served run folder, sent only when they resolve to regular files inside it (a run
folder is user data: samples/latest.png may be a symlink to /etc/passwd). Requests whose Host header does not name
the bound address are refused (hosts.py), so a web page cannot reach the server by DNS rebinding.

A class-conditional generator draws every image in one class: the image, strip and grid endpoints then need
`class`, one of the names /api/info lists under "classes" (a 400 names the choices; no class is picked silently,
so a URL always says which class it shows); an interpolation keeps that class and moves only z. For an
unconditional generator "classes" is [] and `class` is refused.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.
import errno
import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from ganforge.errors import ConfigError
from ganforge.explore.directions import Directions, load_directions, style_based
from ganforge.generate import PSI_RANGE, SEED_MAX, render, truncates, truncation_space
from ganforge.regular_files import open_regular, parse_json, read_limited
from ganforge.runs import class_names, holds_translator, load_generator
from ganforge.runs.exported import is_export_folder
from ganforge.serve.base import STATIC, base_app
from ganforge.serve.params import check_params
from ganforge.serve.render import (
    EDIT_ABS_MAX,
    BadParameter,
    Renderer,
    edits_from_text,
    latent_from_text,
    latent_to_text,
)
from ganforge.serve.translate_app import create_translation_app

MAX_FRAMES = 16  # images in one interpolation strip
MAX_BATCH = 64  # images in one grid request
MAX_SCALE = 16  # nearest-neighbour enlargement factor
CACHE_SECONDS = 3600  # images depend only on their parameters and the checkpoint (whose nimg the page sends)

Seed = Annotated[int, Query(ge=0, le=SEED_MAX, description="latent seed, 0..2^32-1")]
Psi = Annotated[float, Query(ge=PSI_RANGE[0], le=PSI_RANGE[1], description="truncation psi; 1 = none")]
Scale = Annotated[int, Query(ge=1, le=MAX_SCALE, description="nearest-neighbour enlargement")]
Method = Annotated[str, Query(pattern="^(lerp|slerp)$", description="interpolation: lerp or slerp")]
ClassName = Annotated[str | None, Query(alias="class", max_length=256,
                                        description="class-conditional generators: one of /api/info's classes")]


def create_app(source: Path, device: str = "cpu", max_parallel: int = 2, host: str = "127.0.0.1",
               directions: Path | None = None) -> FastAPI:
    """An app serving the generator in `source` (a run folder or an exported folder) to requests addressed to
    `host`, the address it is bound to (hosts.allowed_hosts: 127.0.0.1 also answers to localhost; 0.0.0.0 to any).
    `directions` (a `ganforge directions` folder) adds its top directions as sliders."""
    if holds_translator(source):  # an image-to-image run or export: upload an image, get its translation
        if directions is not None:
            raise ConfigError(f"--directions: {source} translates images; directions move a noise-to-image "
                              "generator's latents")
        return create_translation_app(source, device, max_parallel, host)
    generator, config, nimg = load_generator(source, device)
    moves = _checked_directions(directions, generator, config.model.z_dim) if directions is not None else None
    run_root = source.resolve()
    classes = class_names(source, config)
    renderer = Renderer(generator, config.model.z_dim, source.name, nimg, max_parallel, truncates(config),
                        truncation_space(config))
    is_run = not is_export_folder(source)
    probe_label = torch.zeros(1, dtype=torch.long) if classes else None
    shape = list(render(generator, torch.zeros(1, config.model.z_dim), labels=probe_label).shape[1:])
    app = base_app(host)

    def pick_class(name: str | None, text: dict[str, str]) -> int | None:
        """The `class` parameter -> its index (recorded in `text`); None for an unconditional generator."""
        if not classes:
            if name is not None:
                raise BadParameter("class", "class: this generator is unconditional (trained without --cond); "
                                            "leave class out")
            return None
        if name is None or name not in classes:
            shown = ", ".join(classes[:20]) + (", ..." if len(classes) > 20 else "")
            given = "class is required" if name is None else f"class {name!r} is not one of this generator's classes"
            raise BadParameter("class", f"{given}; choose one of: {shown}")
        text["class"] = name
        return classes.index(name)

    def png_response(data: bytes) -> Response:
        return Response(data, media_type="image/png", headers={"Cache-Control": f"public, max-age={CACHE_SECONDS}"})

    @app.get("/", include_in_schema=False)
    def generator_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/run", include_in_schema=False)
    def run_page() -> FileResponse:
        return FileResponse(STATIC / "run.html")

    @app.get("/api/info")
    def info(request: Request) -> dict[str, Any]:
        check_params(request)
        return {"name": source.name, "source": "run" if is_run else "export", "model": config.model.name,
                "z_dim": config.model.z_dim, "image_shape": shape,
                "nimg": nimg, "kimg": round(nimg / 1000, 3), "classes": classes, "has_run_page": is_run,
                "truncation": renderer.truncates,
                "directions": None if moves is None else {
                    "method": moves.method, "space": moves.space, "count": len(moves),
                    "sliders": min(len(moves), MAX_SLIDERS), "score": moves.score,
                    "layers": list(moves.layers) if moves.layers else None},
                "limits": {"seed_max": SEED_MAX, "psi_min": PSI_RANGE[0], "psi_max": PSI_RANGE[1],
                           "frames_max": MAX_FRAMES, "batch_max": MAX_BATCH, "scale_max": MAX_SCALE,
                           "edit_max": EDIT_ABS_MAX}}

    @app.get("/api/image.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def image(request: Request, seed: Seed | None = None, z: Annotated[str | None, Query(max_length=65536)] = None,
              psi: Psi = 1.0, seed_b: Seed | None = None, t: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
              method: Method = "slerp", scale: Scale = 1, class_name: ClassName = None,
              edit: Annotated[str | None, Query(max_length=1024)] = None) -> Response:
        """One image: from `seed` or a pasted latent `z`; with `seed_b`, the point `t` of the way to it; with
        `edit` ("INDEX:AMOUNT,..."), moved along the server's directions (amounts in each direction's scale)."""
        check_params(request, "seed", "z", "psi", "seed_b", "t", "method", "scale", "class", "v", "edit")
        if (seed is None) == (z is None):
            raise BadParameter("seed", "give exactly one of seed (0..2^32-1) or z (a latent as text)")
        start = renderer.seed_latent(seed) if seed is not None else latent_from_text(z or "", config.model.z_dim)
        text = {"psi": f"{psi:g}", **({"seed": str(seed)} if seed is not None else {"latent": "imported"})}
        label = pick_class(class_name, text)
        amounts = edits_from_text(edit, moves) if edit is not None else {}
        if amounts and seed_b is not None:
            raise BadParameter("edit", "edit moves one image; drop seed_b (or edit each end on its own)")
        for between_only in ("t", "method"):  # accepted and ignored, they would give another image than asked
            if seed_b is None and between_only in request.query_params:
                raise BadParameter(between_only, f"{between_only} places an image between seed and seed_b; give "
                                                  "seed_b too, or drop it")
        if seed_b is None:
            edits = [(moves, amounts)] if amounts and moves is not None else []
            text.update({"edit": ",".join(f"{i}:{a:g}" for i, a in amounts.items())} if amounts else {})
            return png_response(renderer.png(("one", seed, z, psi, scale, label, tuple(amounts.items())),
                                             lambda: start[None], psi, scale, None, text, label, edits))
        text.update(seed_b=str(seed_b), t=f"{t:g}", method=method)
        return png_response(renderer.png(
            ("between", seed, z, seed_b, t, method, psi, scale, label),
            lambda: renderer.between(start, renderer.seed_latent(seed_b), [t], method), psi, scale, None, text,
            label))

    @app.get("/api/strip.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def strip(request: Request, seed: Seed, seed_b: Seed, frames: Annotated[int, Query(ge=2, le=MAX_FRAMES)] = 8,
              psi: Psi = 1.0, method: Method = "slerp", scale: Scale = 1, class_name: ClassName = None) -> Response:
        """`frames` images from seed to seed_b, ends included, in one row (in one class)."""
        check_params(request, "seed", "seed_b", "frames", "psi", "method", "scale", "class", "v")
        t = [i / (frames - 1) for i in range(frames)]
        text = {"seed": str(seed), "seed_b": str(seed_b), "frames": str(frames), "psi": f"{psi:g}", "method": method}
        label = pick_class(class_name, text)
        return png_response(renderer.png(
            ("strip", seed, seed_b, frames, psi, method, scale, label),
            lambda: renderer.between(renderer.seed_latent(seed), renderer.seed_latent(seed_b), t, method),
            psi, scale, frames, text, label))

    @app.get("/api/grid.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def grid(request: Request, seed: Seed = 0, n: Annotated[int, Query(ge=1, le=MAX_BATCH)] = 16, psi: Psi = 1.0,
             scale: Scale = 1, class_name: ClassName = None) -> Response:
        """Seeds seed .. seed+n-1 (wrapping at 2^32) in a square grid (all in one class)."""
        check_params(request, "seed", "n", "psi", "scale", "class", "v")
        seeds = [(seed + i) % (SEED_MAX + 1) for i in range(n)]
        text = {"seeds": f"{seeds[0]}..{seeds[-1]}", "psi": f"{psi:g}"}
        label = pick_class(class_name, text)
        return png_response(renderer.png(("grid", seed, n, psi, scale, label),
                                         lambda: torch.stack([renderer.seed_latent(s) for s in seeds]),
                                         psi, scale, None, text, label))

    @app.get("/api/latent")
    def latent(request: Request, seed: Seed) -> dict[str, Any]:
        """A seed's latent as text, for export; paste it back as the `z` of /api/image.png."""
        check_params(request, "seed")
        return {"seed": seed, "z_dim": config.model.z_dim, "z": latent_to_text(renderer.seed_latent(seed))}

    @app.get("/api/run/status")
    def run_status(request: Request) -> dict[str, Any]:
        """The run's latest log row and the modification times of its sample grid and loss plot."""
        check_params(request)
        if not is_run:
            return {"run": False}
        files = {name: _mtime(_run_file_path(run_root, rel)) for name, rel in RUN_FILES.items()}
        return {"run": True, "name": source.name, "latest": _last_tick(_run_file_path(run_root, "log.jsonl")),
                "files": files}

    @app.get("/api/run/{name}.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def run_file(request: Request, name: str) -> Response:
        """samples (samples/latest.png), loss (loss.png) or metrics (metrics.png) of the run; any other name is a
        404."""
        check_params(request, "v")
        path = _run_file_path(run_root, RUN_FILES[name]) if is_run and name in RUN_FILES else None
        if path is None:
            return JSONResponse({"error": f"no {name}.png here; this serves samples.png, loss.png and metrics.png "
                                          "of a run folder once training has written them, as regular files "
                                          "inside it",
                                 "param": "name"}, status_code=404)
        try:  # read whole from one open file: training replaces it by rename while a response streams
            data = read_limited(path, MAX_RUN_PNG_BYTES)
        except (OSError, ValueError) as error:
            return JSONResponse({"error": f"{name}.png could not be read ({error})", "param": "name"},
                                status_code=404)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

    return app


MAX_SLIDERS = 10  # directions the page shows as sliders (the strongest first)
MAX_RUN_PNG_BYTES = 256 << 20  # a run's grid or plot: an 8x8 grid of 1024 px images is tens of MB


def _checked_directions(folder: Path, generator: torch.nn.Module, z_dim: int) -> Directions:
    """The directions of `folder`, once they fit this generator (its latent size; W for a style-based G)."""
    found = load_directions(folder)
    if found.space == "w" and not style_based(generator):
        raise ConfigError(f"--directions {folder} are in W, for a style-based generator; this one reads z: find "
                          "directions for it with `ganforge directions`")
    if found.vectors.shape[1] != z_dim or (found.space == "z" and style_based(generator)):
        raise ConfigError(f"--directions {folder} were found for another generator ({found.space}, "
                          f"{found.vectors.shape[1]} dimensions); find directions for this one with "
                          "`ganforge directions`")
    return found


# Fixed names: the client picks a key, not a path.
RUN_FILES = {"samples": "samples/latest.png", "loss": "loss.png", "metrics": "metrics.png"}
LOG_TAIL_BYTES = 1 << 20  # of log.jsonl read for the status: hundreds of rows, whatever the log's length


def _run_file_path(run_root: Path, relative: str) -> Path | None:
    """`run_root / relative` with every symlink followed, when that is a regular file inside `run_root` (itself
    resolved); else None. A link to another file of the run still works; one leading out of it, or to a device
    or FIFO that would never finish reading, does not."""
    try:
        path = (run_root / relative).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
        return None
    return path if path.is_relative_to(run_root) and path.is_file() else None


def _mtime(path: Path | None) -> float | None:
    try:
        return None if path is None else path.stat().st_mtime
    except OSError:
        return None


def _last_tick(log: Path | None) -> dict[str, Any] | None:
    if log is None:
        return None
    try:  # a FIFO swapped in after _run_file_path's check must not block the server
        with open_regular(log) as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - LOG_TAIL_BYTES))  # the last tick is in the last rows
            lines = f.read(LOG_TAIL_BYTES).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = parse_json(line)
        except ValueError:
            continue  # the line being written right now
        if isinstance(record, dict) and "tick" in record:
            keep = ("tick", "kimg", "loss_d", "loss_g", "d_real", "d_fake", "img_per_s")
            return {k: record[k] for k in keep if k in record}
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve(source: Path, host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
          echo: Callable[[str], None] = print, directions: Path | None = None) -> None:
    """Run the app with uvicorn until Ctrl-C."""
    try:
        import uvicorn  # optional extra: ganforge[serve]
    except ImportError as exc:
        raise ConfigError("ganforge serve needs uvicorn and fastapi: pip install 'ganforge[serve]'") from exc
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port; use 1-65535 (e.g. 8000)")
    app = create_app(source, device, host=host, directions=directions)
    if not is_loopback(host):
        echo(f"warning: --host {host} makes this server reachable from other machines; it has no authentication "
             "and anyone who can reach it can use the CPU/GPU. Use 127.0.0.1 unless you mean it.")
    listening = _bind(host, port)  # first, so that a port in use is reported before "serving on"
    shown = f"[{host}]" if ":" in host else host
    # A translation app has no run page, and an export no run to show on one.
    has_run_page = any(getattr(route, "path", None) == "/run" for route in app.routes) and not is_export_folder(source)
    pages = ("training run page: /run, " if has_run_page else "") + "API docs: /api/docs"
    echo(f"serving {source} on http://{shown}:{port}/ ({pages}); Ctrl-C stops")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), or one line saying why there can be none."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # not SO_REUSEPORT: two servers must clash
        listening.bind((host, port))
        listening.listen(2048)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host} is not an address or a name this machine resolves ({exc.strerror})") from exc
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"--port {port} is already in use on {host} (another server?); stop it or choose "
                              "another with --port N") from exc
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --host or --port") from exc
    return listening
