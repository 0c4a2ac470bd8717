"""The HTTP API's shapes: PaddleX's request/response models, the error envelope, readable validation errors.

Every answer of ``segzoo serve`` is PaddleX's envelope ``{"logId", "errorCode",
"errorMsg", "result"?}`` (:func:`envelope`); errors keep it with ``errorCode``
equal to the HTTP status (:func:`error_response`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, List, Optional, Tuple, Union

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

__all__ = [
    "Size",
    "InferRequest",
    "InferResult",
    "InferResponse",
    "NoResultResponse",
    "HealthResponse",
    "new_log_id",
    "envelope",
    "error_response",
    "validation_message",
]


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


def _is_json(content_type: Optional[str]) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _body_message(content_type: Optional[str]) -> str:
    """Why a body is not the JSON object: the wrong Content-Type (the usual cause), or the wrong shape."""
    if content_type is not None and _is_json(content_type):
        return 'the body must be a JSON object such as {"image": "<URL or base64>", "targetSize": null}'
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        return ("this endpoint takes a JSON body; send multipart uploads (curl -F file=@a.jpg) to "
                "POST /semantic-segmentation/upload")
    sent = f"Content-Type: {media}" if media else "no Content-Type header"
    return (f"the body was sent with {sent}, so it was not read as JSON; send the header "
            "Content-Type: application/json (curl: -H 'Content-Type: application/json' -d @body.json) "
            'with a JSON object such as {"image": "<URL or base64>"}')


def validation_message(errors: list, content_type: Optional[str] = "application/json") -> str:
    """One readable line for pydantic/FastAPI validation errors (``content_type``: the request's header)."""
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
                text = _body_message(content_type)
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
