"""The download layer against a local server in PaddleX's layout: resume, retries, refusals, locks, offline.

No paddle here: the inference folders served are fake files (the layer checks
the layout, not the network); tests/core/test_official.py predicts with real ones.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from segzoo import download, official
from segzoo.cli import main
from segzoo.errors import DownloadError, WeightsError

from .official_server import OfficialServer, fake_inference_files, tar_members

MODEL = "PP-LiteSeg-T"
TAR = f"official_inference_model/{official.INFERENCE_VERSION}/{MODEL}_infer.tar"


@pytest.fixture(scope="module")
def server():
    srv = OfficialServer()
    yield srv
    srv.close()


@pytest.fixture()
def hub(server, tmp_path, monkeypatch):
    """The server (emptied), its URL as the base URL, fresh caches, short pauses between retries."""
    server.reset()
    monkeypatch.setenv("SEGZOO_MODEL_BASE_URL", server.base_url)
    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "segzoo_home"))
    monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", str(tmp_path / "paddlex_home"))
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    return server


def _entries(folder: Path) -> list[str]:
    """What a folder holds, lock files aside (they stay, empty, so that locking never races)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def test_a_dropped_connection_is_resumed_with_range(hub, tmp_path):
    data = os.urandom(300_000)
    url = hub.put("files/w.pdparams", data)
    hub.drop("files/w.pdparams", 100_000)
    got = download.fetch_file(url, tmp_path / "c" / "w.pdparams")
    assert got.read_bytes() == data
    assert hub.ranges("files/w.pdparams") == [None, "bytes=100000-"]
    assert _entries(tmp_path / "c") == ["w.pdparams"]


def test_a_server_without_range_support_gets_a_fresh_download(hub, tmp_path):
    data = os.urandom(300_000)
    url = hub.put("files/w.pdparams", data)
    hub.range_support = False
    hub.drop("files/w.pdparams", 100_000)
    assert download.fetch_file(url, tmp_path / "w.pdparams").read_bytes() == data
    assert hub.count("files/w.pdparams") == 2  # the second answer was a 200 with the whole file


def test_a_connection_dropped_every_time_fails_cleanly(hub, tmp_path):
    url = hub.put("files/w.pdparams", os.urandom(300_000))
    hub.drop("files/w.pdparams", *([50_000] * download.ATTEMPTS))
    with pytest.raises(DownloadError) as err:
        download.fetch_file(url, tmp_path / "c" / "w.pdparams")
    assert url in str(err.value) and f"after {download.ATTEMPTS} tries" in str(err.value)
    assert hub.count("files/w.pdparams") == download.ATTEMPTS
    assert _entries(tmp_path / "c") == []  # no file, no .part


def test_first_use_downloads_the_official_model_then_never_asks_again(hub):
    hub.put(TAR, tar_members(*fake_inference_files("PP-LiteSeg-T_infer/")))
    path = official.official_inference_dir(MODEL)
    assert path == official.models_dir() / MODEL
    assert sorted(p.name for p in path.iterdir()) == ["inference.json", "inference.pdiparams", "inference.yml"]
    assert official.official_inference_dir(MODEL) == path
    assert hub.count() == 1
    assert _entries(official.models_dir()) == [MODEL]


def test_what_a_killed_process_left_is_resumed_or_cleared(hub):
    """A kill leaves at most the hidden .part (resumed next time) and an extraction folder (removed)."""
    data = tar_members(*fake_inference_files())
    hub.put(TAR, data)
    cache = official.models_dir()
    cache.mkdir(parents=True)
    (cache / f".{MODEL}.tar.part").write_bytes(data[:5000])
    (cache / f".{MODEL}.extract-killed" / "model").mkdir(parents=True)
    assert official.cached_inference_dir(MODEL) is None and official.cache_status(MODEL) is None
    assert official.official_inference_dir(MODEL) == cache / MODEL
    assert hub.ranges(TAR) == ["bytes=5000-"]
    assert _entries(cache) == [MODEL]


def test_any_single_top_folder_or_none_is_accepted(hub):
    hub.put(TAR, tar_members(*fake_inference_files("")))  # files at the top
    assert official.missing_inference_files(official.official_inference_dir(MODEL)) is None


