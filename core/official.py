"""Where PaddleX's official models, weights and demo datasets live, and segzoo's cache of them.

A model's card says whether PaddleX publishes weights for it
(``ModelCard.official``, see :class:`segzoo.OfficialWeights`); the core knows
no model by name. The files, relative to :func:`base_url`::

    official_inference_model/paddle3.0.0/<MODEL>_infer.tar        the inference model (create_model(name))
    official_pretrained_model/<MODEL>_pretrained.pdparams          the whole trained model
    official_pretrained_model/<MODEL>_backbone_imagenet_pretrained.pdparams   ImageNet backbone
    data/<dataset>.tar                                             the tutorial's demo datasets

The base URL is ``$SEGZOO_MODEL_BASE_URL`` when set (tests point it at
127.0.0.1), else ``$SEGZOO_MODEL_MIRROR`` + ``/paddlex/`` (a mirror that keeps
the official paths), else ``https://paddle-model-ecology.bj.bcebos.com/paddlex/``.

segzoo's cache (``$SEGZOO_HOME``, default ``~/.cache/segzoo``)::

    official_models/<MODEL>/          extracted inference models (PaddleX's own layout)
    official_pretrained/<file>        official .pdparams
    weights/<hash>/<file>             weights given by URL
    datasets/<name>/                  demo datasets (fetch_dataset's default place)

An inference model is looked up in PaddleX's cache
(``${PADDLE_PDX_CACHE_HOME:-~/.paddlex}/official_models/<MODEL>/``, used when
complete), then in segzoo's, and only then downloaded (see
:mod:`segzoo.download`). With ``SEGZOO_OFFLINE=1`` nothing is downloaded; a
missing file is an error naming the URL and the folder it belongs in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

from .paths import cache_dir
from .download import OFFLINE_ENV, entry_lock, fetch_file, fetch_tree, offline
from .errors import ConfigError, DownloadError, WeightsError, suggest
from .registry import get_registry

BASE_URL_ENV = "SEGZOO_MODEL_BASE_URL"
MIRROR_ENV = "SEGZOO_MODEL_MIRROR"
PADDLEX_CACHE_ENV = "PADDLE_PDX_CACHE_HOME"
OFFICIAL_HOST = "https://paddle-model-ecology.bj.bcebos.com"
DEFAULT_BASE_URL = OFFICIAL_HOST + "/paddlex/"
#: the version folder of PaddleX's official inference models (it changed over PaddleX's history)
INFERENCE_VERSION = "paddle3.0.0"
#: the demo datasets of PaddleX's segmentation tutorial
DATASETS = {
    "seg_optic_examples": "SegDataset, 2 classes (optic disc), 267 train / 76 val images",
    "seg_dataset_to_convert": "LabelMe annotations to convert with `segzoo check-dataset --convert LabelMe`",
}
#: known sha256 of files, by path relative to the base URL (PaddleX publishes none; add them here)
SHA256: dict[str, str] = {}

_INFERENCE_FILES = ("inference.yml", ("inference.json", "inference.pdmodel"), "inference.pdiparams")
WEIGHT_KINDS = ("model", "backbone")


# -- where things are -------------------------------------------------------------------------------
def base_url() -> str:
    """The URL the official paths are relative to (ends with ``/``)."""
    explicit = os.environ.get(BASE_URL_ENV, "").strip()
    if explicit:
        return explicit.rstrip("/") + "/"
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return mirror.rstrip("/") + "/paddlex/"
    return DEFAULT_BASE_URL


def inference_path(model_name: str) -> str:
    return f"official_inference_model/{INFERENCE_VERSION}/{_published(model_name)}_infer.tar"


def weights_path(model_name: str, kind: str = "model") -> str:
    """``official_pretrained_model/<file>`` of the whole model (``"model"``) or its backbone init (``"backbone"``)."""
    if kind not in WEIGHT_KINDS:
        raise ConfigError(f"official weights kind {kind!r}: must be one of {', '.join(WEIGHT_KINDS)}")
    official = official_info(model_name)
    suffix = "_backbone_imagenet_pretrained" if kind == "backbone" and official.backbone == "backbone_imagenet" else "_pretrained"
    return f"official_pretrained_model/{official.name}{suffix}.pdparams"


def dataset_path(name: str) -> str:
    return f"data/{_dataset_name(name)}.tar"


def paddlex_models_dir() -> Path:
    """PaddleX's cache of inference models: ``${PADDLE_PDX_CACHE_HOME:-~/.paddlex}/official_models``."""
    return Path(os.environ.get(PADDLEX_CACHE_ENV) or "~/.paddlex").expanduser() / "official_models"


