"""The app in-process (FastAPI's TestClient): what a failing model does to an answer."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from segzoo.errors import InputError
from segzoo.serving import ServeSettings, create_app

from .conftest import b64, drawn, encode


class FailingPredictor:
    """A predictor whose model call fails the way a bug or an engine crash would."""

    model_name = "SeaFormer_tiny"
    num_classes = 4
    engine = None
    layer = None

    def __init__(self, exc: Exception):
        self.exc = exc

    def predict_arrays(self, images, batch_size=1, target_size=None):
        raise self.exc


def test_an_internal_error_answers_500_without_details(caplog):
    app = create_app(FailingPredictor(RuntimeError("secret detail at /srv/models/x.pdparams")), ServeSettings())
    with caplog.at_level(logging.ERROR, logger="segzoo.serving"), TestClient(app) as client:
        r = client.post("/semantic-segmentation", json={"image": b64(encode(drawn(0)))})
    assert r.status_code == 500
    body = r.json()
    assert body["errorCode"] == 500 and "result" not in body
    assert "secret" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    assert body["logId"] in body["errorMsg"] and r.headers["x-log-id"] == body["logId"]
    # the details are in the server's log, under the same logId
    logged = "\n".join(rec.getMessage() + str(rec.exc_info) for rec in caplog.records)
    assert body["logId"] in logged and "secret detail" in logged


def test_a_user_error_of_the_model_is_a_400():
    app = create_app(FailingPredictor(InputError("image 0 cannot be predicted: reason")), ServeSettings())
    with TestClient(app) as client:
        r = client.post("/semantic-segmentation", json={"image": b64(encode(drawn(0)))})
        health = client.get("/health").json()["result"]
    assert r.status_code == 400 and r.json()["errorCode"] == 400
    assert "cannot be predicted" in r.json()["errorMsg"]
    assert health["errors"] == {"400": 1} and health["failedImages"] == 1


def test_result_labels_are_the_predictors(reference):
    img = drawn(3, (72, 40))
    with TestClient(create_app(reference, ServeSettings(visualize=False))) as client:
        r = client.post("/semantic-segmentation", json={"image": b64(encode(img))})
    res = r.json()["result"]
    assert res["size"] == [40, 72] and res["image"] is None
    want = reference.predict_arrays([img])[0]
    assert np.array_equal(np.asarray(res["labelMap"]).reshape(40, 72), want)


# -- the service's own messages (issue 28, item 15) ------------------------------------------------------
def test_a_refused_loopback_url_names_the_field_once():
    app = create_app(FailingPredictor(RuntimeError("never reached")), ServeSettings())  # private URLs refused
    with TestClient(app) as client:
        for url in ("http://127.0.0.1:9/a.jpg", "http://localhost:9/a.jpg"):
            msg = client.post("/semantic-segmentation", json={"image": url}).json()["errorMsg"]
            assert msg.startswith(f"image: {url} points to ") and msg.count("image:") == 1, msg
            assert "--allow-private-urls" in msg


@pytest.mark.parametrize(
    "headers, fragments",
    [
        ({}, ["no Content-Type header", "Content-Type: application/json"]),
        ({"Content-Type": "application/x-www-form-urlencoded"},  # what `curl -d` sends without -H
         ["Content-Type: application/x-www-form-urlencoded", "send the header Content-Type: application/json"]),
        ({"Content-Type": "text/plain"}, ["Content-Type: text/plain", "Content-Type: application/json"]),
        ({"Content-Type": "multipart/form-data; boundary=x"}, ["/semantic-segmentation/upload"]),
        ({"Content-Type": "application/json"}, ["must be a JSON object"]),
    ],
)
def test_a_json_body_without_the_json_content_type_is_told_about_the_header(headers, fragments):
    body = b'{"image": "aGVsbG8="}' if "json" not in str(headers) else b'["not", "an object"]'
    with TestClient(create_app(FailingPredictor(RuntimeError("never reached")), ServeSettings())) as client:
        r = client.post("/semantic-segmentation", content=body, headers=headers)
    assert r.status_code == 422 and r.json()["errorCode"] == 422
    for fragment in fragments:
        assert fragment in r.json()["errorMsg"], r.json()["errorMsg"]


# -- /docs works offline (issue 28, item 8) and the page at / ------------------------------------------
def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


def test_docs_load_swagger_ui_from_the_service_itself():
    with TestClient(create_app(FailingPredictor(RuntimeError("never reached")), ServeSettings())) as client:
        for page, assets in (("/docs", ("swagger-ui-bundle.js", "swagger-ui.css")), ("/redoc", ("redoc.standalone.js",))):
            html = client.get(page).text
            refs = _references(html)
            assert refs and all(ref.startswith("/") for ref in refs), refs  # nothing from a CDN
            for name in assets:
                (ref,) = [r for r in refs if r.endswith(name)]
                r = client.get(ref)
                assert r.status_code == 200 and len(r.content) > 100_000, (ref, r.status_code)


def test_the_page_is_one_self_contained_file():
    predictor = FailingPredictor(RuntimeError("never reached"))
    predictor.class_names = ["background", "circle", "rectangle", "triangle"]
    with TestClient(create_app(predictor, ServeSettings())) as client:
        r = client.get("/")
        health = client.get("/health").json()["result"]
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<script src" not in r.text and "<link" not in r.text and "@import" not in r.text  # all inline
    assert [ref for ref in _references(r.text) if "//" in ref] == []  # no absolute URL: no CDN
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    for endpoint in ("semantic-segmentation/upload", '"semantic-segmentation"', "health"):
        assert endpoint in r.text
    assert health["classNames"] == predictor.class_names
