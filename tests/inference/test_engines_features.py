"""The ONNX Runtime engine's sources and cache, ``engine="auto"``, pipelining and ``segzoo benchmark``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import segzoo
from segzoo import ConfigError, DependencyError, ExportError, InputError, ModelCard, ModelPlugin
from segzoo.inference import Predictor, RandomWeightsWarning, create_model, export_model
from segzoo.inference import auto as auto_mod
from segzoo.inference import onnx as onnx_mod
from segzoo.inference.engines import Engine
from segzoo.inference.modeldir import ModelSource
from segzoo.inference.onnx import EngineFallbackWarning, OnnxRuntimeEngine, exports_cache
from segzoo.inference.pipeline import Prefetcher

from .conftest import PointConfig, _build_point, _register, moderate_weights, shapes, write_image


@pytest.fixture(scope="module", autouse=True)
def cache_home(tmp_path_factory):
    """segzoo's cache (exports, conversions, probes) in a temporary directory for these tests."""
    old = os.environ.get("SEGZOO_HOME")
    os.environ["SEGZOO_HOME"] = str(tmp_path_factory.mktemp("segzoo_home"))
    yield Path(os.environ["SEGZOO_HOME"])
    if old is None:
        os.environ.pop("SEGZOO_HOME", None)
    else:
        os.environ["SEGZOO_HOME"] = old


def _agree(a, b) -> float:
    return float((np.asarray(a) == np.asarray(b)).mean())


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# -- ONNX Runtime from every source, and its cache -------------------------------------------------------
def test_onnx_from_an_exported_dir_converts_once_then_reuses_the_cache(tiny, make_image, monkeypatch):
    images = [make_image(s, (97, 70)) for s in (1, 2)]
    want = tiny.predictor.predict_arrays(images)
    model = create_model(tiny.name, model_dir=tiny.export_dir, engine="onnxruntime", engine_options={"cpu_threads": 2})
    assert isinstance(model.engine, OnnxRuntimeEngine) and model.engine.cpu_threads == 2
    got = model.predict_arrays(images)
    assert all(_agree(g, w) >= 0.999 for g, w in zip(got, want))
    converted = sorted(exports_cache().glob("*.onnx"))
    assert len(converted) == 1 and converted[0].stat().st_size > 10_000
    assert not list(exports_cache().glob(".*.tmp"))  # written atomically: no leftovers

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(onnx_mod, "convert_to_onnx", no_conversion)
    again = create_model(tiny.name, model_dir=tiny.export_dir, engine="onnxruntime")
    assert [_agree(a, b) for a, b in zip(again.predict_arrays(images), got)] == [1.0, 1.0]


def test_onnx_from_weights_reuses_the_conversion_of_their_export_and_paddle_its_cached_export(tiny, make_image,
                                                                                              monkeypatch):
    """tiny.weights and tiny.export_dir are one network: one conversion serves both (issue 28 item 4)."""
    import segzoo.inference.export as export_module

    image = make_image(3, (64, 90))
    want = tiny.predictor.predict_arrays([image])[0]
    create_model(tiny.name, model_dir=tiny.export_dir, engine="onnxruntime")  # converted here, or by the test above
    real_export = export_module.export_model

    def no_export(*args, **kwargs):
        raise AssertionError("the conversion of the same network should have been reused")

    monkeypatch.setattr(export_module, "export_model", no_export)
    onnx_model = create_model(tiny.name, model_dir=tiny.weights, engine="onnxruntime")
    assert onnx_model.engine.name == "onnxruntime"
    assert _agree(onnx_model.predict_arrays([image])[0], want) >= 0.999
    monkeypatch.setattr(export_module, "export_model", real_export)
    create_model(tiny.name, model_dir=tiny.weights, engine="paddle")  # exported once into the cache
    monkeypatch.setattr(export_module, "export_model", no_export)
    paddle_model = create_model(tiny.name, model_dir=tiny.weights, engine="paddle")
    assert paddle_model.engine.name == "paddle" and paddle_model.engine.onednn
    assert Path(paddle_model.engine.deploy.path).is_relative_to(exports_cache())
    assert _agree(paddle_model.predict_arrays([image])[0], want) >= 0.999


