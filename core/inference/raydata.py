"""``segzoo predict --ray``: the prediction of ``segzoo predict``, run as a Ray Data job over many machines.

The driver (this process) lists the inputs and names their outputs exactly as
``segzoo predict`` does (directories walked in the same sorted order, the
same ``x``, ``x_1`` ... when two inputs share a stem), leaves out the inputs
whose three result files exist already (unless ``--overwrite``), and hands
the rest to Ray Data: ``ray.data.read_binary_files`` reads the files (local
paths, or any filesystem pyarrow reads, such as ``s3://``), and
``map_batches`` runs :class:`~segzoo.inference.segmenter.Segmenter` on a pool
of actors, one per CPU (one per GPU with ``--device gpu``), each building the
model once. The actors write the results straight into the output folder,
each file atomically; only one small status row per input comes back, and
the inputs that could not be read or predicted go into ``errors.jsonl``.

Without an address a local Ray runtime is started on this machine (and
stopped at the end); ``--ray auto`` joins the cluster this machine belongs to
(``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the
others), ``--ray HOST:PORT`` a given one. On a cluster every machine must
read the inputs and write the output folder at the same paths (a shared
filesystem, or ``s3://`` inputs).
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..cliopts import engine_options_of
from ..deps import missing_module_error
from ..errors import ConfigError, InputError, SegzooError
from ..fileio import atomic_write, check_output_dir, make_output_dir
from .inputs import IMAGE_EXTENSIONS, PDF_EXTENSIONS, check_inputs, is_url, walk_directory
from .segmenter import Segmenter, stem_of, outputs_complete

RAY_INSTALL = 'pip install "segzoo[ray]"'
#: the file the inputs that failed go to, one JSON object per line
ERRORS_FILE = "errors.jsonl"
#: list files: one input per line, relative to the list file's folder
LIST_SUFFIXES = (".txt", ".lst")
_GLOB_CHARS = "*?["

__all__ = ["import_ray", "plan_inputs", "InputPlan", "run_ray_job", "run_predict_ray", "RAY_INSTALL", "ERRORS_FILE"]


def import_ray():
    """``ray`` with ``ray.data``, or a one-line :class:`DependencyError` naming ``pip install "segzoo[ray]"``."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise missing_module_error(exc, "ray", RAY_INSTALL, "segzoo predict --ray") from None
    return ray


# -- the inputs ------------------------------------------------------------------------------------
@dataclass
class InputPlan:
    """What a job reads: ``(path read, path shown, stem)`` per input, in ``segzoo predict``'s order."""

    items: list[tuple[str, str, str]] = field(default_factory=list)
    shown_as: list[tuple[str, str]] = field(default_factory=list)  # (prefix Ray reports, prefix shown), per argument
    reported: dict[str, str] = field(default_factory=dict)  # URI -> the path Ray reports for it (no scheme)

    def stems(self) -> dict[str, str]:
        """``{path Ray reports: stem}`` of the inputs whose stem is not their file name's (a shared stem)."""
        return {self.reported.get(read, read): stem for read, _, stem in self.items if stem != stem_of(read)}


