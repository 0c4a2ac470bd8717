"""Device strings: ``cpu``, ``gpu``, ``gpu:0``, ``gpu:0,1`` (the first is used in one process)."""

from __future__ import annotations

import re
from typing import Optional

from .errors import ConfigError, DependencyError

_DEVICE = re.compile(r"^(cpu|gpu|xpu|npu)(?::(\d+(?:,\d+)*))?$")


def parse_device(device: Optional[str]) -> tuple[str, list[int]]:
    """``"gpu:0,1"`` → ``("gpu", [0, 1])``; ``None`` → the best available."""
    if device is None:
        return ("gpu", [0]) if _cuda_available() else ("cpu", [])
    match = _DEVICE.match(device.strip().lower())
    if not match:
        raise ConfigError(f"device {device!r} is not valid; use cpu, gpu, gpu:0 or gpu:0,1")
    kind, ids = match.group(1), match.group(2)
    return kind, [int(i) for i in ids.split(",")] if ids else ([0] if kind != "cpu" else [])


def set_device(device: Optional[str]) -> str:
    """Make ``device`` paddle's current device; return the paddle device string."""
    import paddle

    kind, ids = parse_device(device)
    if kind == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise DependencyError(
            f"device {device!r} asks for a GPU but this paddlepaddle is the CPU build; install "
            "paddlepaddle-gpu (see the README) or use --device cpu"
        )
    name = kind if kind == "cpu" else f"{kind}:{ids[0]}"
    paddle.set_device(name)
    return name


def _cuda_available() -> bool:
    """Whether paddle sees a GPU; ``False`` without importing paddle when only the CPU wheel is installed.

    Importing paddle takes about 0.7 s and 300 MB, which a prediction on ONNX
    Runtime or OpenVINO does not otherwise need. The CUDA wheels are the
    ``paddlepaddle-gpu`` distribution; a paddle already imported is asked.
    """
    import sys

    if "paddle" not in sys.modules and not _installed("paddlepaddle-gpu"):
        return False
    import paddle

    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True