def test_onnx_from_a_model_name_with_random_weights():
    with pytest.warns(RandomWeightsWarning):
        model = create_model("SeaFormer_tiny", num_classes=3, engine="onnxruntime", device="cpu", pretrained=False)
    assert model.engine.name == "onnxruntime"
    mask = model.predict_arrays([shapes(5, (70, 50))])[0]
    assert mask.shape == (50, 70) and mask.max() < 3


FIXED_POOL = "InferTestFixedPooling"


def _build_fixed_pooling(config):
    """PP-LiteSeg-T with paddleseg's own ``nn.AdaptiveAvgPool2D`` put back (what a PaddleX export holds)."""
    import paddle

    from segzoo_plugins.ppliteseg.pooling import shape_free_pool_class

    layer = segzoo.get_registry().build_model("PP-LiteSeg-T", config)
    cls = shape_free_pool_class()
    for _name, parent in layer.named_sublayers(include_self=True):
        for key, child in list(parent._sub_layers.items()):
            if isinstance(child, cls):
                parent._sub_layers[key] = paddle.nn.AdaptiveAvgPool2D(child.bins)
    return layer


@pytest.fixture(scope="module")
def fixed_pooling(tmp_path_factory):
    """A model whose ONNX conversion needs a fixed H×W (card ``onnx_static_hw``), seeded, and a dynamic export of it."""
    import paddle

    lite = segzoo.get_registry().card("PP-LiteSeg-T")
    card = ModelCard(
        name=FIXED_POOL, family="inference-tests", dataset="none", num_classes=3, size_divisor=32,
        export=segzoo.ExportSupport(onnx_static_hw=True, note="adaptive pooling with fixed kernels"),
        config_class=lite.config_class,
    )
    name = _register(ModelPlugin(card, build=_build_fixed_pooling))
    registry = segzoo.get_registry()
    config = registry.config(name, num_classes=3)
    paddle.seed(0)
    layer = registry.build_model(name, config)
    moderate_weights(layer, seed=0, scale=2.0)
    layer.eval()
    export = export_model(name, tmp_path_factory.mktemp("fixed") / "exp", config=config, layer=layer)
    yield config, layer, export
    registry.unregister(name)


def test_pp_liteseg_converts_once_for_every_input_size(tmp_path):
    """The default engine runs five image sizes in a row on ONNX Runtime after one export and one conversion."""
    import paddle

    from segzoo.weights import save_weights

    registry = segzoo.get_registry()
    config = registry.config("PP-LiteSeg-T", num_classes=3)
    paddle.seed(1)
    layer = registry.build_model("PP-LiteSeg-T", config)
    moderate_weights(layer, seed=1, scale=2.0)
    layer.eval()
    weights = save_weights(layer, tmp_path / "model.pdparams")
    dygraph = Predictor.from_model("PP-LiteSeg-T", config, layer)
    before = set(exports_cache().glob("*.onnx")) if exports_cache().is_dir() else set()
    model = create_model("PP-LiteSeg-T", model_dir=weights, device="cpu")  # no engine=: the default
    assert model.engine.name == "openvino"
    for i, size in enumerate(((250, 120), (83, 61), (480, 360), (333, 222), (97, 129))):
        image = shapes(20 + i, size)
        assert _agree(model.predict_arrays([image])[0], dygraph.predict_arrays([image])[0]) >= 0.999, size
    assert list(model.engine._sessions) == [None]  # one converted model takes every size
    # OpenVINO compiles the first size static and runs the sizes met once on its dynamic model (no new conversion)
    session = model.engine._sessions[None]
    assert len(session.shapes) == 1 and session.dynamic == ["LATENCY"], (session.shapes, session.dynamic)
    converted = set(exports_cache().glob("*.onnx")) - before
    assert len(converted) == 1, converted


