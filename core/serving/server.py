"""Loading the model and running uvicorn (and its per-worker app factory): what ``segzoo serve`` does after its flags."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import warnings

from ..errors import ConfigError
from ..inference.demo import load_demo, read_demo_yml
from ..inference.modeldir import resolve_model_dir
from ..inference.create import create_model
from ..inference.predictor import RandomWeightsWarning
from ..registry import get_registry
from .settings import ServeSettings

log = logging.getLogger("segzoo.serving")


def setup_logging(level: str = "info") -> None:
    """Send ``segzoo.serving``'s messages to stderr, in uvicorn's style (once per process)."""
    if any(getattr(h, "_segzoo_serving", False) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     segzoo: %(message)s"))
    handler._segzoo_serving = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if level in ("debug", "trace") else getattr(logging, level.upper(), logging.INFO))
    log.propagate = False


def _engine_options(settings: ServeSettings) -> "dict | None":
    return {"precision": settings.precision} if settings.precision else None


def load_predictor(settings: ServeSettings):
    """The predictor the settings describe; the built-in demo when neither model nor model_dir is set."""
    start = time.perf_counter()
    if settings.model is None and settings.model_dir is None:
        if settings.engine is None and settings.precision is None:
            predictor, _ = load_demo(device=settings.device)
        else:
            info = read_demo_yml()
            predictor = create_model(
                info["model_name"], model_dir=info["weights"], device=settings.device, engine=settings.engine,
                num_classes=int(info["num_classes"]), engine_options=_engine_options(settings),
            )
        what = f"the built-in demo ({predictor.model_name})"
    else:
        overrides = {"num_classes": settings.num_classes} if settings.num_classes is not None else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RandomWeightsWarning)
            predictor = create_model(
                settings.model, model_dir=settings.model_dir, device=settings.device, engine=settings.engine,
                target_size=settings.target_size, engine_options=_engine_options(settings), **overrides,
            )
        for w in caught:
            if issubclass(w.category, RandomWeightsWarning):
                log.warning("%s", w.message)
        what = predictor.model_name
    log.info(
        "worker %d loaded %s, %d classes, engine %s, in %.1f s",
        os.getpid(), what, predictor.num_classes, getattr(predictor.engine, "name", "?"), time.perf_counter() - start,
    )
    return predictor


def check_model_cheaply(settings: ServeSettings) -> None:
    """Fail fast, before starting workers, on an unknown model name or a missing model dir / demo."""
    if settings.model is None and settings.model_dir is None:
        read_demo_yml()
        return
    if settings.model is not None:
        get_registry().card(settings.model)
    if settings.model_dir is not None:
        resolve_model_dir(settings.model_dir)


def check_port(host: str, port: int) -> None:
    """A :class:`ConfigError` naming the fix when ``host:port`` cannot be bound."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} does not resolve ({exc}); use an address such as 127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or stop what uses it"
            ) from None


def serve(settings: ServeSettings) -> int:
    """Run the service until interrupted (blocking). ``workers > 1``: uvicorn worker processes."""
    import uvicorn

    setup_logging(settings.log_level)
    check_port(settings.host, settings.port)
    common = dict(
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
    )
    if settings.workers == 1:
        from .app import create_app  # lazy: FastAPI

        app = create_app(load_predictor(settings), settings)
        uvicorn.run(app, **common)
        return 0
    check_model_cheaply(settings)
    os.environ.update(settings.to_env())
    uvicorn.run("segzoo.serving.server:app_from_env", factory=True, workers=settings.workers, **common)
    return 0


def app_from_env():
    """uvicorn's factory in each worker process: load the model of ``$SEGZOO_SERVE_SETTINGS``."""
    from .app import create_app  # lazy: FastAPI

    settings = ServeSettings.from_env()
    setup_logging(settings.log_level)
    return create_app(load_predictor(settings), settings)
