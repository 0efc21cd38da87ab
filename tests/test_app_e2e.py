"""The demo end to end: ``dpst serve`` on loopback, driven by Gradio's client and a browser.

The client tests (the two modes' separate queues, Cancel's result, the console's lines) need
only ``gradio_client``, which comes with Gradio. The browser tests need the ``playwright``
Python package and Debian's Chromium (``apt-get install chromium``; ``DPST_CHROMIUM`` names
another binary); Playwright's own browser download is never used. A screenshot of the page
after each browser run is saved in the test's tmp dir.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from dpst.imageio import read_image, write_image
from tests.conftest import sample_photo
from tests.fast_model import shared_tiny_model

CHROMIUM = os.environ.get("DPST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 180  # imports torch and gradio on a busy 2-core machine
RUN_S = 180  # a tiny quality run, queued behind nothing

NO_MASKS = ("none", None, None, None, None)
# A server in a subprocess (torch and Gradio imported), a tiny export, a browser: about a
# minute before the first test runs.
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_model(tmp_path_factory) -> Path | None:
    """A tiny exported model, or None where export is unavailable (Quality mode only then)."""
    try:
        return shared_tiny_model(tmp_path_factory)
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``dpst serve`` in a subprocess: yields (url, whether a fast model is loaded, its log)."""
    tmp = tmp_path_factory.mktemp("serve")
    model = _tiny_model(tmp_path_factory)
    port = _free_port()
    cmd = [sys.executable, "-m", "dpst.cli", "serve", "--port", str(port)]
    cmd += ["--backbone", "random", "--masks", "none", "--max-megapixels", "1"]
    cmd += ["--max-upload-mb", "1"]
    cmd += ["--model", str(model)] if model else []
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    env.update(GRADIO_TEMP_DIR=str(tmp / "gradio"), DPST_MODEL=str(tmp / "absent.onnx"))
    log = open(tmp / "server.log", "w")  # closed at teardown
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"dpst serve exited ({proc.returncode}): {(tmp / 'server.log').read_text()}"
                )
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"dpst serve did not answer in {SERVER_START_S} s")
                time.sleep(0.5)
        yield url, model is not None, tmp / "server.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser tests need the playwright package"
    )
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        if os.environ.get("CI") == "true":
            # CI's `make test` installs Chromium: a missing browser there is a broken set-up.
            pytest.fail(f"CI=true but no Chromium at {CHROMIUM}", pytrace=False)
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(server[0])
    page.wait_for_selector("#status", state="attached", timeout=60_000)
    yield page
    context.close()


@pytest.fixture
def photos(tmp_path):
    content, style = sample_photo("chelsea", 96), sample_photo("coffee", 80)
    paths = tmp_path / "content.png", tmp_path / "style.png"
    write_image(paths[0], content)
    write_image(paths[1], style)
    return paths


def _upload(page, elem_id: str, path: Path) -> None:
    page.set_input_files(f"#{elem_id} input[type=file]", str(path))


def _status(page) -> str:
    """The status box's text, without Gradio's progress overlay ("" before any)."""
    body = page.locator("#dpst-status-body")
    return body.inner_text() if body.count() else ""


def _run(page, button: str) -> str:
    """Click a run button; wait for the job to end with a new status; -> the status text."""
    before = _status(page)
    page.click(f"#{button}")
    page.wait_for_function(
        """before => {
            const body = document.querySelector("#dpst-status-body");
            const tracker = document.querySelector("#result [data-testid=status-tracker]");
            const text = body ? body.innerText : "";
            const idle = !tracker || tracker.classList.contains("hide");
            return idle && text !== before && (text.includes("Done") || text.includes("Error"));
        }""",
        arg=before,
        timeout=RUN_S * 1000,
    )
    return _status(page)


def _status_says(page, text: str) -> None:
    page.locator("#status").filter(has_text=text).wait_for(timeout=30_000)


def _no_error(page) -> None:
    """Wait until the status shows no error (a good upload clears the last one)."""
    page.locator("#dpst-error").wait_for(state="detached", timeout=30_000)


def _tiny_quality(page, iters: int = 1) -> None:
    for elem_id, value in (("quality-size", "64"), ("quality-iters", str(iters))):
        box = page.locator(f"#{elem_id} input[type=number]")
        box.fill(value)
        box.press("Enter")


def _paint_stroke(page, elem_id: str) -> None:
    """Paint a horizontal stroke in the default colour (blue) on a mask editor's layer."""
    editor = page.locator(f"#{elem_id}")
    editor.scroll_into_view_if_needed()
    editor.locator("canvas").first.wait_for(timeout=30_000)
    time.sleep(1)  # the photo is drawn as the editor's background after its upload
    editor.get_by_role("button", name="Brush").first.click()
    box = editor.locator("canvas").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    page.mouse.move(x, y)
    page.mouse.down()
    # Few moves: each one redraws the editor's canvas, slow in software rendering.
    for step in range(1, 4):
        page.mouse.move(x + 40 * step, y + 6 * (step % 2))
    page.mouse.up()


def _download(page, tmp_path: Path, name: str) -> np.ndarray:
    with page.expect_download(timeout=30_000) as info:
        page.click("#download")
    path = tmp_path / name
    info.value.save_as(path)
    return read_image(path)