@pytest.mark.parametrize("yml", ["paddlex", "segzoo", "paddlex, a wrong rewrite"])
def test_a_paddlex_pp_liteseg_export_runs_on_onnx_runtime_after_one_rebuild(tmp_path, caplog, monkeypatch, yml):
    """PaddleX's PP-LiteSeg program pools adaptively and does not convert with a dynamic H×W: the default engine
    rewrites its pooling ops shape-free once (the card's ``program_rewrite``), converts that, and runs every size
    on ONNX Runtime; where the rewrite does not work, it loads the weights into the plugin's shape-free network
    instead. With PaddleX's inference.yml (the card's ``rebuild_exports``) the doomed conversion is not even
    tried; with a segzoo section the program is converted first, and rewritten when that fails."""
    import paddle
    import yaml

    from segzoo.inference import export_cache, rebuild

    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "home"))  # its own cache: the other tests count theirs
    rewrite_fails = "wrong" in yml
    if rewrite_fails:  # pools mirrored windows: it converts, and the check against PaddleX's program rejects it
        from segzoo_plugins.ppliteseg import pooling

        right, pool_matrix = pooling.make_program_pooling_shape_free, pooling._pool_matrix

        def wrong(program):
            with monkeypatch.context() as m:
                m.setattr(pooling, "_pool_matrix", lambda *args: pool_matrix(*args).flip(axis=1))
                return right(program)

        monkeypatch.setattr(pooling, "make_program_pooling_shape_free", wrong)
    registry = segzoo.get_registry()
    config = registry.config("PP-LiteSeg-T", num_classes=4)
    paddle.seed(2)
    layer = _build_fixed_pooling(config)
    moderate_weights(layer, seed=2, scale=2.0)
    layer.eval()
    export = export_model("PP-LiteSeg-T", tmp_path / "paddlex_style", config=config, layer=layer)
    if yml.startswith("paddlex"):
        data = yaml.safe_load((export / "inference.yml").read_text())
        del data["segzoo"]  # PaddleX writes no segzoo section
        (export / "inference.yml").write_text(yaml.safe_dump(data))
    before = set(exports_cache().glob("*.onnx"))
    with caplog.at_level("INFO", logger="segzoo"), warnings.catch_warnings():
        warnings.simplefilter("error", EngineFallbackWarning)  # no fallback to the slow engine
        model = create_model("PP-LiteSeg-T", model_dir=export, device="cpu")
    assert model.engine.name == "openvino"
    assert "make_program_pooling_shape_free rewrote 3 op(s)" in caplog.text
    assert ("rewritten program is not usable" in caplog.text) == rewrite_fails, caplog.text
    assert ("export's weights instead" in caplog.text) == rewrite_fails, caplog.text  # the network rebuild
    tried = "Adaptive only support static input shape" in caplog.text or "converting to ONNX once" in caplog.text
    assert tried == (yml == "segzoo"), caplog.text
    reference = create_model("PP-LiteSeg-T", model_dir=export, engine="paddle")  # the program itself
    for i, size in enumerate(((256, 128), (83, 61), (333, 222))):  # 83×61 and 333×222: no multiple of the bins
        image = shapes(40 + i, size)
        assert _agree(model.predict_arrays([image])[0], reference.predict_arrays([image])[0]) >= 0.999, size
    assert len(set(exports_cache().glob("*.onnx")) - before) == 1

    def no_conversion(*args, **kwargs):
        raise AssertionError("the rebuilt conversion should have been reused")

    monkeypatch.setattr(rebuild, "_rewritten_export", no_conversion)
    monkeypatch.setattr(rebuild, "network_from_export", no_conversion)
    monkeypatch.setattr(export_cache, "convert_to_onnx", no_conversion)
    again = create_model("PP-LiteSeg-T", model_dir=export, engine="onnxruntime")
    assert again.engine.name == "onnxruntime"


def test_weights_of_another_network_are_not_loaded_from_an_export(tmp_path):
    import paddle

    from segzoo.models import network_from_export

    registry = segzoo.get_registry()
    config = registry.config("PP-LiteSeg-T", num_classes=4)
    paddle.seed(3)
    export = export_model("PP-LiteSeg-T", tmp_path / "t", config=config, layer=_build_fixed_pooling(config))
    layer, fitted = network_from_export("PP-LiteSeg-T", registry.config("PP-LiteSeg-T"), export / "inference")
    assert fitted.num_classes == 4  # the class count comes from the export
    with pytest.raises(segzoo.WeightsError, match=r"inference\.json does not (hold a|fit) PP-LiteSeg-B"):
        network_from_export("PP-LiteSeg-B", registry.config("PP-LiteSeg-B", num_classes=4), export / "inference")


