"""The fresh install: everything segzoo reaches imports from what pyproject.toml declares.

CI runs this suite in a brand-new virtual environment made by `.ci/run` with the
README's install command and nothing else, so a package that paddleseg (or
segzoo) imports but pyproject.toml does not declare fails *here*, in one named
test, instead of in hundreds of scattered ones.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import segzoo

ROOT = Path(__file__).resolve().parents[1]

#: every paddleseg module the built-in plugins, the losses and the trainer reach
PADDLESEG_MODULES = [
    "paddleseg",
    "paddleseg.models",
    "paddleseg.models.backbones",
    "paddleseg.models.losses",
    "paddleseg.models.layers.tensor_fusion_helper",
    "paddleseg.models.backbones.swin_transformer",
    "paddleseg.models.backbones.mix_transformer",
    "paddleseg.utils",
    "paddleseg.cvlibs",
    "paddleseg.transforms",
    "paddleseg.utils.metrics",
]

#: segzoo's own modules on every path a user takes: train step, evaluation, export, ONNX, serving, inputs
SEGZOO_MODULES = [
    "segzoo.training.trainer",
    "segzoo.training.evaluation",
    "segzoo.training.plots",
    "segzoo.training.distributed",
    "segzoo.inference.export",
    "segzoo.inference.onnx",
    "segzoo.inference.openvino",
    "segzoo.official",
    "segzoo.download",
    "segzoo.inference.engines",
    "segzoo.inference.inputs",
    "segzoo.inference.predictor",
    "segzoo.datasets.check",
    "segzoo.datasets.labelme",
    "segzoo.serving.app",
    "segzoo.serving.server",
]

#: third-party modules imported lazily inside functions on those paths
LAZY_THIRD_PARTY = ["paddle2onnx", "onnxruntime", "openvino", "pypdfium2", "httpx", "uvicorn", "fastapi", "python_multipart",
                    "matplotlib", "prettytable", "tqdm", "filelock", "scipy.optimize", "sklearn.metrics",
                    "PIL.Image", "cv2", "yaml"]


#: modules imported only when present (inside ``try: ... except ImportError``), by whom
OPTIONAL = {
    "pygments": "httpx's command-line client (httpx/__init__.py guards the import)",
    "rich": "httpx's command-line client too; present here because the test extra's import-linter needs it",
    "socks": "requests' SOCKS proxies (requests/adapters.py guards the import); PySocks is here for the browser extra's selenium",
    "sniffio": "anyio's async-library detection (guarded); here for the browser extra's selenium (trio)",
    "pandas": "scikit-learn's utils.fixes (guarded); here for the ray extra's Ray Data",
    "pyarrow": "pandas' Arrow support (guarded); here for the ray extra's Ray Data (read_binary_files)",
    "psutil": "joblib's CPU count (guarded); here for the int8 extra's NNCF",
}


def _requirement_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _declared_closure() -> set[str]:
    """The distributions pyproject.toml's dependencies bring, with everything they require, as installed."""
    todo = [_requirement_name(r) for r in metadata.requires("segzoo") or [] if "extra ==" not in r]
    todo.append("paddleseg")  # installed by the README's second pip call
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_requirement_name(r) for r in reqs if "extra ==" not in r]
    return seen


