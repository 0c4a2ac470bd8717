"""Loading a config: the YAML file, ``-o Section.key=value`` overrides, and validation before any work.

Overrides (``-o Train.epochs_iters=10``, ``-o CheckDataset.split.enable=True``)
parse their value with ``yaml.safe_load`` (so ``10`` is an int, ``True`` a
bool, ``[512, 256]`` a list, ``null`` None; ``1e-3`` is read as a float too),
and are applied in order on top of the file. For a field that takes a tuple or
a list and no text, ``128,128`` means ``[128, 128]`` (:func:`split_sequences`).
"""

from __future__ import annotations

import copy
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ..registry import format_validation_error, get_registry
from .modelconfig import model_config_for
from .schema import SegzooConfig

__all__ = ["load_config", "parse_override", "apply_overrides", "split_sequences"]

_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)$")


def _coerce(text: str) -> Any:
    """An override value: YAML, with ``1e-3`` read as a float (YAML 1.1 reads it as a string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"Train.epochs_iters=10"`` → ``(["Train", "epochs_iters"], 10)``."""
    if "=" not in item:
        raise ConfigError(f"-o {item!r}: expected Section.key=value, e.g. -o Train.epochs_iters=10")
    key, _, raw = item.partition("=")
    path = [p.strip() for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(f"-o {item!r}: the key must be Section.key (e.g. Global.mode, CheckDataset.split.enable)")
    return path, _coerce(raw)


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Apply ``-o`` overrides to the raw config dict (in order); returns ``data``."""
    for item in overrides or ():
        path, value = parse_override(item)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"-o {item}: {where} is a value ({child!r}), not a section with keys")
            node = child
        node[path[-1]] = value
    return data


def split_sequences(data: dict, overrides: Iterable[str]) -> dict:
    """``-o Train.crop_size=128,128`` as ``[128, 128]``: a comma-separated override of a tuple or list field.

    Only for fields whose type takes a tuple or list and no text (``Global.device=gpu:0,1`` stays text),
    the ``Model`` section's by the config class of ``Global.model``. Returns ``data``.
    """
    for item in overrides or ():
        path, _ = parse_override(item)
        parent = data
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        value = parent.get(path[-1]) if isinstance(parent, dict) else None
        if isinstance(value, str) and "," in value and not value.strip().startswith(("[", "(")):
            annotation = _field_annotation(path, data)
            if annotation is not None and _takes_sequence(annotation):
                parent[path[-1]] = [_coerce(part.strip()) for part in value.split(",")]
    return data


def _field_annotation(path: list, data: dict) -> Any:
    """The type of the field at ``path`` (``["Train", "crop_size"]``), or ``None`` when it is not known."""
    model: Any = SegzooConfig
    if path[0] == "Model":
        name = (data.get("Global") or {}).get("model") if isinstance(data.get("Global"), dict) else None
        try:
            model = get_registry().card(str(name)).config_class
        except Exception:  # no model yet, or an unknown one: validation names that
            return None
        path = path[1:]
    for depth, part in enumerate(path):
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        if depth == len(path) - 1:
            return field.annotation
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
    return None


def _takes_sequence(annotation: Any) -> bool:
    """Whether a field of this type takes a tuple or list and no text."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return not any(a is str for a in args) and any(_takes_sequence(a) for a in args)
    return origin in (tuple, list) or annotation in (tuple, list)


def _read_yaml(path: Union[str, os.PathLike]) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; print a complete one with `segzoo config MODEL > {p.name}`")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the config ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{p}{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a mapping of sections (Global, Train, ...), got {type(data).__name__}")
    return data


def _validate(data: dict, source: str = "", overrides: Sequence[str] = ()) -> SegzooConfig:
    try:
        return SegzooConfig.model_validate(data)
    except ValidationError as exc:
        msg = format_validation_error(exc, SegzooConfig)
        if any(err["type"] in ("tuple_type", "list_type") for err in exc.errors()):
            msg += " (a tuple or list is written as 128,128 or [128,128])"
        # name where the bad value came from: the -o items when they hold every bad key, else the file
        keys = [".".join(parse_override(o)[0]) for o in overrides]
        locs = [".".join(str(p) for p in err["loc"]) for err in exc.errors()]
        from_o = bool(keys) and all(
            any(loc == k or loc.startswith(k + ".") or k.startswith(loc + ".") for k in keys) for loc in locs
        )
        if from_o:
            raise ConfigError(f"-o {msg}") from None
        raise ConfigError(f"{source}: {msg}" if source else msg) from None


def load_config(
    path: Union[str, os.PathLike, None] = None,
    overrides: Sequence[str] = (),
    data: Optional[Mapping] = None,
    check_model: bool = True,
) -> SegzooConfig:
    """Read, override and validate a config; nothing else happens before this succeeds.

    ``path`` is a YAML file, ``data`` a dict (both may be given: ``data`` is
    applied on top of the file), ``overrides`` are ``-o`` items. With
    ``check_model``, ``Global.model`` must be a registered model and the
    ``Model`` section must validate against its config class.
    Raises :class:`ConfigError` naming the field (and the closest valid key).
    """
    raw: dict = _read_yaml(path) if path is not None else {}
    if data:
        raw = _deep_merge(raw, copy.deepcopy(dict(data)))
    apply_overrides(raw, overrides)
    split_sequences(raw, overrides)
    source = str(path) if path is not None else ""
    if "Global" not in raw or not isinstance(raw.get("Global"), dict) or "model" not in raw["Global"]:
        hint = "; add `Global: {model: NAME}` or -o Global.model=NAME"
        raise ConfigError(f"{source + ': ' if source else ''}Global.model: required, but missing{hint}")
    cfg = _validate(raw, source, overrides)
    if check_model:
        model_config_for(cfg)
    return cfg


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
