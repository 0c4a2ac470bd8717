"""The FastAPI app of ``segzoo serve``: PaddleX's semantic-segmentation endpoint, batched.


:func:`create_app` builds the app around a loaded :class:`~segzoo.inference.predictor.Predictor`
(the request/response models and the error envelope are in :mod:`segzoo.serving.schemas`, the
body-size limit in :mod:`segzoo.serving.bodylimit`). uvicorn's worker processes (``--workers N``)
call :func:`segzoo.serving.server.app_from_env`, which loads each worker's own model. See
:mod:`segzoo.serving` for the endpoints and error codes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Optional

from importlib.resources import files

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import _lazy
from .._version import __version__
from ..device import set_device
from ..errors import SegzooError
from .batcher import DynamicBatcher, QueueFull
from .bodylimit import BodyLimitMiddleware
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
from .schemas import (  # noqa: F401  (moved; old home keeps them)
    _ERRORS,
    _PNG_200,
    HealthResponse,
    InferRequest,
    InferResponse,
    InferResult,
    NoResultResponse,
    Size,
    _log_id,
    envelope,
    error_response,
    new_log_id,
    validation_message,
)
from .settings import ServeSettings

log = logging.getLogger("segzoo.serving")

INFER_ENDPOINT = "/semantic-segmentation"
UPLOAD_ENDPOINT = "/semantic-segmentation/upload"

#: threads that download image URLs (each blocks for up to ``url_timeout``)
URL_THREADS = 16

#: where /docs and /redoc load Swagger UI's and ReDoc's files from (shipped by fastapi-offline: no CDN)
DOCS_ASSETS = "/docs-assets"
#: the page at ``GET /`` (package data): one self-contained file, no CDN, no build step
PAGE = ("static", "index.html")
#: what the page may load: itself, the service, and the images a person gives it
PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data: blob: http: https:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

# app_from_env moved to server.py (importing it here would make a circle app <-> server)
__getattr__ = _lazy.moved_names(__name__, {"app_from_env": "segzoo.serving.server"})


def _wants_png(request: Request, fmt: Optional[str]) -> bool:
    if fmt is not None:
        return fmt == "png"
    accept = request.headers.get("accept", "").lower()
    return "image/png" in accept and "application/json" not in accept



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

    app: FastAPI = FastAPIOffline(  # a FastAPI app whose /docs and /redoc work offline
        title="segzoo semantic segmentation",
        description=(
            f"Serves **{predictor.model_name}** ({predictor.num_classes} classes) with PaddleX's "
            "semantic-segmentation API. Errors keep the envelope with errorCode = the HTTP status. "
            "A page to try it: [/](/)."
        ),
        version=_version(),
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
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
        message = validation_message(exc.errors(), request.headers.get("content-type"))
        return error_response(_log_id(request), 422, message)

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

    page = files(__package__).joinpath(*PAGE).read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def index():
        """The page to try the model in a browser (it calls the endpoints above)."""
        headers = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"}
        return HTMLResponse(page, headers=headers)

    @app.get("/health", operation_id="checkHealth", summary="Liveness, the model and the batching counters",
             response_model=HealthResponse)
    async def health():
        names = getattr(predictor, "class_names", None)
        result = {
            "model": predictor.model_name,
            "numClasses": predictor.num_classes,
            "classNames": [str(n) for n in names] if names else None,
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
    if png:
        return label_png(labels)
    h, w = labels.shape
    image = base64.b64encode(colour_png(labels)).decode("ascii") if visualize else None
    result = {"labelMap": labels.ravel().tolist(), "size": [h, w], "image": image}
    return json.dumps(envelope(log_id, 0, "Success", result), separators=(",", ":")).encode()




def _version() -> str:
    return __version__
