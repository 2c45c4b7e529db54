"""The translation web app: upload an image, get the translation of an image-to-image run or export.

POST /api/translate.png takes the image file itself as the request body (any format the dataset doctor reads),
with `direction`, `crop` and `scale` as query parameters, and answers a PNG. Everything from the client is
hostile until checked: unknown or repeated parameters, values out of range, a body over the upload limit (refused
from its Content-Length before it is read, and again while reading, since the header can lie), an empty body and
a file that is not a usable image each get a 4xx with {"error": ..., "param": ...}; the image is decoded under
the doctor's decompression-bomb limit and never written to disk. Decoding holds a full-size image, so it waits for
one of the `max_parallel` slots as the forward pass does, and at most UPLOADS_PER_SLOT upload limits' worth of bytes
a slot are held at once; running out of memory or of upload room is a 503 "busy, retry", never a verdict on the
image.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime.
import io
import threading
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ganforge.data.decode import OutOfMemory, SkipInput, Target, decode, pillow_limits
from ganforge.data.prepare import CROP_MODES, PrepareOptions
from ganforge.device import resolve_device
from ganforge.models import family_of
from ganforge.runs import LoadedTranslator, load_translator
from ganforge.serve.base import STATIC, base_app
from ganforge.serve.params import check_params
from ganforge.serve.render import MAX_OUTPUT_SIDE, BadParameter
from ganforge.translation import translate_images

MAX_UPLOAD_BYTES = 20 << 20  # a large photo as a camera writes it; the doctor resizes it to the model's input
MAX_SCALE = 8  # nearest-neighbour enlargement of the output, for small models
# Bytes of uploads held at once (arriving, or read and waiting for a slot), in upload limits per translation slot:
# past them a request is a 503 "busy, retry", so a flood of uploads holds at most max_parallel x 4 x the limit in
# memory, not the limit per connection. Bytes, not requests: slow clients sending little hold little room.
UPLOADS_PER_SLOT = 4
_CHUNK = 1 << 16

Scale = Annotated[int, Query(ge=1, le=MAX_SCALE, description="nearest-neighbour enlargement of the output")]
Direction = Annotated[str, Query(pattern="^(a2b|b2a)$", description="a2b, or b2a for CycleGAN runs")]
Crop = Annotated[str, Query(pattern=f"^({'|'.join(CROP_MODES)})$", description="fit other aspect ratios")]


class UploadTooLarge(Exception):
    pass


class ServerBusy(Exception):
    """No memory or upload room for this request now: the client should retry, not change its image."""


def create_translation_app(source: Path, device: str = "cpu", max_parallel: int = 2, host: str = "127.0.0.1",
                           max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """An app serving the translator(s) in `source` (a run folder or an exported folder) to requests addressed to
    `host`."""
    torch_device = resolve_device(device)
    first = load_translator(source, "a2b", torch_device)
    translators: dict[str, LoadedTranslator] = {"a2b": first}
    for direction in family_of(first.config.model.name).directions[1:]:
        translators[direction] = load_translator(source, direction, torch_device)
    for loaded in translators.values():  # an exported graph that makes other images fails now, not on each request
        translate_images(loaded, torch.zeros((1, *loaded.input_shape), dtype=torch.uint8))
    slots = threading.BoundedSemaphore(max_parallel)  # forward passes at once; more requests wait their turn
    room = UploadRoom(UPLOADS_PER_SLOT * max_parallel * max_upload_bytes)
    app = base_app(host)

    @app.exception_handler(UploadTooLarge)
    async def too_large(request: Request, exc: UploadTooLarge) -> JSONResponse:
        limit = f"{max_upload_bytes / (1 << 20):.3g} MB"
        return JSONResponse({"error": f"file: larger than the {limit} upload limit; send a smaller image",
                             "param": "file"}, status_code=413)

    @app.exception_handler(ServerBusy)
    async def busy(request: Request, exc: ServerBusy) -> JSONResponse:
        return JSONResponse({"error": "the server is busy (out of memory or upload slots for translations right now); "
                                      "retry in a moment"},
                            status_code=503, headers={"Retry-After": "5"})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "translate.html")

    @app.get("/api/info")
    def info(request: Request) -> dict[str, Any]:
        check_params(request)
        return {"name": source.name, "model": first.config.model.name, "kimg": round(first.nimg / 1000, 3),
                "directions": {d: {"input_shape": list(t.input_shape), "output_shape": list(t.output_shape)}
                               for d, t in translators.items()},
                "limits": {"upload_bytes": max_upload_bytes, "scale_max": MAX_SCALE, "crops": list(CROP_MODES)}}

    @app.post("/api/translate.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def translate(request: Request, direction: Direction = "a2b", crop: Crop = "center",
                        scale: Scale = 1) -> Response:
        check_params(request, "direction", "crop", "scale")
        if direction not in translators:
            raise BadParameter("direction", f"direction {direction}: this {first.config.model.name} run translates "
                                            f"{' and '.join(translators)} only")
        body = await _read_body(request, max_upload_bytes, room)
        try:
            form = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
            # Decoding and the forward pass block: a worker thread runs them, so the server answers meanwhile.
            png = await run_in_threadpool(_translate, translators[direction], body, crop, scale, slots, form)
        finally:
            room.give(len(body))
        return Response(png, media_type="image/png")

    return app


def _translate(loaded: LoadedTranslator, body: bytes, crop: str, scale: int, slots: threading.BoundedSemaphore,
               form: bool) -> bytes:
    """`form`: the request said its body is multipart/form-data (an HTML form's or `curl -F`'s upload)."""
    channels, height, width = loaded.input_shape
    made = (loaded.output_shape[2] * scale, loaded.output_shape[1] * scale)
    if scale > 1 and max(made) > MAX_OUTPUT_SIDE:
        raise BadParameter("scale", f"scale {scale} would make a {made[0]}x{made[1]} px image; the limit is "
                                    f"{MAX_OUTPUT_SIDE} px a side")
    # A decoded upload, and the enlarged output, can take more memory than the forward pass: all wait for a slot.
    with slots:
        try:
            with pillow_limits(PrepareOptions().max_pixels):
                pixels = decode(io.BytesIO(body), Target(height, width, channels, crop, (255, 255, 255), (0, 0, 0)))
            output = translate_images(loaded, torch.from_numpy(pixels[None].copy()))
        except (OutOfMemory, MemoryError, torch.OutOfMemoryError) as exc:
            raise ServerBusy() from exc
        except SkipInput as skip:
            if form or _looks_multipart(body):
                raise BadParameter("file", "file: the body looks like multipart/form-data (a form upload); send the "
                                           "image's bytes as the body, e.g. curl --data-binary @x.png "
                                           "http://HOST/api/translate.png") from skip
            raise BadParameter("file", f"file: {skip.reason}; upload a jpg, png, webp, bmp, tif or gif image") from skip
        return _png(output[0], scale)


def _looks_multipart(body: bytes) -> bool:
    """A multipart body sent without its Content-Type: a "--boundary" line, then a part's headers."""
    head = body[:1024]
    return head.startswith(b"--") and b"content-disposition: form-data" in head.lower()


