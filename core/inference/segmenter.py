"""``Segmenter``: the callable class a Ray Data pipeline maps over image files (``ds.map_batches(Segmenter)``).

It is what ``segzoo predict --ray`` runs on every actor, and it is public for
people who write their own Ray pipelines::

    import ray
    from segzoo.distributed import Segmenter

    ds = ray.data.read_binary_files(["photos/a.jpg", "photos/b.png"], include_paths=True)
    status = ds.map_batches(
        Segmenter,
        fn_constructor_kwargs={"output_dir": "out", "model": "PP-LiteSeg-T"},
        compute=ray.data.ActorPoolStrategy(size=4),   # 4 actors; each builds the model once
        batch_size=8,
    )
    for row in status.iter_rows():     # one small row per input: path, stem, status, reason, files
        ...

Input columns: ``bytes`` (the file's content) and ``path`` (where it came
from: what the result JSON's ``input_path`` says), and optionally ``stem``
(the name the outputs are saved under; default the path's stem, as
``segzoo predict`` names them). Each input writes ``<stem>_res.json``,
``<stem>_res.png`` and ``<stem>_overlay.png`` (a PDF: one set per page,
``<stem>_<page>``) straight into ``output_dir``, each file atomically, through
:class:`~segzoo.inference.result.SegResult`: the same bytes as ``segzoo
predict`` writes. Nothing but the status row goes back to the driver.

An input that cannot be read or predicted (a corrupt image, a file over the
pixel limit) does not stop the batch: its row says ``status="error"`` and the
reason. Inputs whose three files exist already are skipped
(``status="skipped"``) unless ``overwrite=True``.

The model is built once per actor, in ``__init__``, with
:func:`segzoo.create_model` and its default engine rule; on the CPU its
threads are the CPUs Ray gave the actor (``cpu_threads`` of the engines that
take it), so set ``num_cpus=`` in ``map_batches`` to choose both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError, SegzooError
from ..fileio import make_output_dir
from .create import create_model
from .inputs import PDF_EXTENSIONS, decode_image_bytes, iter_pdf_pages
from .result import SegResult

#: the files one result writes, after its stem
OUTPUT_SUFFIXES = ("_res.json", "_res.png", "_overlay.png")
#: the columns of the status rows ``Segmenter`` returns
STATUS_COLUMNS = ("path", "stem", "status", "reason", "files")

__all__ = ["Segmenter", "outputs_complete", "OUTPUT_SUFFIXES", "STATUS_COLUMNS"]


def outputs_complete(output_dir, stem: str) -> bool:
    """Whether ``<stem>_res.json``, ``_res.png`` and ``_overlay.png`` all exist in ``output_dir``.

    Each file is written atomically, so one that exists is whole.
    """
    out = Path(output_dir)
    return all((out / f"{stem}{suffix}").is_file() for suffix in OUTPUT_SUFFIXES)


def assigned_cpus() -> Optional[int]:
    """The CPUs Ray gave this actor or task (at least 1), ``None`` outside Ray."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else None


