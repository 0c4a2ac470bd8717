"""Every input kind ``predict()`` takes, read from real files, a real PDF and a local HTTP server."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from segzoo import InputError
from segzoo.inference.inputs import iter_inputs, walk_directory


# -- arrays ------------------------------------------------------------------------------------------
def test_bgr_gray_and_bgra_arrays(tiny, make_image):
    bgr = make_image(1)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = np.dstack([bgr, np.full(bgr.shape[:2], 77, np.uint8)])
    results = list(tiny.predictor.predict([bgr, gray, gray[:, :, None], bgra]))
    assert [r.name for r in results] == ["array_0", "array_1", "array_2", "array_3"]
    assert all(r.input_path is None and r.page_index is None for r in results)
    # BGRA: alpha dropped, same as BGR
    assert np.array_equal(results[3].pred, results[0].pred)
    # grayscale: the same as its 3-channel replica
    replica = tiny.predictor.predict_arrays([np.repeat(gray[:, :, None], 3, axis=2)])[0]
    assert np.array_equal(results[1].pred, replica)
    assert np.array_equal(results[2].pred, replica)
    assert results[0].pred.shape == bgr.shape[:2]


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((8, 8, 3), np.float32), "dtype float32"),
        (np.zeros((8, 8, 5), np.uint8), "shape (8, 8, 5)"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
    ],
)
def test_bad_arrays_are_named(tiny, array, message):
    with pytest.raises(InputError, match="array input #0") as info:
        list(tiny.predictor.predict(array))
    assert message in str(info.value)


# -- files -------------------------------------------------------------------------------------------
LOSSLESS = [".png", ".PNG", ".bmp", ".BMP", ".tif", ".tiff", ".TIF", ".webp"]
LOSSY = [".jpg", ".jpeg", ".JPG", ".JPEG"]


def test_every_extension_in_any_case(tiny, make_image, save_image, tmp_path):
    image = make_image(2)
    want = tiny.predictor.predict_arrays([image])[0]
    paths = []
    for i, ext in enumerate(LOSSLESS + LOSSY):
        path = tmp_path / f"img{i}{ext}"
        if ext == ".webp":  # lossless WebP
            ok, buf = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])
            assert ok
            path.write_bytes(buf.tobytes())
        else:
            save_image(path, image)
        paths.append(path)
    results = list(tiny.predictor.predict([str(p) for p in paths]))
    assert [r.input_path for r in results] == [str(p) for p in paths]
    assert [r.name for r in results] == [p.stem for p in paths]
    for r, p in zip(results, paths):
        assert r.pred.shape == image.shape[:2], p
        if p.suffix in LOSSLESS:
            assert np.array_equal(r.pred, want), p
            assert np.array_equal(r.input_img, image), p


def test_unsupported_missing_and_corrupt_files_are_named(tiny, tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt.*unsupported extension '\.txt'"):
        list(tiny.predictor.predict(str(txt)))
    with pytest.raises(InputError, match=r"missing\.png does not exist"):
        list(tiny.predictor.predict(str(tmp_path / "missing.png")))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match=r"broken\.png"):
        list(tiny.predictor.predict(str(bad)))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.jpg.*empty"):
        list(tiny.predictor.predict(empty))
    with pytest.raises(InputError, match="unsupported input of type int"):
        list(tiny.predictor.predict(42))
    with pytest.raises(InputError, match="list is empty"):
        list(tiny.predictor.predict([]))


# -- directories -------------------------------------------------------------------------------------
def test_nested_directory_is_walked_sorted_with_images_and_pdfs_only(
    tiny, make_image, save_image, pdf_maker, tmp_path
):
    root = tmp_path / "tree"
    save_image(root / "b.png", make_image(3))
    save_image(root / "a" / "z.JPG", make_image(4))
    save_image(root / "a" / "deeper" / "y.bmp", make_image(5, (40, 30)))
    pdf_maker(root / "c" / "doc.pdf", pages=2)
    (root / "c" / "readme.txt").write_text("not an image")
    (root / "c" / "data.npy").write_bytes(b"\x93NUMPY")
    (root / "empty_dir").mkdir()
    got = [(r.input_path, r.page_index) for r in tiny.predictor.predict(root, batch_size=2)]
    assert got == [
        (str(root / "a" / "deeper" / "y.bmp"), None),
        (str(root / "a" / "z.JPG"), None),
        (str(root / "b.png"), None),
        (str(root / "c" / "doc.pdf"), 0),
        (str(root / "c" / "doc.pdf"), 1),
    ]


def test_directory_without_images_is_an_error(tiny, tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputError, match="holds no image or PDF files"):
        list(tiny.predictor.predict(tmp_path))


def test_directory_is_streamed_and_a_bad_file_is_not_skipped(tiny, make_image, tmp_path):
    """10,000 files: the first results come before the rest is read; the corrupt last one raises."""
    ok, buf = cv2.imencode(".png", make_image(6, (16, 16)))
    data = buf.tobytes()
    root = tmp_path / "many"
    root.mkdir()
    for i in range(10_000):
        (root / f"{i:05d}.png").write_bytes(data)
    (root / "zzzz.png").write_bytes(b"not a png at all")
    start = time.perf_counter()
    results = tiny.predictor.predict(root, batch_size=4)
    first = [next(results) for _ in range(3)]
    elapsed = time.perf_counter() - start
    assert [r.name for r in first] == ["00000", "00001", "00002"]
    assert elapsed < 5.0, f"the first results took {elapsed:.1f} s: the directory is not streamed"
    # the walker yields paths lazily too
    walker = walk_directory(root)
    assert next(walker).name == "00000.png"
    items = iter_inputs(str(root))
    assert next(items).name == "00000"
    # reading on, the corrupt file at the end raises with its name instead of being skipped
    with pytest.raises(InputError, match=r"zzzz\.png"):
        for _ in items:
            pass


# -- PDFs --------------------------------------------------------------------------------------------
def test_pdf_gives_one_result_per_page(tiny, pdf_maker, tmp_path):
    pdf = pdf_maker(tmp_path / "report.pdf", pages=2)
    results = list(tiny.predictor.predict(str(pdf)))
    assert [(r.input_path, r.page_index, r.name) for r in results] == [
        (str(pdf), 0, "report_0"),
        (str(pdf), 1, "report_1"),
    ]
    # pages are rendered at 2 × 72 dpi: 1.0 × 0.75 in → 144 × 108 px, the second 1.5 in wide
    assert results[0].pred.shape == (108, 144)
    assert results[1].pred.shape == (108, 216)
    # the page's colour is in the rendered image (BGR): the first page's background is (0.9, 0, 0.3) RGB
    corner = results[0].input_img[2, 2].astype(int)
    assert abs(corner[2] - 230) < 3 and corner[1] < 3 and abs(corner[0] - 77) < 3
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4 nothing else")
    with pytest.raises(InputError, match=r"bad\.pdf"):
        list(tiny.predictor.predict(bad))


# -- URLs --------------------------------------------------------------------------------------------
@pytest.fixture()
def served(http_server, make_image, pdf_maker, tmp_path):
    base, routes = http_server
    image = make_image(8)
    ok, buf = cv2.imencode(".png", image)
    routes["/img.png"] = (buf.tobytes(), "image/png")
    routes["/files/scan.png"] = (buf.tobytes(), "application/octet-stream")
    routes["/doc.pdf"] = (pdf_maker(tmp_path / "served.pdf", 2).read_bytes(), "application/pdf")
    return base, image


def test_url_image_and_pdf(tiny, served):
    base, image = served
    results = list(tiny.predictor.predict([f"{base}/img.png", f"{base}/files/scan.png?x=1", f"{base}/doc.pdf"]))
    assert [(r.input_path, r.page_index, r.name) for r in results] == [
        (f"{base}/img.png", None, "img"),
        (f"{base}/files/scan.png?x=1", None, "scan"),
        (f"{base}/doc.pdf", 0, "doc_0"),
        (f"{base}/doc.pdf", 1, "doc_1"),
    ]
    assert np.array_equal(results[0].pred, tiny.predictor.predict_arrays([image])[0])


def test_url_errors_name_the_url_and_respect_the_limits(tiny, served):
    from segzoo.inference import create_model

    base, _ = served
    strict = create_model(tiny.name, model_dir=tiny.export_dir, url_timeout=1.0, url_max_bytes=200_000)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"/slow: no answer within 1 s"):
        list(strict.predict(f"{base}/slow"))
    with pytest.raises(InputError, match=r"/drip: not finished within 1 s"):
        list(strict.predict(f"{base}/drip"))
    assert time.perf_counter() - start < 2 * 1.0 + 1.5, "a time-out took far longer than url_timeout"
    with pytest.raises(InputError, match=r"/big: it is 52,428,800 bytes, above the limit of 200,000"):
        list(strict.predict(f"{base}/big"))
    with pytest.raises(InputError, match=r"/big-chunked: more than the limit of 200,000 bytes"):
        list(strict.predict(f"{base}/big-chunked"))
    with pytest.raises(InputError, match=r"/nothing\.png: HTTP 404"):
        list(strict.predict(f"{base}/nothing.png"))
    with pytest.raises(InputError, match=r"cannot download http://127\.0\.0\.1:9/x\.png"):
        list(strict.predict("http://127.0.0.1:9/x.png"))


def test_url_check_sees_every_redirect(served):
    from segzoo.inference.inputs import fetch_url

    base, _ = served
    seen = []
    assert fetch_url(f"{base}/redirect", check_url=seen.append)[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen == [f"{base}/redirect", f"{base}/img.png"]

    def refuse_target(url):
        if url.endswith("/img.png"):
            raise InputError(f"refused {url}")

    with pytest.raises(InputError, match=r"refused .*/img\.png"):
        fetch_url(f"{base}/redirect", check_url=refuse_target)


def test_mixed_list_keeps_the_order(tiny, served, make_image, save_image, pdf_maker, tmp_path):
    base, _ = served
    folder = tmp_path / "dir"
    save_image(folder / "one.png", make_image(9))
    save_image(folder / "two.png", make_image(10))
    pdf = pdf_maker(tmp_path / "p.pdf", 2)
    single = save_image(tmp_path / "single.bmp", make_image(11))
    inputs = [make_image(12), str(single), folder, f"{base}/img.png", pdf, make_image(13)]
    got = [(r.input_path, r.page_index, r.name) for r in tiny.predictor.predict(inputs, batch_size=3)]
    assert got == [
        (None, None, "array_0"),
        (str(single), None, "single"),
        (str(folder / "one.png"), None, "one"),
        (str(folder / "two.png"), None, "two"),
        (f"{base}/img.png", None, "img"),
        (str(pdf), 0, "p_0"),
        (str(pdf), 1, "p_1"),
        (None, None, "array_1"),
    ]
