"""``run_predict``: predict and save every result, what ``segzoo predict`` and the YAML layer call."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from ..fileio import check_output_dir, make_output_dir
from .create import create_model
from .inputs import check_inputs
from .pipeline import OrderedWriter


def run_predict(
    model_name: Optional[str],
    inputs: Any,
    output_dir,
    model_dir=None,
    batch_size: int = 1,
    target_size: Any = None,
    device: Optional[str] = None,
    engine: Optional[str] = None,
    *,
    save_json: bool = True,
    save_img: bool = True,
    on_result: Optional[Callable] = None,
    predictor: Any = None,
    **config_overrides,
) -> list[Path]:
    """Predict ``inputs`` and write ``<stem>_res.json``, ``<stem>_res.png`` and ``<stem>_overlay.png``.

    Args:
        model_name, model_dir, target_size, device, engine, **config_overrides:
            as :func:`segzoo.create_model` (``engine_options=``, ``slide_window=``
            ... pass through ``config_overrides`` too).
        inputs: anything :meth:`Predictor.predict` takes.
        output_dir: the directory results go to (created).
        save_json / save_img: which files to write.
        on_result: called as ``on_result(result, paths)`` after each result is saved (in the writer
            thread: results are saved in input order while the next images are predicted).
        predictor: an existing predictor to use instead of creating one.

    Returns: the written paths, in input order.
    """
    check_output_dir(output_dir, "output_dir")  # bad inputs or output fail before a model is built or a file written
    check_inputs(inputs)
    if predictor is None:
        predictor = create_model(
            model_name, model_dir=model_dir, target_size=target_size, device=device, engine=engine, **config_overrides
        )
        target_size = None  # already the create_model() level
    out = make_output_dir(output_dir, "output_dir")

    def write(result) -> list[Path]:
        paths: list[Path] = []
        if save_json:
            paths.append(result.save_to_json(out))
        if save_img:
            paths.extend(result.save_to_img(out).values())
        if on_result is not None:
            on_result(result, paths)
        return paths

    # results are written in a thread of their own, in order, while the next images are predicted
    with OrderedWriter(write) as writer:
        for result in predictor.predict(inputs, batch_size=batch_size, target_size=target_size):
            writer.put(result)
    return [path for paths in writer.results for path in paths]
