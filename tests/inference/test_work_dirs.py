"""The exports cache's temporary folders live under the cache, and those of killed processes are swept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from segzoo.inference.export_cache import WORK_DIR, _host, exports_cache, sweep_work_dirs, work_dir

CHILD = """
import sys, time
from segzoo.inference.export_cache import work_dir
with work_dir("rebuild") as path:
    (path / "export").mkdir()
    print(path, flush=True)
    time.sleep(120)
"""


def test_a_work_folder_left_by_kill_9_is_swept_by_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGZOO_HOME", str(tmp_path / "home"))
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "SEGZOO_HOME": str(tmp_path / "home")})
    try:
        left = tmp_path / "home" / "exports" / WORK_DIR
        path = child.stdout.readline().strip()
        assert path and os.path.isdir(path) and path.startswith(str(left)), path
        # a folder of a live process and a recent unfinished export are left alone
        alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        (left / f"rebuild-{_host()}-{alive.pid}-abcd").mkdir()
        (left / f"rebuild-other_machine-{child.pid}-abcd").mkdir()  # another machine's, on a shared disk
        (exports_cache() / ".PP-LiteSeg-T-0123.x.tmp").mkdir()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
    assert os.path.isdir(path)  # nobody removed it: the process was killed
    old = exports_cache() / ".SeaFormer_tiny-4567.y.tmp"  # an export killed a day ago
    old.mkdir()
    half = exports_cache() / ".SeaFormer_tiny-4567.onnx.abc.tmp"  # a conversion's file, killed while written
    half.write_bytes(b"onnx")
    day_ago = time.time() - 86400
    for path in (old, half):
        os.utime(path, (day_ago, day_ago))
    try:
        with work_dir("rebuild") as mine:
            assert mine.is_dir() and not os.path.exists(path) and not old.exists() and not half.exists()
            assert sorted(p.name for p in left.iterdir()) == sorted(
                [mine.name, f"rebuild-{_host()}-{alive.pid}-abcd", f"rebuild-other_machine-{child.pid}-abcd"])
            assert (exports_cache() / ".PP-LiteSeg-T-0123.x.tmp").is_dir()
        assert not mine.exists()
    finally:
        alive.kill()
        alive.wait()
    assert [p.name for p in sweep_work_dirs()] == [f"rebuild-{_host()}-{alive.pid}-abcd"]  # its process ended now