def models_dir() -> Path:
    return cache_dir() / "official_models"


def pretrained_dir() -> Path:
    return cache_dir() / "official_pretrained"


def official_info(model_name: str):
    """The card's :class:`~segzoo.OfficialWeights`; a :class:`WeightsError` when the model has none."""
    official = get_registry().card(model_name).official
    if official is None:
        raise WeightsError(
            f"{model_name} has no official weights (its plugin publishes none): give weights with "
            "model_dir=<exported dir or .pdparams> or pretrained=<.pdparams>, or pretrained=False for random weights"
        )
    return official


def _published(model_name: str) -> str:
    return official_info(model_name).name


# -- the cache, without the network -----------------------------------------------------------------
def missing_inference_files(folder) -> Optional[str]:
    """``None`` when ``folder`` holds a complete inference model, else what it lacks."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} does not exist"
    for want in _INFERENCE_FILES:
        names = want if isinstance(want, tuple) else (want,)
        if not any((folder / n).is_file() for n in names):
            return f"no {' or '.join(names)} in {folder}"
    return None


def cached_inference_dir(model_name: str) -> Optional[Path]:
    """The complete cached inference model of ``model_name`` (PaddleX's cache first), or ``None``. No network."""
    name = _published(model_name)
    for root in (paddlex_models_dir(), models_dir()):
        if missing_inference_files(root / name) is None:
            return root / name
    return None


def cache_status(model_name: str) -> Optional[str]:
    """``"segzoo"``, ``"paddlex"`` or ``None``: whose cache holds the inference model (for list-models)."""
    card_official = _card_official(model_name)
    if card_official is None:
        return None
    for where, root in (("paddlex", paddlex_models_dir()), ("segzoo", models_dir())):
        if missing_inference_files(root / card_official.name) is None:
            return where
    return None


def _card_official(model_name: str):
    return get_registry().card(model_name).official


# -- the public calls that may download ------------------------------------------------------------
def official_inference_dir(model_name: str) -> Path:
    """The extracted official inference model: PaddleX's cache, segzoo's cache, or downloaded into it."""
    found = cached_inference_dir(model_name)
    if found is not None:
        return found
    rel = inference_path(model_name)
    dest = models_dir() / _published(model_name)
    _refuse_offline(f"{model_name}'s official inference model", rel, f"extract it into {dest}", model_name)
    return fetch_tree(
        base_url() + rel, dest, sha256=SHA256.get(rel), what=f"{model_name} inference model",
        check=missing_inference_files,
    )


def official_weights(model_name: str, kind: str = "model") -> Path:
    """The official ``.pdparams``: ``"model"`` (whole trained model) or ``"backbone"`` (training's default init).

    For models whose card says ``backbone="model"`` (PaddleX's MaskFormer),
    ``"backbone"`` is the whole model's file too.
    """
    rel = weights_path(model_name, kind)
    dest = pretrained_dir() / rel.rpartition("/")[2]
    if dest.is_file():
        return dest
    _refuse_offline(f"{model_name}'s official {kind} weights", rel, f"save it as {dest}", model_name, training=True)
    return fetch_file(base_url() + rel, dest, sha256=SHA256.get(rel), what=dest.name)


def resolve_weights(spec, model_name: str) -> Path:
    """A weights spec → a local ``.pdparams`` path.

    ``"official"``: the whole official model; ``"official_backbone"``: the
    official backbone init; an ``http(s)://`` URL: fetched once into
    ``weights/`` of the cache; anything else: a local path, which must exist.
    """
    text = str(spec).strip()
    if text == "official":
        return official_weights(model_name, "model")
    if text == "official_backbone":
        return official_weights(model_name, "backbone")
    if text.lower().startswith(("http://", "https://")):
        key = hashlib.sha256(text.encode()).hexdigest()[:16]
        filename = unquote(urlsplit(text).path.rpartition("/")[2]) or "weights.pdparams"
        dest = cache_dir() / "weights" / key / filename
        if dest.is_file():
            return dest
        if offline():
            raise DownloadError(f"weights {text} are not cached and {OFFLINE_ENV}=1 forbids downloading them")
        return fetch_file(text, dest, what=filename)
    path = Path(text).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"weights file {path} does not exist; give a .pdparams path, an http(s) URL, "
            "'official' (the whole official model) or 'official_backbone'"
        )
    return path


