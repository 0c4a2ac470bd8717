"""Measurement workers of the peers: paddleseg dygraph and PaddleX's predictor.

Run by ``benchmarks/run.py`` as ``python benchmarks/peers.py --worker SPEC.json``
(PaddleX's with the interpreter of ``benchmarks/.venv-paddlex``); each prints
one ``{"result": ...}`` line, like ``segzoo.inference.bench``'s worker, and
times the same things: one image file from path to label map (median of
``repeat`` after ``warmup``), then a directory of images, then its peak RSS.

* **paddleseg**: what a paddleseg 2.8 user runs (``tools/predict.py``'s
  ``paddleseg.core.predict``): paddleseg's own model class built with the same
  arguments as segzoo's plugin, the same ``.pdparams`` loaded with
  ``paddleseg.utils.utils.load_entire_model``, ``paddleseg.transforms``
  (``Compose([Normalize()])``: reads with OpenCV, BGR→RGB, normalises) and
  ``paddleseg.core.infer.inference`` + argmax, one image at a time.
* **paddlex**: ``paddlex.create_model(model_name, model_dir=<segzoo's export>,
  device="cpu", **kwargs)`` and ``predict(path)``, offline
  (``PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK``), with the spec's
  ``engine_config`` (none: PaddleX's default mode).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

# segzoo.inference.bench imports nothing heavy at module level (no paddle, no segzoo plugins)
from segzoo.inference.bench import measure, peak_rss_mb

#: paddleseg 2.8.0 classes and arguments of the models benchmarked (the same as segzoo's plugins)
PADDLESEG_MODELS = {
    "PP-LiteSeg-T": ("PPLiteSeg", "STDC1", {"arm_out_chs": [32, 64, 128], "seg_head_inter_chs": [32, 64, 64]}),
    "PP-LiteSeg-B": ("PPLiteSeg", "STDC2", {}),
    "SegFormer-B0": ("SegFormer", "MixVisionTransformer_B0", {"embedding_dim": 256}),
    "SegFormer-B1": ("SegFormer", "MixVisionTransformer_B1", {"embedding_dim": 256}),
    "SegFormer-B2": ("SegFormer", "MixVisionTransformer_B2", {"embedding_dim": 768}),
    "OCRNet_HRNet-W18": ("OCRNet", "HRNet_W18", {"backbone_indices": [0]}),
    "OCRNet_HRNet-W48": ("OCRNet", "HRNet_W48", {"backbone_indices": [0]}),
}


def _emit(result: dict) -> None:
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    sys.stdout.write("\n" + json.dumps({"result": result}) + "\n")
    sys.stdout.flush()


def _save_mask(path, mask) -> None:
    if path:
        import numpy as np

        np.save(path, np.asarray(mask).astype(np.int32))


def _files(directory: str) -> list:
    return sorted(str(p) for p in Path(directory).iterdir() if p.suffix.lower() in (".jpg", ".png"))


def paddleseg_worker(spec: dict) -> dict:
    import numpy as np
    import paddle
    import paddleseg.transforms as T
    from paddleseg import models
    from paddleseg.core import infer
    from paddleseg.models import backbones
    from paddleseg.utils import utils

    if spec["model"] not in PADDLESEG_MODELS:
        return {"error": f"n/a: {spec['model']} is not in paddleseg 2.8.0"}
    cls, backbone, kwargs = PADDLESEG_MODELS[spec["model"]]
    paddle.set_device("cpu")
    t0 = time.perf_counter()
    if cls == "SegFormer":
        from paddleseg.models.backbones import mix_transformer

        net = getattr(mix_transformer, backbone)()
    else:
        net = getattr(backbones, backbone)()
    model = getattr(models, cls)(num_classes=spec["num_classes"], backbone=net, **kwargs)
    utils.load_entire_model(model, spec["weights"])
    model.eval()
    transforms = T.Compose([T.Normalize()])
    load_s = time.perf_counter() - t0

    def one(path):
        data = transforms({"img": path})
        im = paddle.to_tensor(data["img"][np.newaxis, ...])
        with paddle.no_grad():
            pred, _ = infer.inference(model, im, trans_info=data["trans_info"], is_slide=False)
        return pred.numpy().squeeze().astype("uint8")

    def directory(path, prefetch):  # paddleseg predicts one image after the other: no pipelining
        n = 0
        for f in _files(path):
            one(f)
            n += 1
        return n

    _save_mask(spec.get("mask_out"), one(spec["image"]))
    out = measure(one, spec["image"], spec["repeat"], spec["warmup"], directory, spec.get("images_dir"), (0,))
    out["throughput_ips"] = out.pop("throughput_serial_ips", None)
    out["load_s"] = load_s
    return out


def paddlex_worker(spec: dict) -> dict:
    import numpy as np

    os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
    from paddlex import create_model

    kwargs = {}
    if spec.get("engine_config"):
        kwargs["engine_config"] = spec["engine_config"]
    t0 = time.perf_counter()
    model = create_model(model_name=spec["model"], model_dir=spec["model_dir"], device="cpu", **kwargs)
    load_s = time.perf_counter() - t0

    def one(path):
        return np.asarray(list(model.predict(path))[0]["pred"]).squeeze()

    def directory(path, prefetch):
        return sum(1 for _ in model.predict(path, batch_size=1))

    _save_mask(spec.get("mask_out"), one(spec["image"]))
    out = measure(one, spec["image"], spec["repeat"], spec["warmup"], directory, spec.get("images_dir"), (0,))
    out["throughput_ips"] = out.pop("throughput_serial_ips", None)
    out["load_s"] = load_s
    return out


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.worker).read_text())
    try:
        result = {"paddleseg": paddleseg_worker, "paddlex": paddlex_worker}[spec["kind"]](spec)
    except Exception as exc:  # a crash of the peer is a result to report, not to hide
        lines = str(exc).strip().splitlines()
        result = {"error": f"crashed: {type(exc).__name__}: {lines[0] if lines else ''}"[:400]}
        traceback.print_exc()
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
