"""Which compiled OpenVINO model runs each input size: the static-or-dynamic policy, kept memory and parallel requests.

Images are fed at their own size, so a folder or a service meets many input
shapes. OpenVINO's CPU plugin runs a model compiled for one static shape
faster than the same model with a dynamic H×W, by a factor that depends on
the model (measured on 2 cores: PP-LiteSeg-T 1.04–1.06×, SegFormer-B0
1.8–2.1×), but each static compile costs 0.2–0.9 s. So:

* **Rent or buy, per shape** (:class:`ShapePolicy`). The first shape of a
  mode is compiled static (a single image costs one compile either way). Any
  other shape runs on the one dynamic model until the time it has lost there
  (its run times × (1 − 1/ratio)) reaches the measured cost of a compile; then
  it gets its own static compile. The ratio is measured on the shapes that
  ran both ways. A model whose ratio is near 1 (PP-LiteSeg-T) thus compiles
  at most one shape more than the first; a model twice as
  fast static (SegFormer-B0) compiles the shapes it meets a few times. Never
  more than about twice the best choice in hindsight, whatever the sizes.
* **fp32 only.** The dynamic model gives a static compile's bytes in fp32
  (checked on PP-LiteSeg-T, SegFormer-B0 and SeaFormer_tiny), not in bf16
  (99.7–99.9 % of the pixels): other precisions compile every shape static,
  which THROUGHPUT and LATENCY run to the same bytes.
* **Compiled shapes kept**: the last :data:`MAX_SHAPES` static ones in memory
  (fewer for big models, :data:`SHAPES_WEIGHTS_MB`); every compiled model in
  OpenVINO's ``CACHE_DIR`` under segzoo's cache (``<cache>/openvino``, at most
  :data:`COMPILED_CACHE_MB`), so a later process imports it in about a third
  of the compile time.
* **Memory returns**: before each call the compiled models that ran in the
  last one but will not in this one release their intermediate buffers (so a
  folder holds the buffers of the shapes of one call only), a dynamic model unused for a while
  (:data:`DYNAMIC_IDLE`) is dropped, and the C heap is trimmed; oneDNN's
  process-wide primitive cache and the dynamic model's per-shape cache are
  bounded (:data:`PRIMITIVE_CACHE_CAPACITY`, :data:`RUNTIME_CACHE_CAPACITY`).
  Without that, 48 distinct sizes left ``segzoo serve`` of PP-LiteSeg-T
  300–600 MB above its one-size level for good; with it, 40–60 MB once the
  dynamic model is dropped.
* **Parallel requests** (:meth:`CompiledShapes.run_many`): several
  independent images run at once on models compiled with OpenVINO's
  THROUGHPUT hint (one stream per core or so, an ``AsyncInferQueue`` each, at
  most :attr:`CompiledShapes.requests` in flight in all); a single image, and
  any image over :data:`PARALLEL_MAX_PIXELS` (two of them would hold two sets
  of buffers), runs on LATENCY-compiled models, all cores on it. Both give the same bytes
  (checked in ``tests/inference/test_openvino_many_sizes.py``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import WeightsError
from ..paths import cache_dir

log = logging.getLogger("segzoo")

#: compiled static shapes an engine keeps (least recently used dropped first): a folder of photos from a few cameras
MAX_SHAPES = 8
#: megabytes of weights the compiled shapes may hold together (each compiled model repacks its own copy):
#: a model of 340 MB (SegFormer-B5) keeps 3 shapes, a small one :data:`MAX_SHAPES`; never fewer than 2
SHAPES_WEIGHTS_MB = 1024
#: oneDNN's process-wide cache of JIT-compiled kernels, in entries (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, set unless
#: the environment sets it): its default of 1024 kept the kernels of every shape met (PP-LiteSeg-T, 64 sizes:
#: +115 MB for good); 64 keeps +40-60 MB, at the same speed (the dynamic model keeps its shapes' kernels itself)
PRIMITIVE_CACHE_CAPACITY = 64
#: shapes whose prepared kernels the dynamic compiled model keeps (OpenVINO's default: 5000)
RUNTIME_CACHE_CAPACITY = 16
#: megabytes of compiled models kept on disk in OpenVINO's ``CACHE_DIR`` (``<segzoo cache>/openvino``)
COMPILED_CACHE_MB = 2048
#: a dynamic compiled model unused for this many calls and seconds is dropped (PP-LiteSeg-T's THROUGHPUT one held
#: 160 MB after its buffers were released); it comes back from the compiled cache when a new size does
DYNAMIC_IDLE = (4, 5.0)
#: images larger than this run one at a time even in :meth:`CompiledShapes.run_many`: two 1920×1080 images in
#: flight held two sets of buffers (a folder up to 1920×1080 with PP-LiteSeg-T: peak RSS 916 -> 1700 MB)
PARALLEL_MAX_PIXELS = 1_000_000
#: the two ways a compiled model runs: one image on every core, or one request per stream
LATENCY, THROUGHPUT = "LATENCY", "THROUGHPUT"


def bound_primitive_cache() -> None:
    """Bound oneDNN's kernel cache (before OpenVINO's CPU plugin creates its first kernel), unless the user set it."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVE_CACHE_CAPACITY))


