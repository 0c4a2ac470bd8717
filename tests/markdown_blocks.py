"""The README and the plugin guide are run as tests: their code blocks, in order, as written.

`conftest.py` at the repository root hands ``README.md`` and ``docs/plugins.md``
to `Sybil <https://sybil.readthedocs.io>`_ with the configurations below; each
code block becomes one test item, run in document order.

* ``python`` blocks run in the test's interpreter, sharing one namespace per
  document; ``>>>`` lines are doctests (their output is checked).
* ``bash`` blocks run with ``bash -e -o pipefail`` in the document's working
  folder, the interpreter's ``bin`` first on ``PATH`` (so ``segzoo``,
  ``python`` and ``pip`` are this environment's).
* ``<!-- skip: next "reason" -->`` before a block skips it, with the reason
  shown in the test report.
* In the guide, a ``python`` or ``toml`` block whose first line is
  ``# <path>`` shows a file of ``examples/plugin/``: it must equal that file.

Each document runs in its own temporary folder (never in the repository), with
segzoo's and PaddleX's caches there too and downloads pointed at a dead local
address, and everything it changed (``os.environ``, the working folder,
``sys.path``, the plugin registry) is put back afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"
#: nothing listens there: a download that escapes a block fails at once
DEAD_BASE_URL = "http://127.0.0.1:9/"
#: first line of a guide block that shows a file of the example package
FILE_HEADER = re.compile(r"# (?P<path>[\w./-]+\.(?:py|toml))\n")
#: seconds one shell block may take
BLOCK_TIMEOUT = 900


# -- evaluators -----------------------------------------------------------------------------------
def run_bash(example) -> None:
    """Run a ``bash`` block in the current folder; fail with its output when a command fails."""
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", str(example.parsed)],
        cwd=os.getcwd(), env=dict(os.environ), capture_output=True, text=True, timeout=BLOCK_TIMEOUT,
    )
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).replace("\r", "\n").splitlines()
        lines = [line for line in lines if line.strip() and "%|" not in line and "\x1b[A" not in line]
        output = "\n".join(lines[-40:])  # the end of the output, without progress bars
        raise AssertionError(f"the block exited with status {proc.returncode}:\n{example.parsed}\n--- output ---\n{output}")


def same_as_file(example) -> None:
    """A block that shows ``examples/plugin/<path>`` (its first line ``# <path>``) equals that file."""
    match = FILE_HEADER.match(str(example.parsed))
    assert match, f"a toml block must start with '# <path>' of the example file it shows:\n{example.parsed}"
    path = EXAMPLE / match.group("path")
    assert path.is_file(), f"{example.path}, line {example.line}: {path} does not exist"
    shown = str(example.parsed)[match.end():]
    assert shown == path.read_text(encoding="utf-8"), (
        f"{example.path}, line {example.line}: the block differs from {path.relative_to(ROOT)}"
    )


class GuidePythonParser(PythonCodeBlockParser):
    """Python blocks: files of the example are compared, the others run (code or doctest)."""

    def __call__(self, document):
        for region in super().__call__(document):
            if isinstance(region.parsed, str) and FILE_HEADER.match(region.parsed):
                region.evaluator = same_as_file
            yield region


def shown_files(markdown: Path) -> set[str]:
    """The example files a document shows (their ``# <path>`` headers)."""
    text = markdown.read_text(encoding="utf-8")
    return set(re.findall(r"```(?:python|toml)\n# ([\w./-]+\.(?:py|toml))\n", text))


# -- per-document state -------------------------------------------------------------------------------
class _Sandbox:
    """A temporary working folder and environment for one document; :meth:`restore` undoes it all."""

    def __init__(self, prefix: str):
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.old_env = dict(os.environ)
        self.old_cwd = os.getcwd()
        self.old_path = list(sys.path)
        self.old_modules = set(sys.modules)
        bin_dir = str(Path(sys.executable).parent)
        os.environ.update({
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "SEGZOO_HOME": str(self.root / "segzoo_home"),
            "PADDLE_PDX_CACHE_HOME": str(self.root / "paddlex_home"),
            "SEGZOO_MODEL_BASE_URL": DEAD_BASE_URL,
        })
        for key in ("SEGZOO_BLOCK_PLUGINS", "SEGZOO_OFFLINE", "SEGZOO_MODEL_MIRROR", "SEGZOO_ENGINE"):
            os.environ.pop(key, None)

    def enter(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        os.chdir(folder)

    def restore(self) -> None:
        import segzoo

        os.chdir(self.old_cwd)
        os.environ.clear()
        os.environ.update(self.old_env)
        sys.path[:] = self.old_path
        root = str(self.root)
        for name in set(sys.modules) - self.old_modules:  # the example plugin's modules: gone with its folder
            if str(getattr(sys.modules[name], "__file__", None) or "").startswith(root):
                del sys.modules[name]
        segzoo.reset_registry()
        shutil.rmtree(self.root, ignore_errors=True)


# -- the plugin guide -----------------------------------------------------------------------------
def guide_setup(namespace: dict) -> None:
    """A copy of examples/plugin as the working folder; `pip install .` goes to a folder on sys.path."""
    import segzoo

    box = _Sandbox("segzoo-guide-")
    site = box.root / "site"
    # pip's options through its environment: install into `site` (not this environment), take
    # segzoo and setuptools from this environment (tests may not download)
    os.environ.update({
        "PIP_TARGET": str(site),
        "PIP_NO_DEPS": "1",
        "PIP_NO_BUILD_ISOLATION": "0",  # pip reads this "no-" option inverted: 0 turns isolation off
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    })
    sys.path.insert(0, str(site))  # this interpreter sees the package once it is installed
    shutil.copytree(EXAMPLE, box.root / "pkg", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    box.enter(box.root / "pkg")
    segzoo.reset_registry()  # entry points are read again, after the guide's `pip install .`
    namespace["_sandbox"] = box


def guide_teardown(namespace: dict) -> None:
    namespace.pop("_sandbox").restore()


GUIDE = Sybil(
    parsers=[
        GuidePythonParser(),
        CodeBlockParser("bash", evaluator=run_bash),
        CodeBlockParser("toml", evaluator=same_as_file),
        SkipParser(),
    ],
    patterns=["docs/plugins.md"],
    path=str(ROOT),
    setup=guide_setup,
    teardown=guide_teardown,
)


# -- the README -----------------------------------------------------------------------------------
#: the official files the README's commands fetch, served by a local stand-in for PaddleX's host
README_MODEL = "PP-LiteSeg-T"


def _write_inputs(folder: Path) -> None:
    """The files the README's commands name: a dataset, LabelMe files, photos, a PDF, a large TIFF."""
    import json

    import cv2
    import numpy as np
    from PIL import Image

    from segzoo.datasets.shapes import draw_sample, make_shapes_dataset

    make_shapes_dataset(folder / "my_data", num_train=16, num_val=4, size=(128, 128))
    rng = np.random.default_rng(7)
    (folder / "photos").mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / "photos" / f"photo_{i}.jpg"), draw_sample(rng, (160, 120))[0])
    for name in ("street.jpg", "a.jpg"):
        cv2.imwrite(str(folder / name), draw_sample(rng, (128, 96))[0])
    pages = [Image.fromarray(draw_sample(rng, (120, 160))[0][:, :, ::-1]) for _ in range(2)]
    pages[0].save(folder / "scan.pdf", save_all=True, append_images=pages[1:])
    cv2.imwrite(str(folder / "big.tif"), draw_sample(rng, (1300, 1100))[0])
    labelme = folder / "labelme_jsons"
    labelme.mkdir()
    for i in range(4):
        cv2.imwrite(str(labelme / f"img_{i}.jpg"), draw_sample(rng, (96, 80))[0])
        x = 10 + 8 * i
        shapes = [
            {"label": "square", "points": [[x, 10], [x + 30, 10], [x + 30, 40], [x, 40]], "shape_type": "polygon"},
            {"label": "disc", "points": [[60, 55], [70, 55]], "shape_type": "circle"},
        ]
        (labelme / f"img_{i}.json").write_text(json.dumps({
            "version": "5.2.1", "flags": {}, "shapes": [dict(s, group_id=None, flags={}) for s in shapes],
            "imagePath": f"img_{i}.jpg", "imageData": None, "imageHeight": 80, "imageWidth": 96,
        }))


def _official_files(folder: Path) -> dict[str, bytes]:
    """PP-LiteSeg-T's official inference model and backbone weights, in the host's layout (random weights)."""
    import paddle

    import segzoo
    from segzoo import official
    from segzoo.inference import export_model

    registry = segzoo.get_registry()
    config = registry.config(README_MODEL)
    paddle.seed(0)
    layer = registry.build_model(README_MODEL, config)
    layer.eval()
    exported = export_model(README_MODEL, folder / f"{README_MODEL}_infer", config=config, layer=layer)
    tar = shutil.make_archive(str(folder / "infer"), "tar", root_dir=folder, base_dir=exported.name)
    backbone = folder / "backbone.pdparams"
    paddle.save(layer.backbone.state_dict(), str(backbone))
    return {
        official.inference_path(README_MODEL): Path(tar).read_bytes(),
        official.weights_path(README_MODEL, "backbone"): backbone.read_bytes(),
    }


def _serve(files: dict[str, bytes]):
    """A local HTTP server of ``files`` (tests/core/official_server.py): the README's downloads come from it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("segzoo_official_server", ROOT / "tests" / "core" / "official_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = module.OfficialServer()
    for rel, data in files.items():
        server.put(rel, data)
    return server


def readme_setup(namespace: dict) -> None:
    """An empty working folder with the README's input files; PaddleX's host is a local stand-in."""
    box = _Sandbox("segzoo-readme-")
    served = box.root / "served"
    served.mkdir()
    files = _official_files(served)
    _write_inputs(box.root / "work")
    server = _serve(files)
    os.environ["SEGZOO_MODEL_BASE_URL"] = server.base_url
    box.enter(box.root / "work")
    namespace["_sandbox"], namespace["_server"] = box, server


def readme_teardown(namespace: dict) -> None:
    namespace.pop("_server").close()
    namespace.pop("_sandbox").restore()


README = Sybil(
    parsers=[PythonCodeBlockParser(), CodeBlockParser("bash", evaluator=run_bash), SkipParser()],
    patterns=["README.md"],
    path=str(ROOT),
    setup=readme_setup,
    teardown=readme_teardown,
)