class Segmenter:
    """Predict batches of image files and write their results; see the module docstring.

    Args:
        output_dir: where the results go (created; on a cluster, a folder every machine writes at this path).
        model: a model name (``segzoo list-models``); may be left out with a ``model_dir`` that names it.
        batch_size: images run through the engine together (a speed setting only, as in ``segzoo predict``).
        overwrite: predict inputs whose outputs exist already.
        stems: ``{path: stem}`` for inputs whose outputs are not named after their path's stem (the CLI
            names them as ``segzoo predict`` does when two inputs share a stem: ``x``, ``x_1`` ...).
        shown_as: ``(prefix read, prefix shown)`` pairs: the JSON's ``input_path`` (and the status rows)
            show a path read under the first prefix with the second instead. ``segzoo predict --ray``
            reads absolute paths (a Ray worker does not share the driver's folder) and shows them as
            the user wrote them, as ``segzoo predict`` does.
        **create_model_kwargs: as :func:`segzoo.create_model` (``model_dir``, ``device``, ``engine``,
            ``engine_options``, ``target_size``, ``num_classes`` ...). Without a ``cpu_threads`` engine
            option, an engine that takes one gets the CPUs Ray assigned to this actor.
    """

    def __init__(self, output_dir, model: Optional[str] = None, *, batch_size: int = 1, overwrite: bool = False,
                 stems: Optional[dict] = None, shown_as: Sequence[tuple[str, str]] = (), **create_model_kwargs: Any):
        self.output_dir = make_output_dir(output_dir, "output_dir")
        self.batch_size = int(batch_size)
        self.overwrite = bool(overwrite)
        self.stems = dict(stems or {})
        self.shown_as = sorted(((str(a), str(b)) for a, b in shown_as), key=lambda ab: -len(ab[0]))
        self.predictor = _build(model, create_model_kwargs, assigned_cpus())

    def __call__(self, batch: dict) -> dict:
        """One status row per input row of ``batch`` (columns ``bytes``, ``path``, optional ``stem``)."""
        read = [str(p) for p in batch["path"]]
        paths = [self._shown(p) for p in read]
        if "stem" in batch:
            stems = [str(s) for s in batch["stem"]]
        else:
            stems = [self.stems.get(r) or stem_of(r) for r in read]
        rows: list[tuple] = []
        todo: list[tuple[int, np.ndarray]] = []  # (row, decoded image) of the plain images to predict
        for i, (data, path, stem) in enumerate(zip(batch["bytes"], paths, stems)):
            if not self.overwrite and not _is_pdf(path) and outputs_complete(self.output_dir, stem):
                rows.append((path, stem, "skipped", "", 0))
                continue
            try:
                if _is_pdf(path):
                    rows.append((path, stem, "done", "", self._pdf(bytes(data), path, stem)))
                    continue
                todo.append((i, decode_image_bytes(bytes(data), path)))
                rows.append((path, stem, "pending", "", 0))
            except SegzooError as exc:
                rows.append((path, stem, "error", str(exc), 0))
        self._predict_images(todo, rows)
        return {name: np.array([row[k] for row in rows], dtype=object if k < 4 else np.int64)
                for k, name in enumerate(STATUS_COLUMNS)}

    def _shown(self, path: str) -> str:
        """The ``input_path`` a read path is shown as: its prefix swapped by ``shown_as`` (longest first)."""
        for prefix, shown in self.shown_as:
            if path == prefix:
                return shown
            if path.startswith(prefix.rstrip("/") + "/"):
                rest = path[len(prefix.rstrip("/")) + 1:]
                return f"{shown.rstrip('/')}/{rest}" if shown else rest
        return path

    # -- images ------------------------------------------------------------------------------------
    def _predict_images(self, todo: list, rows: list) -> None:
        """Predict a batch's decoded images (``todo``: (row, image)) and save them; rows are in input order."""
        if not todo:
            return
        try:
            masks = self.predictor.predict_arrays([img for _, img in todo], batch_size=self.batch_size)
        except SegzooError:
            masks = []
            for i, image in todo:  # one by one: only the image at fault is an error
                try:
                    masks.append(self.predictor.predict_arrays([image])[0])
                except SegzooError as exc:
                    masks.append(None)
                    rows[i] = (*rows[i][:2], "error", str(exc), 0)
        for (i, image), mask in zip(todo, masks):
            if mask is None:
                continue
            path, stem = rows[i][:2]
            try:
                rows[i] = (path, stem, "done", "", self._save(SegResult(mask, image, input_path=path, name=stem)))
            except (SegzooError, OSError) as exc:
                rows[i] = (path, stem, "error", f"cannot write the results of {path}: {exc}", 0)

    def _save(self, result: SegResult) -> int:
        """Write the JSON and the two pictures, in the order ``segzoo predict`` writes them."""
        result.save_to_json(self.output_dir)
        return 1 + len(result.save_to_img(self.output_dir))

    # -- PDFs ----------------------------------------------------------------------------------------
    def _pdf(self, data: bytes, path: str, stem: str) -> int:
        """Every page of a PDF, ``<stem>_<page>`` (pages whose outputs exist are skipped unless ``overwrite``)."""
        written = 0
        for item in iter_pdf_pages(data, path, stem):
            if not self.overwrite and outputs_complete(self.output_dir, item.name):
                continue
            mask = self.predictor.predict_arrays([item.image])[0]
            written += self._save(SegResult(mask, item.image, input_path=path, page_index=item.page_index,
                                            name=item.name))
        return written


def _is_pdf(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in PDF_EXTENSIONS


def stem_of(path: str) -> str:
    """The stem ``segzoo predict`` names a file's results after (the last path component without its suffix)."""
    return Path(path.rstrip("/").rsplit("/", 1)[-1]).stem


def _build(model: Optional[str], kwargs: dict, cpus: Optional[int]):
    """``create_model(model, **kwargs)``; an engine that takes ``cpu_threads`` gets ``cpus`` when none is set."""
    options = dict(kwargs.pop("engine_options", None) or {})
    if cpus is None or "cpu_threads" in options:
        return create_model(model, engine_options=options or None, **kwargs)
    try:
        return create_model(model, engine_options={**options, "cpu_threads": cpus}, **kwargs)
    except ConfigError as exc:
        if "cpu_threads" not in str(exc):  # not the engine refusing the option (dygraph takes no threads)
            raise
        return create_model(model, engine_options=options or None, **kwargs)
