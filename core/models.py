"""Building a model and its weights: ``build_model``, and weights with the run config saved beside them.

``build_model(name, config, **overrides)`` builds a network from its validated
config (loading ``pretrained`` weights when given). :func:`build_with_weights`
builds the network that existing weights fit.

``segzoo train`` writes ``config.yaml`` (the run's config, every default
written out) into every checkpoint folder beside ``model.pdparams``
(``iter_N/``, ``best_model/``), and ``model.pdstates`` records the model's
name and class count. So a weights file brings its run's config: evaluation,
export and prediction build the network the weights were trained as, without
repeating the training's ``-o`` overrides.

Which value wins, lowest first:

1. the model's defaults, then the caller's config file (``-c cfg.yaml``);
2. the run's config saved beside the weights (:func:`read_saved_run`);
3. what the caller set explicitly: ``-o Section.key=value``, ``--num-classes``,
   keyword arguments of ``create_model`` / ``evaluate`` / ``export_model``;
4. the weights' shapes, for the class count only, when nothing explicit gives
   it (PaddleX's own ``.pdparams`` have no saved config).

An explicit class count or model name that contradicts the weights is a
:class:`WeightsFitError` whose message names the exact key to set, spelled for
where the call came from (``num_classes=4`` in Python, ``-o
Train.num_classes=4`` with ``-c``, ``--num-classes 4`` with flags; see
:meth:`WeightsFitError.respell`). (These lived in ``segzoo.inference.runconfig``,
which re-exports them.)
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Optional

import numpy as np

from .card import ModelConfig
from .errors import ConfigError, WeightsError
from .registry import get_registry
from .weights import load_weights, read_state_dict

log = logging.getLogger("segzoo")


def build_model(name: str, config: Optional[Any] = None, **config_overrides) -> Any:
    """Build the network ``name`` (a ``paddle.nn.Layer``).

    ``config`` is a dict or the model's config object; ``config_overrides`` are
    its fields (``num_classes=3``, ``pretrained="model.pdparams"``, ...), checked
    by the model's pydantic config before anything is built. With ``pretrained``,
    the weights are loaded and a report of missing / unexpected / mis-shaped
    entries is logged and kept as ``model.segzoo_load_report``.
    """
    registry = get_registry()
    cfg = registry.config(name, config, **config_overrides)
    return build_from_config(name, cfg)


def build_from_config(name: str, config: ModelConfig) -> Any:
    """Build the network ``name`` from its validated ``config``, with its ``pretrained`` weights loaded."""
    model = get_registry().build_model(name, config)
    if config.pretrained is not None:
        model.segzoo_load_report = load_weights(model, config.pretrained)
    return model


# -- the run's config saved beside weights ------------------------------------------------------
#: the run's config, copied into every checkpoint folder by ``segzoo train``
RUN_CONFIG = "config.yaml"

#: how each caller spells a key: ``STYLES[style][field](value)``
STYLES = {
    "python": {"num_classes": "num_classes={}", "model_name": "model_name={!r}", "*": "{field}={value!r}"},
    "config": {"num_classes": "-o Train.num_classes={}", "model_name": "-o Global.model={}", "*": "-o Model.{field}={value}"},
    "flags": {"num_classes": "--num-classes {}", "model_name": "--model {}", "*": "{field}={value!r}"},
}


def spell(field_name: str, value: Any, style: str = "python") -> str:
    """How the caller sets ``field_name`` to ``value``: ``num_classes=4``, ``-o Train.num_classes=4``, ..."""
    table = STYLES.get(style, STYLES["python"])
    if field_name in table:
        return table[field_name].format(value)
    return table["*"].format(field=field_name, value=value)


class WeightsFitError(WeightsError):
    """Weights that do not fit the model asked for; the message names the key to set.

    ``template`` holds ``{key}`` where the setting to use goes (``field_name``
    = ``value``) and ``{asked}`` where the setting that was given goes
    (``field_name`` = ``asked``). :meth:`respell` gives the same error spelled
    for another caller (the CLI re-spells Python's ``num_classes=4`` as
    ``-o Train.num_classes=4`` or ``--num-classes 4``).
    """

    def __init__(self, template: str, field_name: str, value: Any, asked: Any = None, style: str = "python"):
        self.template, self.field_name, self.value, self.asked, self.style = template, field_name, value, asked, style
        super().__init__(
            template.format(key=spell(field_name, value, style), asked=spell(field_name, asked, style))
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def respell(self, style: str) -> "WeightsFitError":
        return WeightsFitError(self.template, self.field_name, self.value, self.asked, style)


@contextlib.contextmanager
def weights_errors_spelled(style: str):
    """Inside it, a :class:`WeightsFitError` names the key the way the caller writes it (a ``STYLES`` key)."""
    try:
        yield
    except WeightsFitError as exc:
        raise exc.respell(style) from None


@dataclass(frozen=True)
class SavedRun:
    """What a training run recorded about its weights.

    ``source`` is the file it was read from (``config.yaml`` or
    ``model.pdstates``), ``fields`` the model-config fields it sets
    (``num_classes`` included when known), ``dataset_dir`` the run's
    ``Global.dataset_dir`` (as written in its config).
    """

    source: Path
    model_name: Optional[str]
    fields: dict = field(default_factory=dict)
    dataset_dir: Optional[str] = None

    @property
    def num_classes(self) -> Optional[int]:
        return self.fields.get("num_classes")


def read_saved_run(weights: Path) -> Optional[SavedRun]:
    """The run's config saved beside ``weights`` (a ``.pdparams`` file), or ``None``.

    ``config.yaml`` in the same folder when ``weights`` is a ``model.pdparams``
    (the name ``segzoo train`` writes) and it is a segzoo config
    (``Global.model`` and ``Train.num_classes`` set); else ``model_name`` and
    ``num_classes`` of the ``.pdstates`` file of the same stem; else ``None``.
    """
    weights = Path(weights).expanduser()
    if weights.is_dir():  # a checkpoint folder given for its model.pdparams
        weights = weights / "model.pdparams"
    # only beside segzoo's own file name: another config.yaml next to some .pdparams may be anything
    saved = _from_config_yaml(weights.parent / RUN_CONFIG) if weights.name == "model.pdparams" else None
    if saved is None:
        saved = _from_states(weights.with_suffix(".pdstates"))
    return saved


def _from_config_yaml(path: Path) -> Optional[SavedRun]:
    import yaml

    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{path}: cannot read the training run's config saved beside the weights ({type(exc).__name__}); "
            "restore it from the run's output folder, or remove it to read the class count from the weights"
        ) from None
    if not isinstance(data, dict):
        return None
    glob, train, model = data.get("Global"), data.get("Train"), data.get("Model")
    if not isinstance(glob, dict) or not isinstance(train, dict) or not isinstance(glob.get("model"), str):
        return None  # not a segzoo config (another tool's config.yaml)
    if not isinstance(train.get("num_classes"), int) or isinstance(train.get("num_classes"), bool):
        return None
    # what builds the network: the Model section and the class count (the Train section's other keys,
    # learning rate, warm-up, crop, only matter to training)
    fields: dict = dict(model) if isinstance(model, dict) else {}
    fields["num_classes"] = train["num_classes"]
    fields.pop("pretrained", None)
    data_dir = glob.get("dataset_dir")
    return SavedRun(path, glob["model"], fields, str(data_dir) if isinstance(data_dir, (str, int)) else None)


def _from_states(path: Path) -> Optional[SavedRun]:
    if not path.is_file():
        return None
    import paddle

    try:
        states = paddle.load(str(path))
    except Exception:  # another tool's .pdstates: nothing to learn from it
        return None
    if not isinstance(states, dict):
        return None
    name = states.get("model_name") if isinstance(states.get("model_name"), str) else None
    nc = states.get("num_classes")
    fields = {"num_classes": int(nc)} if isinstance(nc, int) and not isinstance(nc, bool) and nc > 0 else {}
    if name is None and not fields:
        return None
    return SavedRun(path, name, fields)


# -- meeting the caller's config ----------------------------------------------------------------
def apply_saved_run(model_name: str, config, weights: Path, explicit: Collection[str]):
    """``config`` with the saved run's fields that ``explicit`` does not set; errors on contradictions.

    Returns ``(config, saved)``; ``saved`` is ``None`` when the weights carry no run config.
    """
    saved = read_saved_run(weights)
    if saved is None:
        return config, None
    if saved.model_name and saved.model_name != model_name:
        raise WeightsFitError(
            f"{weights} holds weights of {saved.model_name} (see {saved.source}), not of {model_name}; "
            "set {key} to use them",
            "model_name", saved.model_name, model_name,
        )
    if "num_classes" in explicit and saved.num_classes and saved.num_classes != config.num_classes:
        raise WeightsFitError(
            f"{weights} was trained with {saved.num_classes} classes (see {saved.source}), but {{asked}} "
            "was given; set {key}, or leave the class count out to take it from the weights",
            "num_classes", saved.num_classes, config.num_classes,
        )
    known = type(config).model_fields
    current = config.model_dump()
    updates = {
        k: v for k, v in saved.fields.items() if k in known and k not in explicit and _differs(current.get(k), v)
    }
    if not updates:
        return config, saved
    log.info(
        "%s: using %s of the run's config saved beside the weights (%s)",
        model_name, ", ".join(f"{k}={v!r}" for k, v in sorted(updates.items())), saved.source,
    )
    return get_registry().config(model_name, {**current, **updates}), saved


def _differs(a: Any, b: Any) -> bool:
    norm = lambda v: list(v) if isinstance(v, (list, tuple)) else (str(v) if isinstance(v, Path) else v)  # noqa: E731
    return norm(a) != norm(b)


# -- building the network -----------------------------------------------------------------------
def build_with_weights(model_name: str, config, weights: Path, given):
    """Build ``model_name`` and load ``weights``; the result's config is the one the weights fit.

    ``given`` says which config fields the caller set explicitly: a collection
    of field names, or a bool (legacy: whether ``num_classes`` was given; the
    other explicit fields are those ``config`` was created with). Fields not
    given come from the run's config saved beside the weights when there is one
    (see :func:`read_saved_run`), and the class count from the
    weights' shapes when nothing else gives it. An explicit value the weights
    contradict is a :class:`WeightsFitError` naming
    the key to set.
    """
    registry = get_registry()
    if isinstance(given, bool):
        explicit = set(getattr(config, "model_fields_set", ())) - {"num_classes"} | ({"num_classes"} if given else set())
    else:
        explicit = set(given)
    config, saved = apply_saved_run(model_name, config, weights, explicit)
    layer = registry.build_model(model_name, config)
    state = read_state_dict(weights)
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    shapes = {k: tuple(getattr(v, "shape", None) or np.shape(v)) for k, v in state.items() if k in own}
    mismatched = [(k, own[k], shapes[k]) for k in own if k in shapes and shapes[k] != own[k]]
    guess = guess_num_classes(mismatched, config.num_classes)
    del state
    if mismatched and guess and "num_classes" in explicit:
        raise WeightsFitError(
            f"{weights} holds a {guess}-class {model_name}, but {{asked}} was given; set {{key}}, or leave "
            "the class count out to take it from the weights",
            "num_classes", guess, config.num_classes,
        )
    if mismatched and guess:
        log.info("%s: %s holds %d classes; building the model with num_classes=%d", model_name, weights, guess, guess)
        config = registry.config(model_name, {**config.model_dump(), "num_classes": guess})
        layer = registry.build_model(model_name, config)
    report = load_weights(layer, weights, quiet=True)
    if report.mismatched or report.missing:
        where = f" (its run's config: {saved.source})" if saved is not None else ""
        raise WeightsError(
            f"{weights}{where} does not fit {model_name} with num_classes={config.num_classes}: "
            f"{report.summary()}. Are these the weights of another model? Predicting with partly random "
            "weights would give meaningless masks."
        )
    log.info("%s", report.summary())
    return layer, config


def guess_num_classes(mismatched, num_classes: int) -> Optional[int]:
    """The class count of the file's head, when every mismatch is the class dimension.

    A tensor counts when its shape differs from the model's in one axis only,
    where the model has ``num_classes`` (or ``num_classes + 1``: a "no object"
    class); every such tensor must tell the same count.
    """
    guesses = set()
    for _name, model_shape, file_shape in mismatched:
        if len(model_shape) != len(file_shape) or not model_shape:
            return None
        axes = [i for i, (a, b) in enumerate(zip(model_shape, file_shape)) if a != b]
        if len(axes) != 1:
            return None
        mine, theirs = model_shape[axes[0]], file_shape[axes[0]]
        if mine == num_classes:
            guesses.add(theirs)
        elif mine == num_classes + 1:
            guesses.add(theirs - 1)
        else:
            return None
    found = guesses.pop() if len(guesses) == 1 else None
    return found if found is not None and found > 0 else None


# -- the network of an exported program ---------------------------------------------------------
#: ``conv2d_12.w_0`` (a parameter's name as paddle made it) -> kind ``conv2d``, number 12, slot ``w_0``;
#: a loaded program may append ``_0`` to each name
_PARAM_NAME = re.compile(r"^(?P<kind>.+?)_(?P<n>\d+)\.(?P<slot>[a-z]+_\d+)(?:_\d+)?$")


def _by_number(tensors: dict, where: str) -> dict:
    """``{(kind, number relative to the kind's first, slot): tensor}`` of tensors named as paddle names parameters."""
    parsed = []
    for name, tensor in tensors.items():
        m = _PARAM_NAME.match(name)
        if m is None:
            raise WeightsError(f"{where}: cannot place the parameter {name!r} (not a name paddle gives a layer's parameter)")
        parsed.append((m["kind"], int(m["n"]), m["slot"], tensor))
    first: dict = {}
    for kind, n, _slot, _t in parsed:
        first[kind] = min(n, first.get(kind, n))
    return {(kind, n - first[kind], slot): t for kind, n, slot, t in parsed}


def network_from_export(model_name: str, config, model_prefix: Path, program: Any = None):
    """Build ``model_name``'s network with the parameters of an exported program; return ``(layer, config)``.

    An exported program (``inference.json`` + ``inference.pdiparams``, such as
    PaddleX's official inference model) keeps each parameter under the name
    paddle gave it when the network was built: ``conv2d_12.w_0`` is the weight
    of the 13th convolution built. Building the same network again creates its
    parameters in the same order, so within each kind (convolution weights,
    batch-norm means, ...) the n-th of the export is the n-th of the new
    network, counted from the kind's first (an export leaves out parameters
    inference does not use, such as auxiliary heads, and the numbering starts
    where the building process was). Every parameter of the export must find
    its place, with its shape (the class count is taken from
    the export when it differs), else :class:`WeightsError`; the caller compares
    the two networks' outputs before trusting the result. ``program`` is
    ``paddle.jit.load(model_prefix)`` when the caller loaded it already.
    """
    registry = get_registry()
    where = f"{model_prefix}.json"
    if program is None:
        import paddle

        program = paddle.jit.load(str(model_prefix))
    theirs = _by_number({p.name: p for p in program.parameters()}, where)
    for attempt in range(2):
        layer = registry.build_model(model_name, config)
        mine = _by_number({t.name: t for t in layer.state_dict().values()}, model_name)
        missing = [key for key in theirs if key not in mine]
        if missing:
            raise WeightsError(f"{where} does not hold a {model_name} network: {len(missing)} of its parameters "
                               f"have no place in it (the first: {missing[0][0]} #{missing[0][1]} {missing[0][2]})")
        pairs = [(mine[key], theirs[key]) for key in theirs]
        mismatched = [(a.name, tuple(a.shape), tuple(b.shape)) for a, b in pairs if tuple(a.shape) != tuple(b.shape)]
        if not mismatched:
            break
        guess = guess_num_classes(mismatched, config.num_classes)
        if attempt or guess is None:
            name, own, file = mismatched[0]
            raise WeightsError(f"{where} does not fit {model_name}: {name} is {list(file)} there, {list(own)} here")
        config = registry.config(model_name, {**config.model_dump(), "num_classes": guess})
    for a, b in pairs:
        a.set_value(b)
    layer.eval()
    return layer, config
