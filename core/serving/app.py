"""The FastAPI app of ``segzoo serve``: PaddleX's semantic-segmentation endpoint, batched.

:func:`create_app` builds the app around a loaded :class:`~segzoo.inference.predictor.Predictor`;
:func:`app_from_env` is the factory uvicorn's worker processes call (``--workers N``): each loads
its own model from the settings in ``$SEGZOO_SERVE_SETTINGS``. See :mod:`segzoo.serving` for
the endpoints and error codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Literal, Optional, Tuple, Union

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SegzooError
from .batcher import DynamicBatcher, QueueFull
from .media import (
    ServeError,
    colour_png,
    decode_base64,
    fetch_image_url,
    image_kind,
    label_png,
    load_image,
    parse_target_size,
)
from .settings import ServeSettings

log = logging.getLogger("segzoo.serving")

INFER_ENDPOINT = "/semantic-segmentation"
UPLOAD_ENDPOINT = "/semantic-segmentation/upload"

#: threads that download image URLs (each blocks for up to ``url_timeout``)
URL_THREADS = 16


# -- schemas (PaddleX's names and types) --------------------------------------------------------------
Size = Tuple[StrictInt, StrictInt]


class InferRequest(BaseModel):
    """PaddleX's ``semantic_segmentation.InferRequest``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"image": "https://example.com/street.jpg", "targetSize": [1024, 512]}]}
    )
    image: StrictStr = Field(description="an http(s) URL of the image, or the image file's bytes in base64")
    targetSize: Optional[Union[StrictInt, Size]] = Field(
        None, description="-1: the original size; n: n×n; [w, h]; null: the model's default"
    )
    visualize: Optional[StrictBool] = Field(
        None, description="return the colour mask as a base64 PNG in result.image (null: the server's default)"
    )


class InferResult(BaseModel):
    labelMap: List[int] = Field(description="class id of every pixel, row by row (H*W values)")
    size: Tuple[int, int] = Field(description="[H, W] of the label map (the input image's size)")
    image: Optional[str] = Field(None, description="base64 PNG of the mask in VOC colours, or null")


class InferResponse(BaseModel):
    logId: str
    errorCode: int = 0
    errorMsg: str = "Success"
    result: InferResult


class NoResultResponse(BaseModel):
    logId: str
    errorCode: int
    errorMsg: str


class HealthResponse(BaseModel):
    logId: str
    errorCode: int = 0
    errorMsg: str = "Healthy"
    result: dict


_ERRORS = {
    code: {"model": NoResultResponse, "description": text}
    for code, text in {
        400: "unreadable input: bad base64, not an image, a URL that cannot or may not be fetched",
        413: "the request body or the image is larger than the server's limits",
        422: "invalid JSON or invalid fields",
        500: "internal error (details in the server log under the logId)",
        503: "too many requests waiting; retry later",
    }.items()
}
_PNG_200 = {
    200: {
        "description": "the result envelope (JSON), or with ?format=png / Accept: image/png the label map as a PNG",
        "content": {"image/png": {}},
    }
}


# -- helpers ------------------------------------------------------------------------------------------
def new_log_id() -> str:
    return str(uuid.uuid4())


def envelope(log_id: str, code: int, message: str, result: Any = None) -> dict:
    """PaddleX's response envelope; ``result`` only when given."""
    body = {"logId": log_id, "errorCode": code, "errorMsg": message}
    if result is not None:
        body["result"] = result
    return body


def error_response(log_id: str, status: int, message: str) -> JSONResponse:
    return JSONResponse(envelope(log_id, status, message), status_code=status, headers={"X-Log-Id": log_id})


def _log_id(request: Request) -> str:
    log_id = getattr(request.state, "log_id", None)
    if log_id is None:
        log_id = request.state.log_id = new_log_id()
    return log_id


_FIELD_HINTS = {
    "image": "must be a string: an http(s) URL or the image bytes in base64",
    "targetSize": "must be -1, an int n (n×n), a pair [w, h] of ints, or null",
    "visualize": "must be true, false or null",
    "file": "must be an uploaded file (multipart/form-data field 'file')",
}


def validation_message(errors: list) -> str:
    """One readable line for pydantic/FastAPI validation errors."""
    parts: list[str] = []
    seen: set[str] = set()
    for err in errors:
        kind = err.get("type", "")
        if kind == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            return (
                f"the request body is not valid JSON ({detail}); send a JSON object such as "
                '{"image": "<URL or base64>", "targetSize": null}'
            )
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "header")]
        name = loc[0] if loc else ""
        if not name:
            if kind in ("missing",):
                text = 'the request has no body; send a JSON object such as {"image": "<URL or base64>"}'
            else:
                text = 'the body must be a JSON object such as {"image": "<URL or base64>", "targetSize": null}'
        elif kind == "missing":
            text = f"{name}: is required ({_FIELD_HINTS.get(name, 'give a value')})"
        else:
            text = f"{name}: {_FIELD_HINTS.get(name, err.get('msg', 'invalid value'))} (got {_short(err.get('input'))})"
        if text not in seen:
            seen.add(text)
            parts.append(text)
    return "; ".join(parts) or "invalid request"


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (int, float, bool, list, dict, type(None))) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wants_png(request: Request, fmt: Optional[str]) -> bool:
    if fmt is not None:
        return fmt == "png"
    accept = request.headers.get("accept", "").lower()
    return "image/png" in accept and "application/json" not in accept


