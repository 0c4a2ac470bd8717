"""The app in-process (FastAPI's TestClient): what a failing model does to an answer."""

from __future__ import annotations

import logging

import numpy as np
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
