"""Old home of weight loading with the run's config (now :mod:`segzoo.models`); its names keep working here."""

from __future__ import annotations

from ..models import (  # noqa: F401  (moved down to segzoo.models; this old home keeps them)
    RUN_CONFIG,
    STYLES,
    SavedRun,
    WeightsFitError,
    _differs,
    _from_config_yaml,
    _from_states,
    apply_saved_run,
    build_with_weights,
    guess_num_classes,
    read_saved_run,
    spell,
)