def fetch_dataset(name: str, dest=None) -> Path:
    """A demo dataset of PaddleX's tutorial, extracted into ``dest`` (default: ``datasets/<name>`` of the cache)."""
    rel = dataset_path(name)
    dest = Path(dest).expanduser() if dest is not None else cache_dir() / "datasets" / name
    _refuse_offline(f"dataset {name}", rel, f"extract it into {dest}", None, dataset=name)
    return fetch_tree(base_url() + rel, dest, sha256=SHA256.get(rel), what=f"dataset {name}", check=_not_empty)


def _dataset_name(name: str) -> str:
    if name not in DATASETS:
        close = suggest(name, DATASETS)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown dataset {name!r}; the demo datasets are {', '.join(DATASETS)}.{hint}")
    return name


def _not_empty(folder: Path) -> Optional[str]:
    return None if folder.is_dir() and any(folder.iterdir()) else f"{folder} is empty"


def _refuse_offline(what: str, rel: str, put: str, model: Optional[str], training=False, dataset=None) -> None:
    if not offline():
        return
    if dataset:
        cmd = f"segzoo download --dataset {dataset}"
    else:
        cmd = f"segzoo download {model}" + (" --training" if training else "")
    raise DownloadError(
        f"{what} is not cached and {OFFLINE_ENV}=1 forbids downloading it: run `{cmd}` on a machine "
        f"with network (same SEGZOO_HOME), or fetch {base_url() + rel} and {put}"
    )


# -- listing and clearing the cache -----------------------------------------------------------------
@dataclass
class CacheEntry:
    kind: str  # "model", "weights", "dataset", "paddlex" (PaddleX's cache, never cleared by segzoo)
    name: str
    path: Path
    size: int


def cache_entries() -> list[CacheEntry]:
    """What segzoo's cache (and PaddleX's model cache) holds. No network, no paddle."""
    entries = []
    for kind, root, want_dir in (
        ("model", models_dir(), True),
        ("weights", pretrained_dir(), False),
        ("dataset", cache_dir() / "datasets", True),
        ("paddlex", paddlex_models_dir(), True),
    ):
        for path in _visible(root):
            if path.is_dir() == want_dir:
                entries.append(CacheEntry(kind, path.name, path, _size(path)))
    for folder in _visible(cache_dir() / "weights"):
        for path in _visible(folder):
            entries.append(CacheEntry("weights", path.name, path, _size(path)))
    return entries


def clear(name: str) -> list[Path]:
    """Remove ``name`` from segzoo's cache: a model (its inference model and official weights) or a dataset.

    Returns what was removed. PaddleX's cache is never touched. A name with
    nothing cached is a :class:`ConfigError` listing what is.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"{name!r} is not the name of a cache entry; see `segzoo cache`")
    targets = [models_dir() / name, cache_dir() / "datasets" / name, pretrained_dir() / name]
    targets += [pretrained_dir() / f"{name}{s}.pdparams" for s in ("_pretrained", "_backbone_imagenet_pretrained")]
    url_weights = cache_dir() / "weights"
    targets += [e.path for e in cache_entries() if e.kind == "weights" and e.path.parent.parent == url_weights
                and e.name == name]
    removed = []
    for path in targets:
        leftovers = [x for x in (path.parent / f".{path.name}.part", path.parent / f".{path.name}.tar.part") if x.exists()]
        if not path.exists() and not leftovers:
            continue
        with entry_lock(path, name):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            for extra in leftovers:
                extra.unlink(missing_ok=True)
        removed.append(path)
        if path.parent.parent == url_weights:  # the folder of one URL: its lock file goes too
            shutil.rmtree(path.parent, ignore_errors=True)
    if not removed:
        in_paddlex = paddlex_models_dir() / name
        if in_paddlex.is_dir():
            raise ConfigError(f"{name} is only in PaddleX's cache ({in_paddlex}); segzoo does not clear PaddleX's cache")
        names = sorted({e.name for e in cache_entries() if e.kind != "paddlex"})
        close = suggest(name, names)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"nothing named {name!r} is in segzoo's cache ({cache_dir()}).{hint} See `segzoo cache`.")
    return removed


def _visible(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