# -- the body limit -----------------------------------------------------------------------------------
class BodyLimitMiddleware:
    """Refuse (413) bodies over ``max_bytes``: on ``Content-Length`` at once, else while reading.

    The body is read here (up to the limit) and replayed to the app, so no route ever sees more.
    Before answering 413 the rest of the body is read and dropped for a moment (at most
    :attr:`linger_s` seconds and ``max_bytes`` more bytes; never for ``Expect: 100-continue``
    or a declared length over twice the limit): a server that closes a connection with unread
    data makes the kernel reset it and drop the unsent answer, so the client would see
    "connection reset" instead of the 413 (nginx's "lingering close", in small).
    """

    linger_s = 1.0

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return await self._refuse(send, 400, f"Content-Length {declared[:32]!r} is not a number")
            if length > self.max_bytes:
                if length <= 2 * self.max_bytes and b"expect" not in headers:
                    await self._drain(receive, length)
                return await self._refuse(send, 413, self._too_large(f"{length:,} bytes"))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                del chunks
                if message.get("more_body", False):
                    await self._drain(receive, self.max_bytes)
                return await self._refuse(send, 413, self._too_large(f"more than {self.max_bytes:,} bytes"))
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
        del chunks

        async def receive_again():
            if replay:
                return replay.pop()
            return await receive()

        return await self.app(scope, receive_again, send)

    async def _drain(self, receive, budget: int) -> None:
        """Read and drop up to ``budget`` bytes of the body, for at most :attr:`linger_s` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger_s
        dropped = 0
        while dropped <= budget:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                return
            if message["type"] != "http.request":
                return
            dropped += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    def _too_large(self, what: str) -> str:
        return (
            f"the request body is {what}, above this server's limit of {self.max_bytes:,} bytes; send a smaller "
            "image, or an image URL (or start the server with a larger --max-body-mb)"
        )

    async def _refuse(self, send, status: int, message: str) -> None:
        log_id = new_log_id()
        body = json.dumps(envelope(log_id, status, message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-log-id", log_id.encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# -- the app ------------------------------------------------------------------------------------------
def create_app(predictor, settings: Optional[ServeSettings] = None) -> FastAPI:
    """The ASGI app serving ``predictor`` (a :class:`~segzoo.inference.predictor.Predictor`).

    The batcher (and its inference thread) starts with the app's lifespan; run the app with
    uvicorn, or with ``fastapi.testclient.TestClient`` as a context manager.
    """
    settings = settings or ServeSettings()
    state: dict[str, Any] = {"started": time.time(), "requests": 0, "errors": {}}

    def predict(images, target):
        return predictor.predict_arrays(images, batch_size=len(images), target_size=target)

    def thread_init():
        if getattr(predictor, "layer", None) is not None:  # dygraph: paddle's device on this thread too
            from ..device import set_device

            set_device(settings.device)

    batcher = DynamicBatcher(
        predict,
        max_batch_size=settings.max_batch_size,
        batch_timeout_ms=settings.batch_timeout_ms,
        max_queue=settings.max_queue,
        thread_initializer=thread_init,
    )
    url_pool = ThreadPoolExecutor(URL_THREADS, thread_name_prefix="segzoo-url")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            url_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="segzoo semantic segmentation",
        description=(
            f"Serves **{predictor.model_name}** ({predictor.num_classes} classes) with PaddleX's "
            "semantic-segmentation API. Errors keep the envelope with errorCode = the HTTP status."
        ),
        version=_version(),
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.predictor = predictor
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)

    def count_error(status: int) -> None:
        state["errors"][str(status)] = state["errors"].get(str(status), 0) + 1

    # -- error handlers: always the envelope, never a traceback -----------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        count_error(422)
        return error_response(_log_id(request), 422, validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        count_error(exc.status_code)
        return error_response(_log_id(request), exc.status_code, str(exc.detail))

    @app.exception_handler(SegzooError)
    async def _user_error(request: Request, exc: SegzooError):
        status = getattr(exc, "status", 400)
        count_error(status)
        return error_response(_log_id(request), status, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log_id = _log_id(request)
        log.error("logId %s: internal error", log_id, exc_info=exc)
        count_error(500)
        return error_response(log_id, 500, f"Internal server error (logId {log_id})")

    # -- the shared path of both inference endpoints ----------------------------------------------------
    async def answer(request: Request, data_or_url, target_raw, visualize, fmt, field: str = "image") -> Response:
        log_id = _log_id(request)
        state["requests"] += 1
        try:
            target = parse_target_size(target_raw, settings.max_pixels)
            if isinstance(data_or_url, str) and image_kind(data_or_url) == "base64":
                data_or_url = await run_in_threadpool(decode_base64, data_or_url)
            if isinstance(data_or_url, str):  # an http(s) URL
                loop = asyncio.get_running_loop()
                try:
                    data = await asyncio.wait_for(
                        loop.run_in_executor(url_pool, fetch_image_url, data_or_url.strip(), settings),
                        settings.url_timeout + 5.0,
                    )
                except asyncio.TimeoutError:
                    raise ServeError(
                        400, f"image: {data_or_url} was not downloaded within {settings.url_timeout:g} s"
                    ) from None
            else:
                data = data_or_url
            image = await run_in_threadpool(load_image, data, settings.max_pixels, field)
            del data
            try:
                labels = await batcher.submit(image, target)
            except QueueFull as exc:
                raise ServeError(503, f"the server is busy ({exc}); retry in a moment") from None
            png = _wants_png(request, fmt)
            show = settings.visualize if visualize is None else bool(visualize)
            body = await run_in_threadpool(_render, labels, log_id, png, show)
        except SegzooError as exc:
            status = getattr(exc, "status", 400)
            count_error(status)
            return error_response(log_id, status, str(exc))
        except Exception as exc:
            log.error("logId %s: internal error", log_id, exc_info=exc)
            count_error(500)
            return error_response(log_id, 500, f"Internal server error (logId {log_id})")
        if png:
            h, w = labels.shape
            return Response(body, media_type="image/png", headers={"X-Log-Id": log_id, "X-Size": f"{h},{w}"})
        return Response(body, media_type="application/json", headers={"X-Log-Id": log_id})

    # -- routes ---------------------------------------------------------------------------------------
    @app.post(
        INFER_ENDPOINT,
        operation_id="infer",
        summary="Predict the label map of an image (URL or base64)",
        response_model=InferResponse,
        responses={**_PNG_200, **_ERRORS},
    )
    async def infer(
        request: Request,
        body: InferRequest,
        format: Optional[Literal["json", "png"]] = Query(None, description="png: answer the label map as a PNG"),
    ):
        request.state.log_id = new_log_id()
        return await answer(request, body.image, body.targetSize, body.visualize, format)

    @app.post(
        UPLOAD_ENDPOINT,
        operation_id="inferUpload",
        summary="Predict the label map of an uploaded image (multipart/form-data)",
        response_model=InferResponse,
        responses={**_PNG_200, **_ERRORS},
    )
    async def infer_upload(
        request: Request,
        file: UploadFile = File(description="the image file"),
        targetSize: Optional[str] = Form(None, description="-1, n or w,h (empty: the model's default)"),
        visualize: Optional[bool] = Form(None, description="return the colour mask in result.image"),
        format: Optional[Literal["json", "png"]] = Query(None, description="png: answer the label map as a PNG"),
    ):
        request.state.log_id = new_log_id()
        data = await file.read()
        await file.close()
        if not data:
            raise ServeError(400, "file: the uploaded file is empty; send an image file")
        return await answer(request, data, targetSize, visualize, format, field="file")

    @app.get("/health", operation_id="checkHealth", summary="Liveness, the model and the batching counters",
             response_model=HealthResponse)
    async def health():
        result = {
            "model": predictor.model_name,
            "numClasses": predictor.num_classes,
            "engine": getattr(predictor.engine, "name", None),
            "pid": os.getpid(),
            "uptimeSeconds": round(time.time() - state["started"], 1),
            "requests": state["requests"],
            "errors": dict(state["errors"]),
            "queued": batcher.queued,
            "maxBatchSizeSetting": settings.max_batch_size,
            "batchTimeoutMs": settings.batch_timeout_ms,
            **batcher.stats.as_dict(),
        }
        return envelope(new_log_id(), 0, "Healthy", result)

    return app


def _render(labels, log_id: str, png: bool, visualize: bool) -> bytes:
    """The answer's bytes: the label-map PNG, or the JSON envelope (blocking; run it in a thread)."""
    import base64

    if png:
        return label_png(labels)
    h, w = labels.shape
    image = base64.b64encode(colour_png(labels)).decode("ascii") if visualize else None
    result = {"labelMap": labels.ravel().tolist(), "size": [h, w], "image": image}
    return json.dumps(envelope(log_id, 0, "Success", result), separators=(",", ":")).encode()


def _version() -> str:
    from .._version import __version__

    return __version__


def app_from_env() -> FastAPI:
    """uvicorn's factory in each worker process: load the model of ``$SEGZOO_SERVE_SETTINGS``."""
    from .server import load_predictor, setup_logging

    settings = ServeSettings.from_env()
    setup_logging(settings.log_level)
    return create_app(load_predictor(settings), settings)
