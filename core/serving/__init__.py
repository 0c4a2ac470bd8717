"""The HTTP service: ``segzoo serve`` (FastAPI + uvicorn), PaddleX's semantic-segmentation API.

>>> from segzoo.serving import ServeSettings, create_app, load_predictor
>>> settings = ServeSettings(max_batch_size=8)
>>> app = create_app(load_predictor(settings), settings)   # an ASGI app; uvicorn runs it

Endpoints (the full schema is served at ``/openapi.json``, browsable at ``/docs`` and ``/redoc``,
whose Swagger UI and ReDoc files the app serves itself from ``fastapi-offline``: they work offline):

``GET /``
    a page to try the model in a browser: choose, drop or paste an image or a URL; the input, the
    overlay (opacity slider) and the colour mask; a legend with each class's name, colour and share of
    the pixels; target size, latency, the mask PNG to download. One self-contained HTML file
    (``static/index.html``: inline CSS and JS, no CDN) that calls the endpoints below.

``POST /semantic-segmentation``
    JSON ``{"image": <http(s) URL or base64 image bytes>, "targetSize": -1 | n | [w, h] | null,
    "visualize": true | false | null}`` (PaddleX's ``InferRequest``), answered with PaddleX's
    envelope ``{"logId", "errorCode": 0, "errorMsg": "Success", "result": {"labelMap":
    [H*W ints, row-major], "size": [H, W], "image": <base64 PNG of the colour mask> | null}}``.
``POST /semantic-segmentation/upload``
    the same from a ``multipart/form-data`` upload: the image in the ``file`` field, optional
    form fields ``targetSize`` (``512``, ``512,256`` or ``-1``) and ``visualize``.
``?format=png`` or ``Accept: image/png`` on either
    answers the label map itself as a PNG: an 8-bit palette PNG whose pixel values are the
    class ids (PIL/``np.asarray`` give the ids, image viewers show the VOC colours); 16-bit
    grayscale for models with more than 256 classes. ``X-Log-Id`` carries the log id.
``GET /health``
    ``{"logId", "errorCode": 0, "errorMsg": "Healthy", "result": {model, numClasses, classNames
    (null when unknown), pid, counters of requests, batches and the mean batch size}}``.

Every error keeps the envelope (``result`` absent) with ``errorCode`` equal to the HTTP status:
400 unreadable input (bad base64, not an image, a URL that cannot or may not be fetched), 404/405
unknown path or method, 413 body or image too large, 422 invalid JSON or fields, 503 queue full,
500 an internal error (generic message; the details are logged with the ``logId``).

Requests are batched dynamically (:class:`~segzoo.serving.batcher.DynamicBatcher`): up to
``max_batch_size`` images, waiting at most ``batch_timeout_ms`` for more, run by one inference
thread per process through :meth:`~segzoo.inference.predictor.Predictor.predict_arrays`.
Importing this package imports neither paddle nor FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "ServeSettings": ".settings",
    "create_app": ".app",
    "app_from_env": ".server",
    "DynamicBatcher": ".batcher",
    "BatcherStats": ".batcher",
    "ServeError": ".media",
    "load_predictor": ".server",
    "serve": ".server",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app
    from .batcher import BatcherStats, DynamicBatcher
    from .media import ServeError
    from .server import app_from_env, load_predictor, serve
    from .settings import ServeSettings
