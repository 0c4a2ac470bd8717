"""``segzoo serve``: the HTTP service (nothing heavy is imported until it runs)."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .settings import MB, ServeSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``segzoo serve``."""
    from ..inference.builtin import engine_help  # the engine table (no paddle); the module itself stays light
    p.description = (
        "Serve a model over HTTP with PaddleX's API: POST /semantic-segmentation {\"image\": URL or base64, "
        "\"targetSize\": ...}, POST /semantic-segmentation/upload (multipart, field 'file'), GET /health, "
        "a page to try it at /, docs at /docs. Without --model and --model-dir: the built-in demo."
    )
    g = p.add_argument_group("model")
    g.add_argument("--pipeline", metavar="YAML",
                   help="PaddleX's pipeline: a pipeline YAML (segzoo config --pipeline semantic_segmentation --save "
                   "my.yaml) or the name semantic_segmentation; its model_name, model_dir and target_size fill "
                   "--model, --model-dir and the requests' default targetSize")
    g.add_argument("--model", help="model name (segzoo list-models); optional with an exported --model-dir")
    g.add_argument("--model-dir", help="exported inference directory, or a .pdparams file / directory holding one")
    g.add_argument("--num-classes", type=int, help="class count of the weights (read from them when left out)")
    g.add_argument("--device", help="cpu, gpu or gpu:0 (default: a GPU when there is one)")
    g.add_argument("--engine", help=engine_help())  # from the engine table: it cannot drift from the code
    g.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="openvino engine: bf16 (CPUs with native bf16), int8 (the model `segzoo quantize` made of "
                   "these weights); default as in segzoo predict")
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    g.add_argument("--port", type=int, default=8080)
    g.add_argument("--workers", type=int, default=1, help="worker processes, each loading its own model")
    g.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    g.add_argument("--no-access-log", action="store_true", help="do not log every request")
    g = p.add_argument_group("batching")
    g.add_argument("--max-batch-size", type=int, default=8, help="most images per model call (1: no batching)")
    g.add_argument("--batch-timeout-ms", type=float, default=10.0, help="longest wait for a batch to fill")
    g.add_argument("--max-queue", type=int, default=256, help="waiting images beyond which requests get 503")
    g = p.add_argument_group("limits")
    g.add_argument("--max-body-mb", type=float, default=32.0, help="largest request body, MiB")
    g.add_argument("--max-pixels", type=int, default=4096 * 4096, help="largest image and targetSize, width×height")
    g.add_argument("--url-timeout", type=float, default=10.0, help="seconds to download an image URL")
    g.add_argument("--url-max-mb", type=float, default=32.0, help="largest image URL download, MiB")
    g.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="also fetch URLs on loopback, private and link-local networks (refused by default)",
    )
    g.add_argument("--no-visualize", action="store_true", help="leave result.image null unless a request asks")


def run(args) -> int:
    """Validate the flags, load the model, serve until interrupted."""
    from .server import serve  # lazy: it imports the inference layer

    return serve(settings_from_args(args))


def settings_from_args(args) -> ServeSettings:
    """The validated :class:`ServeSettings` of the flags (and of ``--pipeline``'s YAML)."""
    model, model_dir, target_size = args.model, args.model_dir, None
    if args.pipeline:
        from ..pipeline import load_pipeline_config  # lazy: it imports the inference layer

        module = load_pipeline_config(args.pipeline).module  # flags given on the command line win
        model = model if model is not None else module.model_name
        model_dir = model_dir if model_dir is not None else module.model_dir
        target_size = module.target_size
    return ServeSettings.from_options(
        model=model,
        model_dir=model_dir,
        target_size=target_size,
        num_classes=args.num_classes,
        device=args.device,
        engine=args.engine,
        precision=args.precision,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        max_batch_size=args.max_batch_size,
        batch_timeout_ms=args.batch_timeout_ms,
        max_queue=args.max_queue,
        max_body_bytes=_mb(args.max_body_mb, "--max-body-mb"),
        max_pixels=args.max_pixels,
        url_timeout=args.url_timeout,
        url_max_bytes=_mb(args.url_max_mb, "--url-max-mb"),
        allow_private_urls=args.allow_private_urls,
        visualize=not args.no_visualize,
    )


def _mb(value: float, flag: str) -> int:
    if not value > 0:
        raise ConfigError(f"{flag}: {value} must be > 0")
    return int(value * MB)
