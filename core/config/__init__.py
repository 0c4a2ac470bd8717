"""The YAML config: its schema, loading with ``-o Section.key=value`` overrides, and the model-config bridge.

A config file has PaddleX's sections and key names, plus a ``Model`` section
for the model's own config fields (optimizer, weight decay, loss weights,
...)::

    Global:
      model: PP-LiteSeg-T
      mode: train              # check_dataset | train | evaluate | export | predict
      dataset_dir: dataset/shapes
      device: cpu              # cpu, gpu, gpu:0, gpu:0,1 (several GPUs: one process each)
      output: output
    Train:
      num_classes: 4
      epochs_iters: 1000       # iterations
      batch_size: 8
      learning_rate: 0.01
    Model:
      optimizer: sgd

Everything is validated before any work starts: unknown keys are errors that
name the closest valid key, values are type- and range-checked, and the
``Model`` section is checked against the model's own pydantic config class.
What the YAML leaves unset comes from the model's config class
(``get_registry().config(name)``): ``segzoo config MODEL`` prints the complete
file for a model with every default filled in and commented.

The package describes and loads configs only: :mod:`.schema` (the sections),
:mod:`.loading` (YAML, ``-o`` overrides, validation), :mod:`.modelconfig`
(``Train``/``Model`` keys to the model's config) and :mod:`.render` (the
complete, commented YAML). Running a config's ``Global.mode`` is
:mod:`segzoo.modes`' job.

Importing this package does not import paddle.
"""

from __future__ import annotations

from .._lazy import moved_names
from . import loading, modelconfig, render, schema
from .loading import apply_overrides, load_config, parse_override
from .modelconfig import (
    explicit_model_fields,
    model_config_for,
    model_fields_for_weights,
    resolve_num_classes,
    weights_path,
)
from .render import default_config, dump_config, render_config, resolve_config
from .schema import (
    MODES,
    PRETRAINED_KEYWORDS,
    TRAIN_OWNED,
    TRAIN_TO_MODEL,
    AugmentConfig,
    CheckDatasetConfig,
    ConvertConfig,
    EvaluateConfig,
    ExportConfig,
    GlobalConfig,
    PredictConfig,
    SegzooConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = [*schema.__all__, *loading.__all__, *modelconfig.__all__, *render.__all__]

# the mode dispatch moved up to segzoo.modes (a layer above); the old name keeps working, with a warning
__getattr__ = moved_names(__name__, {"run_config": "segzoo.modes"})