def test_a_404_is_one_line_naming_model_and_url(hub, capsys):
    assert main(["download", MODEL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("segzoo download: error: ")
    assert MODEL in err and hub.base_url + TAR in err and "404" in err
    assert hub.count() == 1  # a 404 is not retried
    assert _entries(official.models_dir()) == []


@pytest.mark.parametrize("member", [
    ("../evil.txt", b"x"),
    ("model/../../evil.txt", b"x"),
    ("/tmp/segzoo-evil.txt", b"x"),
    ("model/link", tarfile.SYMTYPE, "/etc/passwd"),
    ("model/hard", tarfile.LNKTYPE, "../../outside"),
    ("model/dev", tarfile.CHRTYPE, ""),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "hardlink-out", "device"])
def test_unsafe_members_are_refused_and_nothing_is_kept(hub, tmp_path, member):
    hub.put(TAR, tar_members(*fake_inference_files(), member))
    with pytest.raises(DownloadError, match="refused") as err:
        official.official_inference_dir(MODEL)
    assert hub.base_url + TAR in str(err.value)
    assert _entries(official.models_dir()) == []
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/segzoo-evil.txt").exists()


def test_an_archive_over_the_size_limit_is_refused(hub, tmp_path):
    url = hub.put("data/big.tar", tar_members(("big/a.bin", b"\0" * 5000)))
    with pytest.raises(DownloadError, match="more than the limit 4000"):
        download.fetch_tree(url, tmp_path / "big", max_bytes=4000)
    assert _entries(tmp_path) == []


def test_a_truncated_archive_names_url_and_file_and_leaves_nothing(hub):
    whole = tar_members(*fake_inference_files())
    hub.put(TAR, whole[: len(whole) // 2])  # the server sends all it has: the size check passes
    with pytest.raises(DownloadError) as err:
        official.official_inference_dir(MODEL)
    message = str(err.value)
    assert hub.base_url + TAR in message and f".{MODEL}.tar.part" in message and "corrupt or truncated" in message
    assert _entries(official.models_dir()) == []


def test_an_archive_without_an_inference_model_is_an_error(hub):
    hub.put(TAR, tar_members(("model/inference.json", b"{}"), ("model/inference.pdiparams", b"1")))
    with pytest.raises(DownloadError, match="no inference.yml"):
        official.official_inference_dir(MODEL)
    assert _entries(official.models_dir()) == []


def test_sha256_is_checked_where_known(hub, monkeypatch):
    data = tar_members(*fake_inference_files())
    hub.put(TAR, data)
    monkeypatch.setitem(official.SHA256, TAR, "0" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        official.official_inference_dir(MODEL)
    assert _entries(official.models_dir()) == []
    monkeypatch.setitem(official.SHA256, TAR, hashlib.sha256(data).hexdigest())
    assert official.missing_inference_files(official.official_inference_dir(MODEL)) is None


def test_offline_with_nothing_cached_is_a_clear_error(hub, monkeypatch):
    hub.put(TAR, tar_members(*fake_inference_files()))
    monkeypatch.setenv("SEGZOO_OFFLINE", "1")
    with pytest.raises(DownloadError) as err:
        official.official_inference_dir(MODEL)
    message = str(err.value)
    assert "SEGZOO_OFFLINE=1" in message and f"segzoo download {MODEL}" in message
    assert hub.base_url + TAR in message and str(official.models_dir() / MODEL) in message
    assert hub.count() == 0


def test_a_complete_paddlex_cache_is_used_without_a_request(hub, tmp_path):
    paddlex = tmp_path / "paddlex_home" / "official_models" / MODEL
    paddlex.mkdir(parents=True)
    for name, data in fake_inference_files(""):
        (paddlex / name).write_bytes(data)
    assert official.official_inference_dir(MODEL) == paddlex
    assert official.cache_status(MODEL) == "paddlex"
    (paddlex / "inference.pdiparams").unlink()  # incomplete: segzoo fetches its own copy
    hub.put(TAR, tar_members(*fake_inference_files()))
    assert official.official_inference_dir(MODEL) == official.models_dir() / MODEL
    assert hub.count() == 1


def test_two_processes_asking_at_once_download_once(hub):
    hub.put(TAR, tar_members(*fake_inference_files()))
    hub.delay_s = 0.3  # 4 chunks: the download takes ~1 s, long enough for both to ask
    code = "from segzoo.official import official_inference_dir as f; print(f('PP-LiteSeg-T'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] == f"{official.models_dir() / MODEL}\n"
    assert hub.count(TAR) == 1


def test_official_weights_and_resolve_weights(hub, tmp_path):
    model = hub.put(f"official_pretrained_model/{MODEL}_pretrained.pdparams", b"model")
    hub.put(f"official_pretrained_model/{MODEL}_backbone_imagenet_pretrained.pdparams", b"backbone")
    hub.put("official_pretrained_model/MaskFormer_tiny_pretrained.pdparams", b"maskformer")
    assert official.resolve_weights("official", MODEL).read_bytes() == b"model"
    assert official.resolve_weights("official_backbone", MODEL).read_bytes() == b"backbone"
    assert official.official_weights("MaskFormer_tiny", "backbone").name == "MaskFormer_tiny_pretrained.pdparams"
    by_url = official.resolve_weights(model, "SegFormer-B0")
    assert by_url.read_bytes() == b"model" and by_url.is_relative_to(official.cache_dir() / "weights")
    asked = hub.count()
    assert official.resolve_weights(model, "SegFormer-B0") == by_url and official.resolve_weights("official", MODEL)
    assert hub.count() == asked  # cached: no request
    local = tmp_path / "mine.pdparams"
    local.write_bytes(b"1")
    assert official.resolve_weights(str(local), MODEL) == local
    with pytest.raises(WeightsError, match="nowhere.pdparams does not exist"):
        official.resolve_weights(tmp_path / "nowhere.pdparams", MODEL)


def test_mirror_replaces_the_official_host(monkeypatch):
    monkeypatch.delenv("SEGZOO_MODEL_BASE_URL")
    assert official.base_url() == "https://paddle-model-ecology.bj.bcebos.com/paddlex/"
    monkeypatch.setenv("SEGZOO_MODEL_MIRROR", "http://mirror.local/prefix/")
    assert official.base_url() == "http://mirror.local/prefix/paddlex/"


def test_download_cache_and_list_models_commands(hub, capsys):
    hub.put(TAR, tar_members(*fake_inference_files()))
    hub.put(f"official_pretrained_model/{MODEL}_pretrained.pdparams", b"m" * 1000)
    hub.put(f"official_pretrained_model/{MODEL}_backbone_imagenet_pretrained.pdparams", b"b" * 1000)
    assert main(["download", MODEL, "--training"]) == 0
    out = capsys.readouterr().out
    assert f"{MODEL}: inference model downloaded: {official.models_dir() / MODEL}" in out
    assert "backbone weights downloaded" in out and "model weights downloaded" in out
    assert main(["download", MODEL]) == 0 and "inference model cached" in capsys.readouterr().out
    assert hub.count() == 3

    assert main(["list-models", "PP-LiteSeg*"]) == 0
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in capsys.readouterr().out.splitlines()
            if line.startswith("| PP-")}
    assert rows == {"PP-LiteSeg-B": "-", MODEL: "yes"}

    assert main(["cache"]) == 0
    listing = capsys.readouterr().out
    assert str(official.models_dir() / MODEL) in listing and f"{MODEL}_pretrained.pdparams" in listing

    assert main(["cache", "clear", MODEL]) == 0
    assert capsys.readouterr().out.count("removed ") == 3
    assert official.cache_status(MODEL) is None and official.cache_entries() == []
    assert main(["cache", "clear", MODEL]) == 2
    assert "nothing named 'PP-LiteSeg-T'" in capsys.readouterr().err
    assert main(["download", "InferTestNoSuchNet"]) == 2
    assert hub.count() == 3


def test_list_models_imports_no_paddle_and_touches_no_network(hub):
    code = (
        "import sys, segzoo.cli as c\n"
        "assert c.main(['list-models']) == 0\n"
        "assert not [m for m in sys.modules if m.startswith(('paddle', 'httpx'))], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert hub.count() == 0


def test_download_dataset_extracts_a_served_dataset(hub, tmp_path, capsys, monkeypatch):
    hub.put("data/seg_optic_examples.tar", tar_members(
        ("seg_optic_examples/images/a.jpg", b"jpg"), ("seg_optic_examples/annotations/a.png", b"png"),
        ("seg_optic_examples/train.txt", b"images/a.jpg annotations/a.png\n"),
    ))
    monkeypatch.chdir(tmp_path)
    assert main(["download", "--dataset", "seg_optic_examples"]) == 0
    root = tmp_path / "dataset" / "seg_optic_examples"
    assert (root / "train.txt").read_text() == "images/a.jpg annotations/a.png\n"
    assert (root / "images" / "a.jpg").is_file() and str(root) in capsys.readouterr().out
    assert main(["download", "--dataset", "seg_optic_examples"]) == 0 and hub.count() == 1
    assert official.fetch_dataset("seg_optic_examples").is_dir()  # the cache's default place
    assert main(["download", "--dataset", "seg_dataset_to_convert"]) == 2  # not served: 404


def test_download_all_tries_every_model_then_sums_up_the_failures(hub, capsys):
    """Issue 28 item 3: a 404 on the first model does not stop the others; one summary, a non-zero exit."""
    from segzoo import get_registry

    served = ["PP-LiteSeg-T", "SegFormer-B5"]  # SegFormer-B5 comes last: reached only if nothing stops the run
    for name in served:
        hub.put(official.inference_path(name), tar_members(*fake_inference_files()))
    everyone = [n for n in get_registry().list_models() if get_registry().card(n).official is not None]
    assert everyone[0] not in served and everyone[-1] == "SegFormer-B5"
    assert main(["download", "--all"]) == 2
    out, err = capsys.readouterr()
    assert all(official.cache_status(n) == "segzoo" for n in served)
    assert hub.count() == len(everyone)  # each model asked for once: none skipped, 404s not retried
    summary = err[err.index(f"{len(everyone) - 2} of {len(everyone)} failed"):]
    missing = [n for n in everyone if n not in served]
    assert [line.split(":")[0].strip() for line in summary.splitlines()[1:]] == missing
    assert summary.count("HTTP 404") == len(missing) and "Traceback" not in err
    assert all(f"{n}: inference model downloaded" in out for n in served)


def test_cache_shows_and_clears_the_exports_and_every_other_folder(hub, capsys):
    """Issue 28 item 6: `segzoo cache` counts the exports cache, `cache clear exports` and `--all` empty it."""
    from filelock import FileLock

    from segzoo.inference.auto import probes_file
    from segzoo.inference.export_cache import exports_cache

    hub.put(TAR, tar_members(*fake_inference_files()))
    assert main(["download", MODEL]) == 0
    root = exports_cache()
    for name, size in (("PP-LiteSeg-T-0a1b", 3000), ("SegFormer-B0-2c3d", 5000)):  # an entry: a folder and its lock
        (root / name).mkdir(parents=True)
        (root / name / "inference.onnx").write_bytes(b"x" * size)
        with FileLock(str(root / name) + ".lock"):
            pass
    probes_file().parent.mkdir(parents=True)
    probes_file().write_text("{}")
    (root / ".precision").mkdir()  # facts about the entries go with them; the work folder of running processes stays
    (root / ".precision" / "v.json").write_text("{}")
    (root / ".work" / "convert-1-x").mkdir(parents=True)
    capsys.readouterr()
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    model_bytes = official.cache_entries()[0].size
    assert f"exports: 2 entries, {download.human_size(8000)} in {root}" in out
    assert f"1 official model, weights file or dataset, 2 exports: {download.human_size(model_bytes + 8002)}" in out
    assert "| auto " in out and "| exports " in out

    with FileLock(str(root / "SegFormer-B0-2c3d") + ".lock"):  # another process uses this one: it stays
        assert main(["cache", "clear", "exports"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"removed {root / '.precision'}\nremoved {root / 'PP-LiteSeg-T-0a1b'}\n"
    assert "SegFormer-B0-2c3d" in captured.err and (root / ".work" / "convert-1-x").is_dir()
    assert main(["cache", "clear", "--all"]) == 0
    assert sorted(capsys.readouterr().out.split()) == sorted(
        ["removed", str(official.models_dir() / MODEL), "removed", str(root / "SegFormer-B0-2c3d"),
         "removed", str(probes_file().parent)])
    assert official.cache_entries() == [] and _entries(root) == [".work"] and not probes_file().exists()
    assert main(["cache"]) == 0
    assert "0 official models, weights files and datasets, 0 exports: 0 B" in capsys.readouterr().out