def test_every_module_paddleseg_and_segzoo_import_is_declared():
    """Import every reached module in a clean interpreter; each third-party module must come from a declared dependency."""
    script = textwrap.dedent(
        f"""
        import importlib, json, sys
        before = set(sys.modules)
        from segzoo.compat import import_paddleseg
        import_paddleseg()
        for name in {PADDLESEG_MODULES + SEGZOO_MODULES + LAZY_THIRD_PARTY!r}:
            importlib.import_module(name)
        print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} - set(sys.stdlib_module_names))))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"an import failed in a clean interpreter:\n{proc.stderr[-3000:]}"
    imported = set(__import__("json").loads(proc.stdout.strip().splitlines()[-1]))
    providers = metadata.packages_distributions()
    declared = _declared_closure()
    undeclared = {}
    for module in sorted(imported):
        if module.startswith("_") or module in {"segzoo", "segzoo_plugins"} or module in OPTIONAL:
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if dists and not dists & declared:
            undeclared[module] = sorted(dists)
    assert not undeclared, (
        f"modules imported at run time whose distributions pyproject.toml does not bring: {undeclared}; "
        "add them to [project] dependencies with a one-line reason"
    )


@pytest.mark.parametrize("module", SEGZOO_MODULES + LAZY_THIRD_PARTY)
def test_hook_path_imports(module):
    importlib.import_module(module)


def test_build_every_model_and_forward_64():
    """The issue's check: every registered model builds (random weights) and runs one forward pass on 64x64."""
    import paddle

    registry = segzoo.get_registry()
    names = segzoo.list_models()
    assert len(names) >= 20
    failures = {}
    for name in names:
        try:
            model = segzoo.build_model(name, num_classes=3)
            model.eval()
            with paddle.no_grad():
                out = model(paddle.to_tensor(np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)))
            scores = registry.postprocess(name, registry.config(name, num_classes=3), out)
            assert tuple(scores.shape) == (1, 3, 64, 64), tuple(scores.shape)
            del model
        except Exception as exc:  # collect all, so one run names every broken model
            failures[name] = f"{type(exc).__name__}: {exc}"
    assert not failures, failures


def test_train_step_of_a_paddleseg_model():
    """The train-step hook path of a paddleseg-based model (its losses carry segzoo's Paddle 3 fixes)."""
    import paddle

    registry = segzoo.get_registry()
    config = registry.config("PP-LiteSeg-T", num_classes=3)
    model = registry.build_model("PP-LiteSeg-T", config)
    model.train()
    rng = np.random.default_rng(0)
    images = paddle.to_tensor(rng.random((2, 3, 64, 64), dtype=np.float32))
    labels = paddle.to_tensor(rng.integers(0, 3, (2, 64, 64)).astype("int64"))
    out = registry.train_step("PP-LiteSeg-T", config, model, images, labels)
    loss = out["loss"]
    loss.backward()
    assert np.isfinite(float(loss)) and float(loss) > 0


def _run_hidden(module: str, before: str = "", action: str = "import_paddleseg()") -> str:
    """In a clean interpreter with ``module`` hidden, run ``before`` then ``action`` (default: import paddleseg
    through segzoo); return the DependencyError ``action`` raised, or ``NO ERROR``."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{module!r}] = None  # as if it were not installed
        from segzoo.compat import import_paddleseg
        from segzoo.errors import DependencyError
        {before}
        try:
            {action}
        except DependencyError as exc:
            print(exc)
        else:
            print("NO ERROR")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module, command", [("six", "pip install six"), ("requests", "pip install requests")])
def test_missing_dependency_of_paddleseg_names_module_and_fix(module, command):
    message = _run_hidden(module)
    assert message.startswith("paddleseg is installed but cannot be imported: it needs the module"), message
    assert f"{module!r}" in message and f"`{command}`" in message, message
    assert "paddleseg==2.8.0" not in message  # never the command the user already ran


def test_without_scikit_learn_paddleseg_imports_and_its_metrics_name_the_fix_on_first_use():
    """paddleseg's metrics module, the only one that imports scikit-learn, runs on first use (segzoo_plugins'
    compat fix): without scikit-learn, paddleseg's models still import; its metrics say what to install."""
    # without scikit-learn, paddleseg and its models import; the first use of its metrics raises
    message = _run_hidden("sklearn", before="import_paddleseg(); from paddleseg.models import PPLiteSeg; "
                          "from paddleseg.utils import metrics", action="metrics.calculate_area")
    assert message.startswith("paddleseg.utils.metrics is installed but cannot be imported: it needs the module "
                              "'sklearn'"), message
    assert "`pip install scikit-learn`" in message, message


def test_missing_paddleseg_itself_names_its_install_command():
    message = _run_hidden("paddleseg")
    assert message.startswith("paddleseg is not installed"), message
    assert "`pip install --no-deps paddleseg==2.8.0`" in message, message


def test_readme_install_command_is_the_ci_command():
    """`.ci/run` runs the README's two commands word for word."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)[:2]
    assert len(blocks) == 2
    for command in blocks:
        assert command.strip() in ci, f"README command not run word for word by .ci/run: {command}"
