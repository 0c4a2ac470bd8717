"""The built-in demo: what ``segzoo predict`` with no ``--model`` and no ``--input`` runs.

The demo directory (``segzoo/assets/demo/`` in the package, or
``$SEGZOO_DEMO_DIR``) holds ``demo.yml``::

    model_name: SeaFormer_tiny
    num_classes: 4
    weights: demo.pdparams        # float16 dygraph weights, file name in this directory
    image: demo.png               # the demo picture, file name in this directory
    class_names: [background, circle, rectangle, triangle]
    miou: 91.2                    # what the weights reach on their validation set

beside the two files it names. ``python scripts/make_demo_model.py`` builds it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from .create import create_model

DEMO_ENV = "SEGZOO_DEMO_DIR"
BUILD_HINT = "build it with `python scripts/make_demo_model.py` (or point $SEGZOO_DEMO_DIR at a demo directory)"
REQUIRED_KEYS = ("model_name", "num_classes", "weights", "image")


def demo_dir() -> Path:
    """``$SEGZOO_DEMO_DIR`` if set, else the package's ``assets/demo``."""
    env = os.environ.get(DEMO_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "assets" / "demo"


def read_demo_yml(directory: Optional[Path] = None) -> dict:
    """The checked content of ``demo.yml``, with ``weights`` and ``image`` as absolute paths."""
    import yaml

    directory = Path(directory) if directory is not None else demo_dir()
    path = directory / "demo.yml"
    if not path.is_file():
        raise ConfigError(f"the built-in demo is missing: {path} does not exist; {BUILD_HINT}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}); {BUILD_HINT}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping with {', '.join(REQUIRED_KEYS)}; {BUILD_HINT}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}; {BUILD_HINT}")
    for key in ("weights", "image"):
        file = directory / str(data[key])
        if not file.is_file():
            raise ConfigError(f"{path}: {key} names {data[key]!r}, but {file} does not exist; {BUILD_HINT}")
        data[key] = file
    return data


def load_demo(device: Optional[str] = None):
    """``(predictor, image_path)`` of the built-in demo; the predictor's ``class_names`` are set."""
    info = read_demo_yml()
    predictor = create_model(info["model_name"], model_dir=info["weights"], device=device, num_classes=int(info["num_classes"]))
    names = info.get("class_names")
    predictor.class_names = [str(n) for n in names] if isinstance(names, list) else None
    predictor.demo_info = info
    return predictor, Path(info["image"])
