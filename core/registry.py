"""The plugin manager: entry-point discovery, lookup by name, listing.

Models come from the entry-point group :data:`MODELS_GROUP` (``segzoo.models``):
one entry point per model, whose name is the model name and whose object is
that model's plugin. Plugins that do not add a model but wrap hooks of every
model (test-time augmentation, logging, ...) come from :data:`PLUGINS_GROUP`
(``segzoo.plugins``). Built-in models are registered exactly like third-party
ones.

``SEGZOO_BLOCK_PLUGINS="name1,name2"`` blocks plugins by entry-point name
(shell wildcards allowed, e.g. ``SegFormer-*``).

The rest of segzoo talks to plugins only through :class:`Registry`; nothing
else calls ``pm.hook`` directly.
"""

from __future__ import annotations

import fnmatch
import os
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Optional

import pluggy
from pydantic import ValidationError

from . import hookspecs
from .card import ModelCard, ModelConfig
from .errors import ConfigError, PluginError, UnknownModelError, suggest

MODELS_GROUP = "segzoo.models"
PLUGINS_GROUP = "segzoo.plugins"
BLOCK_ENV = "SEGZOO_BLOCK_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from (for ``segzoo plugins``)."""

    name: str
    group: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


def natural_key(name: str) -> list:
    """Sort key that puts ``R50`` before ``R101`` and ``B2`` before ``B10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def blocked_names() -> list[str]:
    """The patterns in ``$SEGZOO_BLOCK_PLUGINS``."""
    raw = os.environ.get(BLOCK_ENV, "")
    return [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]


class Registry:
    """A typed facade over pluggy's plugin manager.

    ``Registry()`` loads every entry point; ``Registry(load_entrypoints=False)``
    starts empty (tests and embedding applications register plugins by hand).
    """

    def __init__(self, load_entrypoints: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._cards: dict[str, ModelCard] = {}
        self._info: dict[str, PluginInfo] = {}
        self._blocked = blocked_names()
        self._blocked_found: dict[str, str] = {}  # name of a plugin that was skipped -> the pattern that blocked it
        if load_entrypoints:
            self._load_group(MODELS_GROUP)
            self._load_group(PLUGINS_GROUP)

    # -- registration -------------------------------------------------------------------
    def is_blocked(self, name: str) -> bool:
        return self.blocking_pattern(name) is not None

    def blocking_pattern(self, name: str) -> Optional[str]:
        """The pattern of ``$SEGZOO_BLOCK_PLUGINS`` that blocks ``name``, or ``None``."""
        return next((p for p in self._blocked if fnmatch.fnmatchcase(name, p)), None)

    def _load_group(self, group: str) -> None:
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            if self.is_blocked(ep.name):
                self._blocked_found[ep.name] = self.blocking_pattern(ep.name) or ""
                continue
            if self.pm.has_plugin(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not hide the others' names
                raise PluginError(
                    f"plugin {ep.name!r} ({ep.value}, from the distribution {dist_name!r}) failed to "
                    f"load: {type(exc).__name__}: {exc}. Fix or uninstall it, or skip it with "
                    f"{BLOCK_ENV}={ep.name}"
                ) from exc
            self.register(
                plugin,
                name=ep.name,
                model=(group == MODELS_GROUP),
                distribution=dist_name,
                version=dist.version if dist is not None else "",
                group=group,
            )

    def register(
        self,
        plugin: Any,
        name: Optional[str] = None,
        *,
        model: Optional[bool] = None,
        distribution: str = "",
        version: str = "",
        group: str = "",
    ) -> str:
        """Register ``plugin`` (an object or module with ``@hookimpl`` functions).

        A model plugin (one that implements ``model_card``) is registered under
        its card's name, which must equal ``name`` when ``name`` is given. A
        class is instantiated first (so an entry point may name a class).
        Returns the name it was registered under.
        """
        if isinstance(plugin, type):
            plugin = plugin()
        card = _call_card(plugin)
        if model and card is None:
            raise PluginError(
                f"entry point {name!r} in {MODELS_GROUP!r} does not provide a model card: a model "
                "plugin must implement the `model_card` hook (subclass segzoo.ModelPlugin)"
            )
        if card is not None:
            if not isinstance(card, ModelCard):
                raise PluginError(f"plugin {name or plugin!r}: model_card() must return a segzoo.ModelCard")
            if name is not None and name != card.name:
                raise PluginError(
                    f"entry point {name!r} loads the plugin of model {card.name!r}: the entry-point "
                    "name must be the model name"
                )
            name = card.name
            if name in self._cards:
                raise PluginError(f"two plugins provide the model {name!r}; block one with {BLOCK_ENV}")
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if self.is_blocked(name):
            self._blocked_found[name] = self.blocking_pattern(name) or ""
            return name
        try:
            self.pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from exc
        if card is not None:
            self._cards[name] = card
        hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
        self._info[name] = PluginInfo(name, group or "(registered at run time)", distribution, version, hooks)
        return name

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._cards.pop(name, None)
        self._info.pop(name, None)

    # -- lookup -------------------------------------------------------------------------
    def list_models(self, pattern: Optional[str] = None) -> list[str]:
        """Model names, sorted; ``pattern`` is a shell wildcard (case-insensitive)."""
        names = sorted(self._cards, key=natural_key)
        if pattern:
            pat = pattern.lower()
            names = [n for n in names if fnmatch.fnmatchcase(n.lower(), pat)]
        return names

    def card(self, name: str) -> ModelCard:
        try:
            return self._cards[name]
        except KeyError:
            if name in self._blocked_found:
                value = os.environ.get(BLOCK_ENV, "") if self._blocked == blocked_names() else ",".join(self._blocked)
                raise BlockedModelError(name, self._blocked_found[name], value, self._cards) from None
            raise UnknownModelError(name, self._cards) from None

    def cards(self, pattern: Optional[str] = None) -> list[ModelCard]:
        return [self._cards[n] for n in self.list_models(pattern)]

    def plugins(self) -> list[PluginInfo]:
        return [self._info[n] for n in sorted(self._info, key=natural_key)]

    def config(self, name: str, config: Any = None, **overrides) -> ModelConfig:
        """The model's validated config: ``config`` (a dict or config) plus ``overrides``."""
        card = self.card(name)
        if isinstance(config, card.config_class):
            return config.model_copy(update=overrides) if overrides else config
        if config is not None and not isinstance(config, dict):
            config = config.model_dump()
        return validate_config(card, {**(config or {}), **overrides})

    # -- hooks --------------------------------------------------------------------------
    def build_model(self, name: str, config: ModelConfig) -> Any:
        model = self.pm.hook.build_model(model_name=name, config=config)
        if model is None:
            raise PluginError(f"no plugin built the model {name!r} (its build_model hook returned None)")
        return model

    def preprocess(self, name: str, config: ModelConfig, image) -> Any:
        out = self.pm.hook.preprocess(model_name=name, config=config, image=image)
        if out is None:
            raise PluginError(f"no plugin preprocessed for the model {name!r}")
        return out

    def postprocess(self, name: str, config: ModelConfig, outputs: Any) -> Any:
        out = self.pm.hook.postprocess(model_name=name, config=config, outputs=outputs)
        if out is None:
            raise PluginError(f"no plugin postprocessed for the model {name!r}")
        return out

    def train_step(self, name: str, config: ModelConfig, model, images, labels) -> dict:
        out = self.pm.hook.train_step(
            model_name=name, config=config, model=model, images=images, labels=labels
        )
        if not isinstance(out, dict) or "loss" not in out:
            raise PluginError(f"the train_step hook of {name!r} must return a dict with a 'loss' entry")
        return out