def compiled_cache() -> Path:
    """OpenVINO's ``CACHE_DIR``: ``<segzoo cache>/openvino``."""
    return cache_dir() / "openvino"


def prune_compiled_cache(root: Optional[Path] = None, max_mb: float = COMPILED_CACHE_MB) -> int:
    """Delete the least recently written blobs beyond ``max_mb``; how many went."""
    root = root or compiled_cache()
    try:
        blobs = sorted((p.stat().st_mtime, p.stat().st_size, p) for p in root.glob("*.blob"))
    except OSError:
        return 0
    total = sum(size for _, size, _ in blobs)
    removed = 0
    for _, size, path in blobs[:-1]:  # the newest stays
        if total <= max_mb * 1048576:
            break
        try:
            path.unlink()
            total -= size
            removed += 1
        except OSError:
            continue
    return removed


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, loaded once; ``None`` elsewhere."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return None


def _trim_heap() -> None:
    """Give freed C heap back to the system (glibc's ``malloc_trim``; nothing elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class ShapePolicy:
    """Rent or buy: whether a shape gets its own static compile, from the times measured so far (see the module).

    The dynamic/static ratio is measured on the same shapes: a shape promoted
    to a static compile has run on both. Until one has, :data:`PRIOR_RATIO`
    stands in (one compile too many, at most, for a model that gains little).
    """

    #: the ratio assumed before any shape has run both ways (measured: 1.04-1.06 PP-LiteSeg-T, 1.8-2.1 SegFormer-B0)
    PRIOR_RATIO = 1.5
    #: shapes remembered
    MEMORY = 4096

    def __init__(self):
        self._lock = threading.Lock()  # requests finish on OpenVINO's threads
        self._compile: deque = deque(maxlen=16)  # seconds per static compile
        self._lost: "OrderedDict[tuple, float]" = OrderedDict()  # (mode, shape) -> seconds on the dynamic model
        self._runs: "OrderedDict[tuple, tuple]" = OrderedDict()  # (mode, shape) -> (dynamic runs, static runs)
        self._pairs: dict[str, dict] = {}  # mode -> {shape: dynamic / static time}

    def record_compile(self, seconds: float) -> None:
        with self._lock:
            self._compile.append(seconds)

    def record_run(self, mode: str, shape: tuple, seconds: float, dynamic: bool) -> None:
        key = (mode, shape)
        with self._lock:
            runs = self._runs.pop(key, None) or (deque(maxlen=8), deque(maxlen=8))
            self._runs[key] = runs
            runs[0 if dynamic else 1].append(seconds)
            if dynamic:
                self._lost[key] = self._lost.pop(key, 0.0) + seconds
            elif len(runs[0]) >= 2:  # the first dynamic run of a shape also prepared its kernels: left out
                self._pairs.setdefault(mode, {})[shape] = float(np.median(list(runs[0])[1:]) / max(np.median(runs[1]), 1e-9))
            for table in (self._lost, self._runs):
                while len(table) > self.MEMORY:
                    table.popitem(last=False)

    def forget(self, mode: str, shape: tuple) -> None:
        """``shape`` left memory: it must earn its compile again."""
        with self._lock:
            self._lost.pop((mode, shape), None)

    def compile_cost(self) -> float:
        return float(np.median(self._compile)) if self._compile else 0.5

    def ratio(self, mode: str) -> float:
        """The dynamic model's time over a static compile's, in ``mode`` (measured, else the other mode's, else the prior)."""
        for m in (mode, *sorted(self._pairs)):
            pairs = self._pairs.get(m)
            if pairs:
                return float(np.median(list(pairs.values())))
        return self.PRIOR_RATIO

    def wants_static(self, mode: str, shape: tuple) -> bool:
        """Whether ``shape`` should get its own static compile now: the time it lost on the dynamic model pays one."""
        with self._lock:
            ratio = self.ratio(mode)
            if ratio <= 1.0:
                return False
            return self._lost.get((mode, shape), 0.0) * (1.0 - 1.0 / ratio) >= self.compile_cost()


class _Compiled:
    """One compiled model: its infer request (LATENCY) or its queue of requests (THROUGHPUT)."""

    def __init__(self, compiled, mode: str, shape: Optional[tuple]):
        self.compiled, self.mode, self.shape = compiled, mode, shape
        self.request = compiled.create_infer_request() if mode == LATENCY else None
        self.queue = None

    def infer(self, array: np.ndarray) -> tuple[np.ndarray, float]:
        """Output and seconds, one image synchronously."""
        request = self.request or self.compiled.create_infer_request()
        start = time.perf_counter()
        request.infer({0: array})
        seconds = time.perf_counter() - start
        return request.get_output_tensor(0).data.copy(), seconds


class CompiledShapes:
    """The converted model behind the ``run(None, feed)`` / ``get_inputs()`` calls of an ORT session, compiled per policy.

    ``shapes`` lists the static shapes compiled (oldest first), ``dynamic`` the
    modes whose dynamic model is compiled.
    """

    def __init__(self, core, model, properties: dict, path: Path, cache: bool = True, dynamic: bool = True):
        self.core, self.model, self.path = core, model, path
        # fp32 only: in bf16 the dynamic model's masks differ from a static compile's on 0.1-0.3 % of the pixels
        self._dynamic_ok = bool(dynamic)
        self.properties = {**properties, "CPU_RUNTIME_CACHE_CAPACITY": RUNTIME_CACHE_CAPACITY}
        if cache:
            try:
                compiled_cache().mkdir(parents=True, exist_ok=True)
                self.properties["CACHE_DIR"] = str(compiled_cache())
            except OSError as exc:  # a read-only cache: compile in memory only
                log.info("OpenVINO compiles without a cache (%s)", exc)
        self.policy = ShapePolicy()
        self._static: "OrderedDict[tuple, _Compiled]" = OrderedDict()  # (mode, shape) -> compiled
        self._dynamic: dict[str, _Compiled] = {}
        self._idle: dict[str, list] = {}  # mode -> [calls, time] since its dynamic model last ran
        self._reshapes = True  # False: a graph with fixed reshapes runs dynamic only
        self._active: list[_Compiled] = []  # what ran in the last call
        self._requests: Optional[int] = None
        weights_mb = max(path.stat().st_size / 1048576, 1.0) if path.is_file() else 1.0
        self.max_shapes = max(2, min(MAX_SHAPES, int(SHAPES_WEIGHTS_MB // weights_mb)))

    # -- what is compiled ---------------------------------------------------------------------------
    @property
    def shapes(self) -> list:
        return [shape for _mode, shape in self._static]

    @property
    def dynamic(self) -> list:
        return sorted(self._dynamic)

    @property
    def requests(self) -> int:
        """Images worth keeping in flight for :meth:`run_many` (OpenVINO's optimal count once a THROUGHPUT model exists)."""
        return self._requests or max(1, min(4, int(self.properties.get("INFERENCE_NUM_THREADS", 2))))

    def get_inputs(self):
        return [_Input()]

    def _compile(self, model, mode: str, shape: Optional[tuple]) -> _Compiled:
        props = {**self.properties, "PERFORMANCE_HINT": mode}
        if mode == THROUGHPUT:
            props["ENABLE_CPU_PINNING"] = False  # requests of several compiled models share the cores
        try:
            compiled = self.core.compile_model(model, "CPU", props)
        except Exception as exc:
            text = str(exc).strip().splitlines()
            raise WeightsError(f"OpenVINO cannot compile {self.path}: {text[0] if text else type(exc).__name__}") from exc
        found = _Compiled(compiled, mode, shape)
        if mode == THROUGHPUT:
            import openvino as ov

            jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            found.queue = ov.AsyncInferQueue(compiled, jobs)
            self._requests = jobs
        if "CACHE_DIR" in self.properties:
            prune_compiled_cache()
        return found

    def _compile_static(self, mode: str, shape: tuple) -> Optional[_Compiled]:
        model = self.model.clone()
        try:
            model.reshape({0: list(shape)})
        except Exception as exc:  # noqa: BLE001 - a graph with fixed reshapes: run it dynamic
            log.info("OpenVINO cannot reshape %s to %s (%s); running it with a dynamic shape", self.path,
                     "×".join(map(str, shape)), str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            self._reshapes = False
            return None
        start = time.perf_counter()
        found = self._static[(mode, shape)] = self._compile(model, mode, shape)
        self.policy.record_compile(time.perf_counter() - start)
        while len(self._static) > self.max_shapes:
            (old_mode, old_shape), _ = self._static.popitem(last=False)
            self.policy.forget(old_mode, old_shape)
        return found

    def _dynamic_model(self, mode: str) -> _Compiled:
        found = self._dynamic.get(mode)
        if found is None:
            found = self._dynamic[mode] = self._compile(self.model, mode, None)
        return found

    def _for(self, mode: str, shape: tuple) -> tuple[_Compiled, bool]:
        """The compiled model to run ``shape`` on in ``mode``, and whether it is the dynamic one."""
        key = (mode, shape)
        found = self._static.get(key)
        if found is not None:
            self._static.move_to_end(key)
            return found, False
        if self._reshapes:
            first = not any(m == mode for m, _ in self._static)
            if first or not self._dynamic_ok or (mode in self._dynamic and self.policy.wants_static(mode, shape)):
                found = self._compile_static(mode, shape)
                if found is not None:
                    return found, False
        return self._dynamic_model(mode), True

    def _settle(self, used: list) -> None:
        """Free the buffers of the compiled models that ran last time but will not now, drop an idle dynamic model, trim."""
        released = False
        for compiled in self._active:
            if all(compiled is not u for u in used):
                compiled.compiled.release_memory()
                released = True
        now = time.monotonic()
        for mode, dynamic in list(self._dynamic.items()):
            idle = self._idle.setdefault(mode, [0, now])
            if any(dynamic is u for u in used):
                idle[:] = [0, now]
                continue
            idle[0] += 1
            if idle[0] >= DYNAMIC_IDLE[0] and now - idle[1] >= DYNAMIC_IDLE[1]:
                del self._dynamic[mode], self._idle[mode]
                released = True
        if released:
            _trim_heap()
        self._active = used

    # -- running ------------------------------------------------------------------------------------
    def run(self, _outputs, feed: dict):
        """ONNX Runtime's call: one batch, image by image on LATENCY-compiled models (the batch size is never compiled)."""
        (batch,) = feed.values()
        plan = [((1,) + tuple(int(d) for d in image.shape), image) for image in batch]
        plan = [(shape, image, *self._for(LATENCY, shape)) for shape, image in plan]
        self._settle([compiled for _s, _i, compiled, _d in plan])  # before running: one shape's buffers at a time
        outputs = []
        for shape, image, compiled, dynamic in plan:
            out, seconds = compiled.infer(image[None])
            self.policy.record_run(LATENCY, shape, seconds, dynamic)
            outputs.append(out)
        return [outputs[0] if len(outputs) == 1 else np.concatenate(outputs)]

    def run_many(self, images: list) -> list:
        """Outputs of independent ``3×H×W`` images, in order: in parallel on THROUGHPUT-compiled models, except
        images over :data:`PARALLEL_MAX_PIXELS`, which run one at a time on every core (LATENCY)."""
        alone = [i for i, image in enumerate(images) if image.shape[-2] * image.shape[-1] > PARALLEL_MAX_PIXELS]
        outputs: list = [None] * len(images)
        for i in alone:
            outputs[i] = self.run(None, {"x": images[i][None]})[0]
        rest = [i for i in range(len(images)) if outputs[i] is None]
        if len(rest) == 1:
            outputs[rest[0]] = self.run(None, {"x": images[rest[0]][None]})[0]
        elif rest:
            for i, out in zip(rest, self._parallel([images[i] for i in rest])):
                outputs[i] = out
        return outputs

    def _parallel(self, images: list) -> list:
        outputs: list = [None] * len(images)
        failures: list = []
        plan = []
        for i, image in enumerate(images):
            shape = (1,) + tuple(int(d) for d in image.shape)
            compiled, dynamic = self._for(THROUGHPUT, shape)
            plan.append((i, image, shape, compiled, dynamic))
        self._settle(list({id(c): c for *_, c, _d in plan}.values()))  # before running: the last call's buffers go
        limit = threading.BoundedSemaphore(self.requests)  # in flight across every compiled model

        def done(request, userdata):
            i, shape, dynamic = userdata
            try:
                outputs[i] = request.get_output_tensor(0).data.copy()
                self.policy.record_run(THROUGHPUT, shape, request.latency / 1000.0, dynamic)
            except Exception as exc:  # noqa: BLE001 - reported after wait_all
                failures.append(exc)
            finally:
                limit.release()

        queues = []
        for _i, _image, _shape, compiled, _dynamic in plan:
            if all(compiled.queue is not q for q in queues):
                compiled.queue.set_callback(done)
                queues.append(compiled.queue)
        try:
            for i, image, shape, compiled, dynamic in plan:
                limit.acquire()
                compiled.queue.start_async({0: image[None]}, (i, shape, dynamic))
        finally:
            for queue in queues:
                queue.wait_all()
        missing = [i for i, out in enumerate(outputs) if out is None]
        if failures or missing:
            why = str(failures[0]).strip().splitlines()[0] if failures else f"no output for images {missing}"
            raise WeightsError(f"OpenVINO failed to run {self.path}: {why}")
        return outputs


class _Input:
    name = "x"