class UploadRoom:
    """The bytes of uploads the server holds at once, across requests (each may run on its own thread's loop)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0
        self._lock = threading.Lock()

    def take(self, count: int) -> None:
        with self._lock:
            if self.held + count > self.limit:
                raise ServerBusy()
            self.held += count

    def give(self, count: int) -> None:
        with self._lock:
            self.held -= count


async def _read_body(request: Request, limit: int, room: UploadRoom) -> bytes:
    """The body, its bytes taken from `room` as they arrive (given back here on failure, by the caller after)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        if not declared.isdigit():
            raise BadParameter("file", "file: the Content-Length header is not a number of bytes")
        raise UploadTooLarge()
    received = bytearray()
    try:
        async for chunk in request.stream():
            room.take(len(chunk))
            received += chunk
            if len(received) > limit:  # a chunked upload, or a Content-Length that lied
                raise UploadTooLarge()
        if not received:
            raise BadParameter("file", "file: the upload is empty; send the image file as the request body")
    except BaseException:
        room.give(len(received))
        raise
    return bytes(received)


def _png(pixels: torch.Tensor, scale: int) -> bytes:
    array = pixels.numpy()
    image = Image.fromarray(array[0], "L") if array.shape[0] == 1 else Image.fromarray(array.transpose(1, 2, 0), "RGB")
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