def test_static_hw_model_converts_per_size_and_checks_each_conversion(fixed_pooling, caplog):
    config, layer, _ = fixed_pooling
    dygraph = Predictor.from_model(FIXED_POOL, config, layer)
    source = ModelSource("weights")
    engine = onnx_mod.make_onnx_engine(FIXED_POOL, config, source, "cpu", {"layer": layer})
    model = Predictor(FIXED_POOL, config, engine, source, layer=layer)
    # 250×120 and 128×128, fed at their own size: their 1/32 maps (8×4, 4×4) are multiples of the bins (1, 2, 4),
    # where paddle2onnx's fixed pooling equals the adaptive one, so ONNX Runtime runs them
    for size in ((250, 120), (128, 128)):
        image = shapes(7, size)
        assert _agree(model.predict_arrays([image])[0], dygraph.predict_arrays([image])[0]) >= 0.999
    assert set(engine._sessions) == {(120, 250), (128, 128)}
    assert not any(isinstance(s, Engine) for s in engine._sessions.values())
    # 83×61 (a 3×2 map): paddle2onnx's pooling is not the adaptive one there; the check catches it, Paddle Inference runs it
    image = shapes(8, (83, 61))
    with caplog.at_level("WARNING", logger="segzoo"):
        got = model.predict_arrays([image])[0]
    assert isinstance(engine._sessions[(61, 83)], Engine) and engine._sessions[(61, 83)].name == "paddle"
    assert "is not usable" in caplog.text and "run on Paddle Inference instead" in caplog.text
    assert _agree(got, dygraph.predict_arrays([image])[0]) >= 0.999
    assert len(list(exports_cache().glob("*.onnx.failed"))) == 1  # remembered: not converted again


def test_static_hw_export_with_a_dynamic_shape_falls_back_to_paddle(fixed_pooling):
    _, _, export = fixed_pooling
    with pytest.warns(EngineFallbackWarning, match=r"dynamic H×W.*--input-shape -1,3,H,W.*paddle engine instead"):
        model = create_model(FIXED_POOL, model_dir=export, engine="onnxruntime")
    assert model.engine.name == "paddle"
    assert model.predict_arrays([shapes(9, (60, 40))])[0].shape == (40, 60)


def test_a_conversion_paddle2onnx_aborts_on_is_an_error_not_a_crash(fixed_pooling, tmp_path):
    _, _, export = fixed_pooling
    with pytest.raises(ExportError, match=r"not usable: .*Adaptive only support static input shape"):
        onnx_mod.convert_to_onnx(export / "inference.json", export / "inference.pdiparams", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def no_onnx_model():
    card = ModelCard(
        name="InferTestNoOnnx",
        family="inference-tests",
        dataset="none",
        num_classes=3,
        export=segzoo.ExportSupport(onnx=False, note="the test network has no ONNX form. Really"),
        config_class=PointConfig,
    )
    name = _register(ModelPlugin(card, build=_build_point))
    yield name
    segzoo.get_registry().unregister(name)


def test_a_card_without_onnx_falls_back_to_the_default_engine_with_one_warning(no_onnx_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = create_model(no_onnx_model, engine="onnxruntime", device="cpu", pretrained=False)
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, EngineFallbackWarning)]
    assert fallbacks == [
        "InferTestNoOnnx: ONNX is not supported (the test network has no ONNX form); "
        "running it on the dygraph engine instead"
    ]
    assert model.engine.name == "dygraph"
    assert model.predict_arrays([shapes(1, (20, 20))])[0].shape == (20, 20)


def test_device_and_option_errors_name_the_fix(tiny):
    with pytest.raises(DependencyError, match="onnxruntime-gpu"):
        create_model(tiny.name, model_dir=tiny.export_dir, engine="onnxruntime", device="gpu")
    with pytest.raises(ConfigError, match=r"tensorrt / precision='fp16' need device='gpu'"):
        create_model(tiny.name, model_dir=tiny.export_dir, engine="paddle", engine_options={"tensorrt": True}, device="cpu")
    with pytest.raises(ConfigError, match=r"output_op 'softmax'"):
        create_model(tiny.name, model_dir=tiny.weights, engine="onnxruntime", engine_options={"output_op": "softmax"})