class BlockedModelError(UnknownModelError):
    """A model whose plugin is installed but blocked by ``$SEGZOO_BLOCK_PLUGINS``."""

    def __init__(self, name: str, pattern: str, value: str, known):
        super().__init__(name, known)
        which = f" (pattern {pattern!r})" if pattern and pattern != value else ""
        self.args = (
            f"Model {name!r} is installed but blocked by {BLOCK_ENV}={value!r}{which}; remove "
            f"{'that pattern' if which else 'it'} from {BLOCK_ENV}, or unset the variable, to use the model.",
        )


def _call_card(plugin: Any) -> Optional[ModelCard]:
    fn = getattr(plugin, "model_card", None)
    if fn is None or not hasattr(fn, hookspecs.PROJECT + "_impl"):
        return None
    return fn()


def validate_config(card: ModelCard, values: dict) -> ModelConfig:
    """Validate ``values`` against the model's config class (:meth:`ModelCard.default_config`); errors name the field."""
    try:
        return card.default_config(**values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, card.config_class, prefix=card.name)) from None


def format_validation_error(exc, model_cls=None, prefix: str = "") -> str:
    """One line per problem: ``prefix.field.path: message``; a typo'd key names the closest valid keys."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{loc}" if prefix else loc
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            close = suggest(str(err["loc"][-1]), _fields_at(model_cls, err["loc"]))
            msg = "unknown key" + (f"; did you mean {', '.join(close)}?" if close else "")
        elif err["type"] == "missing":
            msg = "required, but missing"
        elif not isinstance(err.get("input"), dict):
            msg += f" (got {err['input']!r})"
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def _fields_at(model_cls, loc) -> list[str]:
    """The field names of the pydantic model that holds ``loc[-1]``."""
    model = model_cls
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(str(part))
        model = getattr(field, "annotation", None)
    return list(getattr(model, "model_fields", {}))


_registry: Optional[Registry] = None
_lock = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (after installing or blocking plugins)."""
    global _registry
    with _lock:
        _registry = None


def register_plugin(plugin: Any, name: Optional[str] = None) -> str:
    """Register ``plugin`` in the process-wide registry at run time."""
    return get_registry().register(plugin, name)


def list_models(pattern: Optional[str] = None) -> list[str]:
    """Names of the registered models, sorted; ``pattern`` is a shell wildcard, like timm's."""
    return get_registry().list_models(pattern)


def pipeline_default_model(pipeline: str) -> str:
    """The model a pipeline runs when none is named: the card that lists ``pipeline`` in ``default_of``.

    Several such cards (a third-party plugin claiming it too): the first in :func:`list_models` order.
    None (its plugin blocked or uninstalled): a one-line error that says how to name a model.
    """
    for card in get_registry().cards():
        if pipeline in card.default_of:
            return card.name
    raise ConfigError(
        f"no installed model is the default of the {pipeline} pipeline (its plugin is blocked or not installed): "
        f"name one, e.g. -o SubModules.SemanticSegmentation.model_name=NAME (see segzoo list-models)"
    )


def get_model_card(name: str) -> ModelCard:
    """The card of model ``name``; an unknown name suggests the closest ones."""
    return get_registry().card(name)
