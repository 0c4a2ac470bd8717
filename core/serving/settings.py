"""``ServeSettings``: every option of ``segzoo serve``, validated once, passed to each worker.

With ``--workers N`` uvicorn starts N processes that each build the app; the parent hands the
settings to them as JSON in the environment variable :data:`SETTINGS_ENV`.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

#: the environment variable that carries the settings to uvicorn's worker processes
SETTINGS_ENV = "SEGZOO_SERVE_SETTINGS"

MB = 1024 * 1024


class ServeSettings(BaseModel):
    """The options of ``segzoo serve`` (field ``max_batch_size`` is the flag ``--max-batch-size``)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)

    # the model (nothing given: the built-in demo)
    model: Optional[str] = Field(None, description="registered model name; optional with an exported model_dir")
    model_dir: Optional[str] = Field(None, description="exported inference dir, or a .pdparams file / dir holding one")
    num_classes: Optional[int] = Field(None, ge=1, description="class count of the weights (read from them if absent)")
    device: Optional[str] = Field(None, description="cpu, gpu or gpu:0 (default: a GPU when there is one)")
    engine: Optional[str] = Field(None, description="dygraph, paddle, onnxruntime or auto")
    precision: Optional[str] = Field(None, pattern="^(fp32|bf16|int8)$",
                                     description="openvino engine: fp32, bf16 or int8 (the model segzoo quantize made)")
    target_size: Optional[Union[int, tuple[int, int]]] = Field(
        None, description="targetSize of requests that send none (a pipeline config's target_size)"
    )
    # the server
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes, each with its own model")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug|trace)$")
    access_log: bool = True
    # batching
    max_batch_size: int = Field(8, ge=1, le=256, description="most images run together")
    batch_timeout_ms: float = Field(10.0, ge=0, le=10_000, description="longest wait for a batch to fill")
    max_queue: int = Field(256, ge=1, description="images waiting for the model before requests get 503")
    # limits of what a request may ask for
    max_body_bytes: int = Field(32 * MB, ge=1024, description="largest request body")
    max_pixels: int = Field(4096 * 4096, ge=1, description="largest image (width × height) and targetSize")
    url_timeout: float = Field(10.0, gt=0, le=600, description="seconds to download an image URL")
    url_max_bytes: int = Field(32 * MB, ge=1024, description="largest image URL download")
    allow_private_urls: bool = Field(False, description="fetch URLs on loopback / private / link-local networks")
    visualize: bool = Field(True, description="default of the request's visualize (the colour-mask PNG)")

    @classmethod
    def from_options(cls, **options) -> "ServeSettings":
        """Validate options; a bad value is a :class:`ConfigError` naming its ``--flag``."""
        try:
            return cls(**options)
        except ValidationError as exc:
            raise ConfigError("; ".join(_flag_message(e) for e in exc.errors())) from None

    def to_env(self) -> dict[str, str]:
        """The environment entry that hands these settings to worker processes."""
        return {SETTINGS_ENV: self.model_dump_json()}

    @classmethod
    def from_env(cls) -> "ServeSettings":
        """The settings the parent process put in :data:`SETTINGS_ENV`."""
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            raise ConfigError(f"${SETTINGS_ENV} is not set; start the service with `segzoo serve`")
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"${SETTINGS_ENV}: " + "; ".join(_flag_message(e) for e in exc.errors())) from None


_FLAGS = {"max_body_bytes": "--max-body-mb (in bytes)", "url_max_bytes": "--url-max-mb (in bytes)"}


def _flag_message(error: dict) -> str:
    field = ".".join(str(p) for p in error.get("loc", ()))
    flag = _FLAGS.get(field) or ("--" + field.replace("_", "-") if field else "settings")
    return f"{flag}: {error.get('msg', 'invalid value')} (got {error.get('input')!r})"