def _wanted(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS + PDF_EXTENSIONS


def _local(plan_files: list, shown: str) -> None:
    """Add a local file or directory (checked as ``segzoo predict`` checks it) with the paths it shows."""
    check_inputs(shown)
    p = Path(shown)
    files = [str(f) for f in walk_directory(p)] if p.is_dir() else [str(p)]
    plan_files.extend((os.path.abspath(f), f) for f in files)


def _remote(value: str, plan: "InputPlan") -> list[tuple[str, str]]:
    """The image and PDF files of a pyarrow filesystem URI (``s3://bucket/photos/``), sorted; shown as given.

    Ray reports each file by its filesystem path (no scheme): ``plan`` learns to show it as the URI.
    """
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(value)
        info = fs.get_file_info(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError subclasses with the reason
        raise InputError(f"input {value}: cannot open it with pyarrow ({exc})") from None
    head = value.rstrip("/")
    head = head[: len(head) - len(path.rstrip("/"))] if head.endswith(path.rstrip("/")) else value.split("://")[0] + "://"
    if info.type == pafs.FileType.NotFound:
        raise InputError(f"input {value} does not exist")
    plan.shown_as.append((path.rstrip("/"), head + path.rstrip("/")))
    if info.type == pafs.FileType.Directory:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        names = sorted(i.path for i in infos if i.type == pafs.FileType.File and _wanted(i.path))
        if not names:
            raise InputError(f"input {value} holds no image or PDF files")
    else:
        names = [path]
    plan.reported.update((head + n, n) for n in names)
    return [(head + n, head + n) for n in names]


def plan_inputs(inputs: list, output_dir=None, overwrite: bool = True) -> tuple[InputPlan, int]:
    """The inputs to read (files, directories, globs, list files, filesystem URIs) and how many were done already.

    Stems are claimed in order as in one ``segzoo predict`` call; with ``output_dir`` and not ``overwrite``,
    inputs whose three result files exist are left out (PDFs are checked page by page by the actors).
    """
    pairs: list[tuple[str, str]] = []  # (path read, path shown)
    plan = InputPlan()
    for value in inputs:
        value = str(value)
        if is_url(value):
            raise InputError(
                f"input {value}: --ray reads files, folders, globs and list files (local, or any filesystem "
                "pyarrow reads, such as s3://); download http(s) URLs first, or predict them without --ray"
            )
        if "://" in value:
            pairs.extend(_remote(value, plan))
            continue
        expanded = os.path.expanduser(value)
        if any(c in expanded for c in _GLOB_CHARS) and not os.path.exists(expanded):
            matches = sorted(glob.glob(expanded, recursive=True))
            if not matches:
                raise InputError(f"input {value}: the pattern matches no file")
            prefix = _fixed_prefix(expanded)
            plan.shown_as.append((os.path.abspath(prefix or "."), prefix))
            for m in matches:
                if os.path.isdir(m) or _wanted(m):
                    _local(pairs, m)
            continue
        if os.path.splitext(expanded)[1].lower() in LIST_SUFFIXES and os.path.isfile(expanded):
            folder = os.path.dirname(expanded)
            plan.shown_as.append((os.path.abspath(folder or "."), folder))
            lines = Path(expanded).read_text(encoding="utf-8").splitlines()
            entries = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
            if not entries:
                raise InputError(f"list file {value} names no input (one path per line)")
            for entry in entries:
                if "://" in entry:
                    pairs.extend(_remote(entry, plan))
                else:
                    _local(pairs, os.path.normpath(os.path.join(folder, os.path.expanduser(entry))))
            continue
        shown = str(Path(expanded))
        plan.shown_as.append((os.path.abspath(shown), shown))
        _local(pairs, shown)
    owner: dict[str, str] = {}  # stem -> the input that has it
    seen: set[str] = set()
    done = 0
    for read, shown in pairs:
        key = os.path.realpath(read) if "://" not in read else read
        if key in seen:
            continue  # the same file twice: predicted once
        seen.add(key)
        base = stem_of(read)
        stem, n = base, 0
        while stem in owner:
            n += 1
            stem = f"{base}_{n}"
        owner[stem] = key
        if output_dir is not None and not overwrite and not read.lower().endswith(PDF_EXTENSIONS) \
                and outputs_complete(output_dir, stem):
            done += 1
            continue
        plan.items.append((read, shown, stem))
    return plan, done


def _fixed_prefix(pattern: str) -> str:
    """The folder of a glob pattern before its first wildcard (``photos/*/x*.jpg`` → ``photos``)."""
    parts = []
    for part in pattern.split("/"):
        if any(c in part for c in _GLOB_CHARS):
            break
        parts.append(part)
    return "/".join(parts)


def is_address(value: Optional[str]) -> bool:
    """Whether the word after ``--ray`` is a Ray address (``local``, ``auto``, ``HOST:PORT``, ``ray://...``)."""
    return value is None or bool(re.fullmatch(r"local|auto|ray://\S+|[\w.\-\[\]:]+:\d{1,5}", value)) \
        and not os.path.exists(value)


# -- the job -------------------------------------------------------------------------------------------
def connect(address: Optional[str]) -> tuple[Any, bool, float]:
    """``(ray, started_here, seconds)``: join ``address`` (``auto`` or ``HOST:PORT``) or start a local runtime."""
    ray = import_ray()
    t0 = time.perf_counter()
    if ray.is_initialized():
        return ray, False, 0.0
    if address in (None, "", "local"):
        ray.init(address="local", include_dashboard=False, configure_logging=False)  # not a cluster found here
    else:
        if address != "auto":  # joined as `auto` does, so a cluster's token authentication applies the same way
            os.environ["RAY_ADDRESS"] = address
        ray.init(address="auto", configure_logging=False)
    return ray, True, time.perf_counter() - t0


def run_ray_job(ray, plan: InputPlan, output_dir: Path, *, model: Optional[str], create_kwargs: dict,
                batch_size: int = 1, overwrite: bool = False, gpu: bool = False, progress: bool = True) -> dict:
    """Run the plan on the connected cluster; return ``{"done", "skipped", "errors": [...], "actors"}``."""
    resources = ray.cluster_resources()
    if gpu and not resources.get("GPU"):
        raise ConfigError("--device gpu: the Ray cluster has no GPU (ray status lists its resources); "
                          "start Ray on machines with GPUs, or predict with --device cpu")
    actors = max(1, int(resources.get("GPU", 0) if gpu else resources.get("CPU", 1)))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    kwargs = dict(create_kwargs, device="gpu:0" if gpu else create_kwargs.get("device"))  # Ray picks the GPU
    ds = ray.data.read_binary_files([read for read, _, _ in plan.items], include_paths=True, num_cpus=0)
    status = ds.map_batches(
        Segmenter,
        fn_constructor_kwargs=dict(output_dir=str(output_dir), model=model, batch_size=batch_size,
                                   overwrite=overwrite, stems=plan.stems(), shown_as=plan.shown_as, **kwargs),
        batch_size=max(4, batch_size), batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(actors, len(plan.items))),  # a dead actor is restarted and
        num_cpus=1, num_gpus=1 if gpu else None,  # its batch retried (Ray Data's defaults for actor pools)
        runtime_env={"env_vars": segzoo_environment()},
    )
    summary: dict = {"done": 0, "skipped": 0, "errors": [], "actors": min(actors, len(plan.items)), "files": 0}
    try:
        for batch in status.iter_batches(batch_size=None, batch_format="numpy"):
            for path, stem, state, reason, files in zip(batch["path"], batch["stem"], batch["status"],
                                                       batch["reason"], batch["files"]):
                if state == "error":
                    summary["errors"].append({"input_path": str(path), "reason": str(reason)})
                else:
                    summary["done" if state == "done" else "skipped"] += 1
                summary["files"] += int(files)
    except Exception as exc:
        cause = _segzoo_cause(exc)
        if cause is None:
            raise
        raise type(cause)(str(cause)) from None
    return summary


def segzoo_environment() -> dict[str, str]:
    """This process's ``SEGZOO_*`` and PaddleX cache variables, for the actors: a cluster's workers were started
    by ``ray start`` in another shell, and the cache, offline mode, engine and precision must be the driver's."""
    return {k: v for k, v in os.environ.items() if k.startswith("SEGZOO_") or k == "PADDLE_PDX_CACHE_HOME"}


def _segzoo_cause(exc: BaseException) -> Optional[SegzooError]:
    """The :class:`SegzooError` a Ray error wraps (an actor's model that could not be built), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, SegzooError):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return None


def write_errors(output_dir: Path, errors: list[dict]) -> Optional[Path]:
    """``errors.jsonl`` with one line per failed input (atomically); an old one goes when nothing failed."""
    path = output_dir / ERRORS_FILE
    if not errors:
        path.unlink(missing_ok=True)
        return None
    with atomic_write(path) as fh:
        for e in sorted(errors, key=lambda e: e["input_path"]):
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")
    return path


# -- the command ---------------------------------------------------------------------------------------
def run_predict_ray(args) -> int:
    """``segzoo predict --ray [ADDRESS] ...``: the flags of ``segzoo predict`` (see :mod:`segzoo.inference.cli`)."""
    from .sizes import DEFAULT_PIXEL_LIMIT, check_pixel_limit, check_size_pixels, parse_size

    import_ray()  # the missing extra is the first thing to say
    if not is_address(args.ray):  # `segzoo predict --ray photos/`: the word after --ray is an input
        args.input, args.ray = [args.ray, *(args.input or [])], "local"
    out = check_output_dir(args.output or "./output", "--output")
    limit = DEFAULT_PIXEL_LIMIT if args.pixel_limit is None else check_pixel_limit(args.pixel_limit)
    check_size_pixels(parse_size(args.target_size, "--target-size"), limit, "--target-size")
    model, kwargs, inputs = _model_arguments(args)
    plan, done_before = plan_inputs(inputs, out, overwrite=args.overwrite)
    out = make_output_dir(out, "--output").resolve()
    gpu = bool(args.device) and args.device.startswith("gpu")
    summary = {"done": 0, "skipped": 0, "errors": [], "actors": 0, "files": 0}
    if plan.items:
        ray, started_here, seconds = connect(args.ray)
        try:
            if not args.quiet:
                where = f"a local Ray runtime (started in {seconds:.1f} s)" if started_here and args.ray in (None, "local") \
                    else "the Ray cluster"
                print(f"predicting {len(plan.items)} input(s) on {where}", file=sys.stderr)
            summary = run_ray_job(ray, plan, out, model=model, create_kwargs=kwargs, batch_size=args.batch_size or 1,
                                  overwrite=args.overwrite, gpu=gpu, progress=not args.quiet)
        finally:
            if started_here:
                ray.shutdown()
    errors_file = write_errors(out, summary["errors"])
    skipped = done_before + summary["skipped"]
    what = model or "the built-in demo"
    print(f"{summary['done']} input(s) predicted with {what}, results written to {out}"
          + (f"; {skipped} skipped, their results were there already (--overwrite redoes them)" if skipped else ""))
    if errors_file is not None:
        n = len(summary["errors"])
        print(f"segzoo predict: error: {n} of {n + summary['done'] + skipped} input(s) could not be predicted; "
              f"the reasons are in {errors_file}", file=sys.stderr)
        return 1
    return 0


def _model_arguments(args) -> tuple[Optional[str], dict, list]:
    """``(model, create_model keyword arguments, inputs)`` of the predict flags (the demo when none is given)."""
    from ..registry import get_registry

    engine_options = engine_options_of(args)
    kwargs: dict = dict(target_size=args.target_size, device=args.device, engine=args.engine,
                        engine_options=engine_options or None, slide_window=args.slide_window,
                        slide_stride=args.slide_stride)
    if args.pixel_limit is not None:
        kwargs["pixel_limit"] = args.pixel_limit
    if args.model is None and args.input is None and args.model_dir is None:
        from .demo import read_demo_yml

        info = read_demo_yml()
        kwargs.update(model_dir=str(info["weights"]), num_classes=int(info["num_classes"]))
        return str(info["model_name"]), kwargs, [str(info["image"])]
    if not args.input:
        raise ConfigError("give the images to predict with --input PATH... (files, directories, globs or list files)")
    if args.model:
        get_registry().card(args.model)  # an unknown name fails here, with the closest names, not in every actor
    if args.model_dir is not None:
        if not Path(args.model_dir).expanduser().exists():
            raise ConfigError(f"--model-dir {args.model_dir} does not exist")
        kwargs["model_dir"] = os.path.abspath(os.path.expanduser(args.model_dir))
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.no_pretrained:
        kwargs["pretrained"] = False
    return args.model, kwargs, list(args.input)