# -- engine="auto" -------------------------------------------------------------------------------------
def test_auto_probes_once_per_machine_and_keeps_the_fastest(point_model, monkeypatch):
    model = _quiet(create_model, point_model, engine="auto", device="cpu", pretrained=False)
    data = json.loads(auto_mod.probes_file().read_text())
    (key, entry), = [(k, v) for k, v in data.items() if k.startswith(point_model + "|")]
    seconds = entry["seconds"]
    assert set(seconds) == {"openvino", "onnxruntime", "paddle", "dygraph"}
    assert all(isinstance(v, float) and v > 0 for v in seconds.values()), seconds
    assert entry["engine"] == min(seconds, key=seconds.get) == model.engine.name
    machine = entry["machine"]
    assert machine["cores"] == os.cpu_count() and machine["cpu"] and machine["device"] == "cpu"
    assert machine["threads"] >= 1 and "paddlepaddle" in machine["versions"] and "onnxruntime" in machine["versions"]
    assert model.predict_arrays([shapes(2, (40, 30))])[0].shape == (30, 40)

    def no_probe(*args, **kwargs):
        raise AssertionError("the stored verdict should have been used")

    monkeypatch.setattr(auto_mod, "time_engine", no_probe)
    again = _quiet(create_model, point_model, engine="auto", device="cpu", pretrained=False)
    assert again.engine.name == entry["engine"]
    # another thread count is another machine setting: it probes again
    with pytest.raises(AssertionError, match="stored verdict"):
        _quiet(create_model, point_model, engine="auto", device="cpu", pretrained=False, engine_options={"cpu_threads": 1})
    monkeypatch.undo()
    calls = []
    real = auto_mod.time_engine
    monkeypatch.setattr(auto_mod, "time_engine", lambda e, b: calls.append(e.name) or real(e, b))
    _quiet(create_model, point_model, engine="auto", device="cpu", pretrained=False, engine_options={"reprobe": True, "candidates": ["dygraph", "onnxruntime"]})
    assert calls == ["dygraph", "onnxruntime"]  # the candidates given, in their order


# -- pipelining -----------------------------------------------------------------------------------------
def test_prefetcher_keeps_order_bounds_read_ahead_and_stops_early():
    pulled = []
    closed = threading.Event()

    def source():
        try:
            for i in range(50):
                pulled.append(i)
                yield i
        finally:
            closed.set()

    pf = Prefetcher(source(), lambda b: b * 10, depth=2, workers=1)
    it = iter(pf)
    assert next(it) == (0, 0)
    time.sleep(0.3)  # the reader runs ahead, but only `depth` batches (+ the one waiting to be queued)
    assert len(pulled) <= 1 + 2 + 1
    assert [next(it) for _ in range(3)] == [(1, 10), (2, 20), (3, 30)]
    it.close()  # the consumer stops early
    assert closed.wait(5) and not pf._thread.is_alive()
    assert len(pulled) < 50


def test_prefetcher_raises_a_reading_error_at_its_place():
    def source():
        yield from (0, 1, 2)
        raise InputError("cannot read images/bad.png")

    got = []
    with pytest.raises(InputError, match="bad.png"):
        for batch, ready in Prefetcher(source(), lambda b: -b, depth=2):
            got.append(ready)
    assert got == [0, -1, -2]


def test_predict_over_a_directory_is_the_same_with_and_without_pipelining(point, tmp_path):
    for i, size in enumerate([(40, 30), (33, 47), (40, 30), (64, 20), (21, 21), (40, 30), (50, 50)]):
        write_image(tmp_path / "imgs" / f"{i:02d}.png", shapes(20 + i, size))
    serial = list(point.predict(tmp_path / "imgs", batch_size=2, prefetch=0))
    piped = list(point.predict(tmp_path / "imgs", batch_size=2, prefetch=3))
    assert [r.input_path for r in piped] == [r.input_path for r in serial] == sorted(r.input_path for r in serial)
    assert all(np.array_equal(a.pred, b.pred) for a, b in zip(piped, serial))
    # an unreadable file: the earlier results come first, then the error names the file, both ways
    (tmp_path / "imgs" / "04b.png").write_bytes(b"not a png at all")
    for prefetch in (0, 2):
        seen = []
        with pytest.raises(InputError, match="04b.png"):
            for r in point.predict(tmp_path / "imgs", batch_size=1, prefetch=prefetch):
                seen.append(Path(r.input_path).name)
        assert seen == ["00.png", "01.png", "02.png", "03.png", "04.png"]
    with pytest.raises(ConfigError, match="prefetch"):
        point.predict(tmp_path / "imgs", prefetch=-1)


