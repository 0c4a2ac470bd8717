"""segzoo: a plugin-based semantic-segmentation model zoo on PaddlePaddle.

The public API. Importing it is cheap: paddle is imported only when a model
is built or run.

>>> import segzoo
>>> segzoo.list_models("SegFormer-B*")[:2]
['SegFormer-B0', 'SegFormer-B1']
"""

from __future__ import annotations

from ._lazy import lazy_exports
from .card import ExportSupport, Figures, ModelCard, ModelConfig, OfficialWeights
from .deps import missing_module_error
from .errors import (
    ConfigError,
    DatasetError,
    DependencyError,
    DownloadError,
    ExportError,
    InputError,
    PluginError,
    SegzooError,
    UnknownModelError,
    WeightsError,
)
from .hookspecs import hookimpl
from .models import build_model
from .noise import install as _quiet_paddle_import
from .paths import cache_dir
from .plugin import ModelPlugin
from .registry import (
    Registry,
    get_model_card,
    get_registry,
    list_models,
    register_plugin,
    reset_registry,
)

from ._version import __version__

# Paddle's import-time noise (ccache, OMP_NUM_THREADS) is silenced where it is raised: see segzoo.noise
_quiet_paddle_import()

__all__ = [
    "ConfigError",
    "DatasetError",
    "DependencyError",
    "DownloadError",
    "ExportError",
    "ExportSupport",
    "Figures",
    "InputError",
    "ModelCard",
    "ModelConfig",
    "ModelPlugin",
    "OfficialWeights",
    "PluginError",
    "Registry",
    "SegzooError",
    "UnknownModelError",
    "WeightsError",
    "build_model",
    "cache_dir",
    "create_model",
    "create_pipeline",
    "get_model_card",
    "get_registry",
    "hookimpl",
    "list_models",
    "missing_module_error",
    "register_plugin",
    "reset_registry",
]


# create_model lives with inference, create_pipeline (PaddleX's pipeline API) in segzoo.pipeline; importing
# them stays cheap (no paddle), but not free: on first use
__getattr__, __dir__ = lazy_exports(__name__, globals(), {"create_model": ".inference", "create_pipeline": ".pipeline"})