def test_fast_then_quality_in_the_browser(page, server, photos, tmp_path):
    _upload(page, "content-image", photos[0])
    _upload(page, "style-image", photos[1])
    page.wait_for_selector("#content-image img", timeout=30_000)
    page.wait_for_selector("#style-image img", timeout=30_000)
    content = read_image(photos[0])
    if server[1]:
        status = _run(page, "run-fast")
        assert "Done" in status and "ONNX Runtime" in status, status
        assert _download(page, tmp_path, "fast.png").shape == content.shape
        page.screenshot(path=tmp_path / "fast.png", full_page=True)
        page.locator("#mode").get_by_text("Quality", exact=True).click()
    else:
        assert "Fast mode is unavailable" in page.inner_text("#availability")
    page.wait_for_selector("#run-quality", state="visible")
    _tiny_quality(page)
    # Masks painted in the page with the palette's first colour, in both photos.
    page.get_by_text("Masks", exact=True).first.click()
    page.get_by_text("Paint masks").click()
    _paint_stroke(page, "content-editor")
    _paint_stroke(page, "style-editor")
    status = _run(page, "run-quality")
    assert "Done" in status and "random backbone" in status, status
    assert "painted masks: content blue, unpainted; style blue, unpainted" in status, status
    page.wait_for_selector("#result img", timeout=30_000)
    page.screenshot(path=tmp_path / "quality.png", full_page=True)
    assert (tmp_path / "quality.png").stat().st_size > 0
    assert _download(page, tmp_path, "quality-result.png").shape == content.shape


def test_bad_upload_is_shown_and_the_server_keeps_serving(page, server, photos, tmp_path):
    button = "run-fast" if server[1] else "run-quality"
    if not server[1]:
        _tiny_quality(page)
    _upload(page, "style-image", photos[1])
    # No image at all: said as soon as it is uploaded.
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not an image at all")
    _upload(page, "content-image", not_an_image)
    _status_says(page, "content photo: not a readable image")
    page.screenshot(path=tmp_path / "bad-upload.png", full_page=True)
    # Too many pixels for this server (started with --max-megapixels 1).
    big = tmp_path / "big.png"
    write_image(big, np.zeros((1000, 1001, 3), dtype=np.uint8))
    _upload(page, "content-image", big)
    _status_says(page, "1.0 MP")
    # Over the upload cap (--max-upload-mb 1): Gradio refuses it and says so.
    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    too_large = tmp_path / "noise.png"
    write_image(too_large, noise)
    assert too_large.stat().st_size > 1_200_000
    _upload(page, "content-image", too_large)
    page.get_by_text("exceed the maximum allowed size").first.wait_for(timeout=30_000)
    # A PNG cut short: its header passes, the run says what is wrong.
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(photos[0].read_bytes()[:300])
    _upload(page, "content-image", truncated)
    _no_error(page)
    status = _run(page, button)
    assert "Error: content photo: not a readable image" in status, status
    # The next request works.
    _upload(page, "content-image", photos[0])
    page.wait_for_selector("#content-image img", timeout=30_000)
    _no_error(page)
    status = _run(page, button)
    assert "Done" in status, status


def test_cancel_stops_a_quality_job_and_the_next_one_runs(page, server, photos):
    _upload(page, "content-image", photos[0])
    _upload(page, "style-image", photos[1])
    page.wait_for_selector("#style-image img", timeout=30_000)
    if server[1]:
        page.locator("#mode").get_by_text("Quality", exact=True).click()
    _tiny_quality(page, iters=1000)
    page.click("#run-quality")
    # The progress bar moves with the iterations.
    page.locator("#result").get_by_text("iteration").first.wait_for(timeout=RUN_S * 1000)
    page.click("#cancel")
    # The job's own event ends with the result so far, offered for download.
    _status_says(page, "Cancelled at iteration")
    page.wait_for_selector("#download", state="visible", timeout=30_000)
    page.wait_for_selector("#result img", timeout=30_000)
    _tiny_quality(page)
    status = _run(page, "run-quality")
    assert "Done" in status, status


def _client(url: str):
    client = pytest.importorskip("gradio_client", reason="needs gradio_client (Gradio's)")
    return client, client.Client(url, verbose=False)


def test_fast_requests_are_served_while_a_quality_job_runs(server, photos):
    """A burst of Fast requests while Quality optimises: all served, none refused; then
    Cancel ends the Quality job with its result so far; one console line per request."""
    url, has_fast_model, log = server
    if not has_fast_model:
        pytest.skip("no fast model could be exported here")
    gradio_client, quality_page = _client(url)
    content, style = (gradio_client.handle_file(str(p)) for p in photos)
    assert "warning: listening" not in log.read_text()  # on loopback: nothing to warn of
    # The share hint names our flag, not Gradio's Python API.
    assert "dpst serve --share" in log.read_text() and "share=True" not in log.read_text()
    lines_before = len(log.read_text().splitlines())
    job = quality_page.submit(
        content, style, *NO_MASKS, 256, 1000, False, "fast", api_name="/quality"
    )
    deadline = time.monotonic() + RUN_S
    while not job.status().progress_data or "iteration" not in job.status().progress_data[0].desc:
        assert not job.done(), job.result()
        assert time.monotonic() < deadline, "the quality job did not start optimising"
        time.sleep(0.2)
    fast_page = gradio_client.Client(url, verbose=False)
    burst = [fast_page.submit(content, style, *NO_MASKS, api_name="/fast") for _ in range(10)]
    statuses = [j.result(timeout=RUN_S)[2] for j in burst]
    assert all("Done" in status for status in statuses), statuses
    assert not job.done()  # Fast did not wait for it
    assert "Cancelling" in quality_page.predict(api_name="/cancel")
    _slider, download, status = job.result(timeout=RUN_S)
    assert "Cancelled at iteration" in status, status
    assert download["visible"] and download["value"]  # the result so far, to download
    lines = log.read_text().splitlines()[lines_before:]
    fast_lines = [x for x in lines if re.search(r"dpst serve: fast 96x64 \d+\.\d\d s ok$", x)]
    assert len(fast_lines) == 10, lines
    assert any(re.search(r"dpst serve: quality 96x64 .* cancelled at iteration", x) for x in lines)