def test_a_single_image_is_read_in_the_calling_thread(point, tmp_path, monkeypatch):
    from segzoo.inference import predictor as predictor_mod

    write_image(tmp_path / "one.png", shapes(3, (40, 30)))
    write_image(tmp_path / "dir" / "a.png", shapes(4, (40, 30)))
    started = []
    real = predictor_mod.Prefetcher
    monkeypatch.setattr(predictor_mod, "Prefetcher", lambda *a, **k: started.append(1) or real(*a, **k))
    for single in (tmp_path / "one.png", str(tmp_path / "one.png"), shapes(3, (40, 30))):
        (result,) = point.predict(single)
        assert result.pred.shape == (30, 40)
    assert started == []  # nothing to read ahead of one image: no reader thread
    assert len(list(point.predict(tmp_path / "dir"))) == 1 and started == [1]  # a directory reads ahead


class _SlowPrepPlugin(ModelPlugin):
    def normalize(self, config, image):
        time.sleep(0.08)  # stands for decoding and normalising a large image
        return super().normalize(config, image)


class _SlowEngine(Engine):
    name = "slow"

    def __init__(self, inner):
        self.inner, self.outputs = inner, inner.outputs

    def run(self, batch):
        time.sleep(0.08)  # stands for a model that takes as long as the preparation
        return self.inner.run(batch)


def test_pipelining_overlaps_preparation_with_inference(tmp_path):
    card = ModelCard(name="InferTestSlowPrep", family="inference-tests", dataset="none", num_classes=3,
                     config_class=PointConfig)
    name = _register(_SlowPrepPlugin(card, build=_build_point))
    try:
        model = _quiet(create_model, name, device="cpu", pretrained=False)
        model.engine = _SlowEngine(model.engine)
        for i in range(8):
            write_image(tmp_path / f"{i}.png", shapes(i, (32, 32)))
        times = {}
        for prefetch in (0, 2, 0, 2):
            t0 = time.perf_counter()
            assert len(list(model.predict(tmp_path, prefetch=prefetch))) == 8
            times[prefetch] = min(times.get(prefetch, 1e9), time.perf_counter() - t0)
        # serial: 8 × (0.08 + 0.08) s; pipelined: about 8 × 0.08 s
        assert times[2] < 0.75 * times[0], times
    finally:
        segzoo.get_registry().unregister(name)


# -- segzoo benchmark --------------------------------------------------------------------------------------
def _segzoo(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "segzoo.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_benchmark_command_measures_each_engine_in_its_own_process(tmp_path):
    out = tmp_path / "bench.json"
    proc = _segzoo("benchmark", "--model", "SeaFormer_tiny", "--engines", "dygraph,onnxruntime", "--size", "64x64",
                   "--repeat", "2", "--warmup", "1", "--images", "3", "--threads", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "latency ms" in proc.stdout and "SeaFormer_tiny, 2 threads, random seeded weights" in proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [(r["engine"], r["size"], r["engine_used"]) for r in rows] == [
        ("dygraph", "64x64", "dygraph"), ("onnxruntime", "64x64", "onnxruntime")]
    for r in rows:
        assert r["latency_s"] > 0 and len(r["latencies_s"]) == 2
        assert r["throughput_ips"] > 0 and r["throughput_serial_ips"] > 0 and r["peak_rss_mb"] > 50


def test_benchmark_command_user_errors_are_one_line():
    proc = _segzoo("benchmark", "--model", "SeaFormer_tiny", "--engines", "tensorflow")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "segzoo benchmark: error: --engines 'tensorflow': unknown ['tensorflow']; choose from auto, dygraph, onnxruntime, openvino, paddle"
    ]
    proc = _segzoo("benchmark", "--model", "SeaFormer_tiny", "--size", "12")
    assert proc.returncode == 2 and "--size '12': give WxH" in proc.stderr and "Traceback" not in proc.stderr
    proc = _segzoo("benchmark", "--model", "SeaFormer_tinny")
    assert proc.returncode == 2 and "SeaFormer_tiny" in proc.stderr and "Traceback" not in proc.stderr
