"""``segzoo.distributed``: the public names for running segzoo beyond one process (Ray Data batch prediction).

* :class:`Segmenter`: the callable class for ``ds.map_batches(Segmenter, ...)``
  in a Ray Data pipeline of your own (see :mod:`segzoo.inference.segmenter`):
  each actor builds the model once and writes ``segzoo predict``'s files.
* :func:`plan_inputs`, :func:`run_ray_job`: what ``segzoo predict --ray``
  runs (see :mod:`segzoo.inference.raydata`).
* :func:`outputs_complete`: whether an input's results are all written.

Training on several machines is ``segzoo train --nnodes N --master HOST:PORT
--rank R`` (see :mod:`segzoo.training.distributed`). Ray is imported only
when a job runs, so importing this module needs no Ray.
"""

from __future__ import annotations

from .inference.raydata import ERRORS_FILE, RAY_INSTALL, InputPlan, import_ray, plan_inputs, run_ray_job
from .inference.segmenter import OUTPUT_SUFFIXES, STATUS_COLUMNS, Segmenter, outputs_complete

__all__ = [
    "Segmenter", "outputs_complete", "OUTPUT_SUFFIXES", "STATUS_COLUMNS",
    "InputPlan", "plan_inputs", "run_ray_job", "import_ray", "RAY_INSTALL", "ERRORS_FILE",
]
