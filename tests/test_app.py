"""The demo's callbacks without a server: fast, quality, masks, bad input, cancelling,
the two modes' separate queues, the request log."""

from __future__ import annotations

import logging
import re
import signal
import socket
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from dpst.imageio import read_image, write_image
from dpst.labels.palette import MASK_PALETTE, PAPER_PALETTE
from dpst.serve.app import inputs as app_inputs
from dpst.serve.app.config import AppConfig
from dpst.serve.app.engine import DemoEngine, JobCancelled, MaskRequest, QualityBusy
from dpst.serve.app.examples import example_count, example_thumbnails
from dpst.serve.app.page import AppCallbacks, build_app
from tests.conftest import sample_photo
from tests.fast_model import TINY_MAX_LABELS, shared_tiny_model

NO_MASKS = ("none", None, None, None, None)
# Quality runs in tests: tiny working size, one iteration per stage, single scale.
TINY_QUALITY = (32, 1, False, "fast")
COLOUR = {name: rgb for name, rgb in PAPER_PALETTE}


class FakeStylizer:
    """Stands in for the ONNX runtime's FastStylizer: records what it was given."""

    provider = "FakeExecutionProvider"
    max_labels = 4
    metadata: ClassVar[dict] = {}

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def stylize(
        self, content, style, content_labels=None, style_labels=None, dtype=np.float32,
        strength=1.0,
    ):  # fmt: skip
        self.calls.append((content.shape, style.shape, content_labels, style_labels))
        change = 0.5 * (style.mean(axis=(0, 1)) - content)
        out = np.clip(content + strength * change, 0, 1).astype(np.float32)
        return out if dtype == np.float32 else np.rint(out * 255).astype(np.uint8)


@pytest.fixture
def pair(tmp_path):
    """Content (48x64) and style (64x48 ... different size) PNG files: (content, style) paths."""
    content, style = sample_photo("chelsea", 64), sample_photo("coffee", 56)
    paths = tmp_path / "content.png", tmp_path / "style.png"
    write_image(paths[0], content)
    write_image(paths[1], style)
    return str(paths[0]), str(paths[1])


@pytest.fixture
def random_config(tmp_path):
    return AppConfig(backbone="random", device="cpu")


def _callbacks(config: AppConfig, fast=None) -> AppCallbacks:
    return AppCallbacks(DemoEngine(config, fast=fast))


def _payload(path) -> dict:
    """What the page sends for an uploaded file (preprocess=False)."""
    return {"path": str(path), "orig_name": "x.png", "meta": {"_type": "gradio.FileData"}}


def _layer(path, size, painted: dict[str, tuple[slice, slice]]) -> dict:
    """An editor layer: transparent, with rectangles painted in palette colours."""
    h, w = size
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    for name, (rows, cols) in painted.items():
        rgba[rows, cols, :3] = COLOUR[name]
        rgba[rows, cols, 3] = 255
    Image.fromarray(rgba, "RGBA").save(path)
    return _payload(path)


def _ok(outputs) -> tuple[np.ndarray, np.ndarray, str, str]:
    (before, after), download, status = outputs
    assert "Error" not in status, status
    assert download["visible"] is True
    before, after = (read_image(path) for path in (before, after))  # preview files
    return before, after, download["value"], status


def test_fast_mode_returns_the_content_size_and_timings(pair):
    fake = FakeStylizer()
    cb = _callbacks(AppConfig(backbone="random"), fast=fake)
    before, after, download, status = _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))
    content = read_image(pair[0])
    assert after.shape == before.shape == content.shape
    assert read_image(download).shape == content.shape
    # The previews are the photo and the result themselves (8-bit results included).
    np.testing.assert_allclose(before, content, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(after, read_image(download))
    assert "FakeExecutionProvider" in status and "Done" in status
    assert fake.calls[0][2] is None  # no masks: one region


def test_fast_mode_with_an_exported_model(pair, tmp_path, tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    cb = _callbacks(AppConfig(model_path=str(model), backbone="random"))
    assert cb.engine.fast.max_labels == TINY_MAX_LABELS
    content, style = read_image(pair[0]), read_image(pair[1])
    _, after, download, status = _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))
    assert after.shape == content.shape and read_image(download).shape == content.shape
    assert "ONNX Runtime" in status
    # Painted masks go through the runtime's own label checks.
    (hc, wc), (hs, ws) = content.shape[:2], style.shape[:2]
    c_editor = {
        "layers": [_layer(tmp_path / "c.png", (hc, wc), {"red": (slice(0, hc // 2), slice(None))})]
    }
    s_editor = {
        "layers": [_layer(tmp_path / "s.png", (hs, ws), {"red": (slice(0, hs // 2), slice(None))})]
    }
    outputs = cb.fast(_payload(pair[0]), _payload(pair[1]), "paint", None, None, c_editor, s_editor)
    assert "painted masks: content red, unpainted" in _ok(outputs)[3]


def test_quality_mode_random_backbone_reports_it(pair, random_config):
    cb = _callbacks(random_config)
    seen = []
    outputs = cb.quality(
        _payload(pair[0]), _payload(pair[1]), *NO_MASKS, *TINY_QUALITY,
        progress=lambda fraction, desc: seen.append((fraction, desc)),
    )  # fmt: skip
    _before, after, download, status = _ok(outputs)
    content = read_image(pair[0])
    assert read_image(download).shape == content.shape == after.shape
    assert "random backbone" in status and "Quality mode" in status
    # One progress step per iteration, ending at 100 %.
    assert len(seen) == 2 and seen[-1][0] == pytest.approx(1.0)


def test_quality_without_weights_says_how_to_get_them(pair, tmp_path, monkeypatch):
    monkeypatch.delenv("DPST_VGG_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    cb = _callbacks(AppConfig(backbone="vgg19"))
    status = cb.quality(_payload(pair[0]), _payload(pair[1]), *NO_MASKS, *TINY_QUALITY)[2]
    # The page says what to do in words; the console has the file to fetch and where.
    assert "Error" in status and "VGG-19 weights" in status and "--vgg-weights FILE" in status
    assert "vgg19-d01eb7cb.pth" in cb.engine.backbone_off.console


def test_no_model_fast_mode_unavailable_quality_default(pair, random_config):
    demo = build_app(random_config)
    cb = demo.dpst_callbacks
    status = cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS)[2]
    assert "Fast mode is unavailable" in status
    config = demo.get_config_file()
    by_id = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
    assert by_id["mode"]["value"] == "Quality"
    assert "Fast mode is unavailable" in by_id["availability"]["value"]
    assert "random backbone" in by_id["availability"]["value"]


def test_painted_layers_decode_to_palette_labels(tmp_path):
    size = (20, 30)
    bottom = _layer(tmp_path / "l0.png", size, {"blue": (slice(0, 10), slice(None))})
    top = _layer(tmp_path / "l1.png", size, {"red": (slice(5, 15), slice(0, 10))})
    layers = app_inputs.read_editor_layers({"layers": [bottom, top]}, "content mask", 10**6)
    labels = app_inputs.painted_labels(layers, size)
    blue, red = (
        next(i for i, (n, _) in enumerate(MASK_PALETTE) if n == c) for c in ("blue", "red")
    )
    expected = np.full(size, app_inputs.UNPAINTED)
    expected[0:10, :] = blue
    expected[5:15, 0:10] = red  # the upper layer covers the lower one
    np.testing.assert_array_equal(labels, expected)
    # Layers of another size than the photo are resized with nearest neighbour.
    np.testing.assert_array_equal(app_inputs.painted_labels(layers, (40, 60))[::2, ::2], expected)
    assert app_inputs.painted_labels([], size) is None


def test_painted_masks_reach_the_fast_model_as_compact_labels(pair, tmp_path):
    fake = FakeStylizer()
    cb = _callbacks(AppConfig(backbone="random"), fast=fake)
    content, style = read_image(pair[0]), read_image(pair[1])
    hc, wc = content.shape[:2]
    hs, ws = style.shape[:2]
    c_editor = {
        "layers": [
            _layer(tmp_path / "c.png", (hc, wc), {"green": (slice(0, hc // 2), slice(None))})
        ]
    }
    s_editor = {
        "layers": [
            _layer(tmp_path / "s.png", (hs, ws), {"green": (slice(hs // 2, None), slice(None))})
        ]
    }
    outputs = cb.fast(_payload(pair[0]), _payload(pair[1]), "paint", None, None, c_editor, s_editor)
    assert "painted masks: content green, unpainted; style green, unpainted" in _ok(outputs)[3]
    _, _, cl, sl = fake.calls[0]
    assert cl.shape == (hc, wc) and sl.shape == (hs, ws)
    # Two regions (green, unpainted) in both photos, numbered 0 and 1 for the model.
    assert set(np.unique(cl)) == {0, 1} and set(np.unique(sl)) == {0, 1}
    assert (cl[: hc // 2] == cl[0, 0]).all() and (cl[hc // 2 + 1 :] != cl[0, 0]).all()
    assert (sl[hs // 2 :] == cl[0, 0]).all()  # green is green in both


def test_uploaded_colour_masks_and_quality_run(pair, tmp_path, random_config):
    content, style = read_image(pair[0]), read_image(pair[1])
    masks = []
    for name, image in (("cm.png", content), ("sm.png", style)):
        h, w = image.shape[:2]
        rgb = np.zeros((h, w, 3), dtype=np.uint8)
        rgb[: h // 2] = COLOUR["blue"]
        rgb[h // 2 :] = COLOUR["white"]
        Image.fromarray(rgb).save(tmp_path / name)
        masks.append(_payload(tmp_path / name))
    engine = DemoEngine(random_config)
    request = MaskRequest("upload", masks[0], masks[1])
    masks_read = engine.masks(request, content, style, 64)
    assert set(np.unique(masks_read.regions.content)) == {0, 3}  # blue = 0, white = 3
    assert masks_read.info == ["mask files: content label 0, label 3; style label 0, label 3"]
    assert masks_read.warnings == []
    cb = AppCallbacks(engine)
    outputs = cb.quality(
        _payload(pair[0]), _payload(pair[1]), "upload", *masks, None, None, *TINY_QUALITY
    )
    assert _ok(outputs)[1].shape == content.shape


def test_automatic_masks_unavailable_is_said(pair, random_config):
    cb = _callbacks(random_config)
    status = cb.quality(
        _payload(pair[0]), _payload(pair[1]), "automatic", None, None, None, None, *TINY_QUALITY
    )[2]
    assert "automatic masks are unavailable" in status


def test_automatic_masks_with_the_none_segmenter(pair):
    from dpst.models.segmenter_config import SegmenterConfig

    fake = FakeStylizer()
    cb = _callbacks(
        AppConfig(backbone="random", segmenter=SegmenterConfig(backend="none")), fast=fake
    )
    status = _ok(
        cb.fast(_payload(pair[0]), _payload(pair[1]), "automatic", None, None, None, None)
    )[3]
    # No segmenter asked: the weight-free regions, which find no sure sky or backdrop in these
    # photos.
    assert "automatic masks: weight-free regions: no sure sky or backdrop in the" in status
    assert fake.calls[0][2] is None


def test_automatic_masks_with_a_segformer(pair, tmp_path):
    from dpst.models.segmenter_config import SegmenterConfig
    from tests.tiny_segformer import save_tiny_segformer

    folder = save_tiny_segformer(tmp_path / "segformer")
    seg = SegmenterConfig(weights=str(folder), device="cpu", allow_download=False)
    fake = FakeStylizer()
    fake.max_labels = 16
    cb = _callbacks(AppConfig(backbone="random", segmenter=seg), fast=fake)
    outputs = cb.fast(_payload(pair[0]), _payload(pair[1]), "automatic", None, None, None, None)
    assert "automatic masks: " in _ok(outputs)[3]
    _, _, cl, sl = fake.calls[0]
    assert cl.shape == read_image(pair[0]).shape[:2] and sl.shape == read_image(pair[1]).shape[:2]
    assert set(np.unique(cl)) <= set(np.unique(sl))  # every content region has a style region


def test_serve_command_line(tmp_path):
    from dpst.cli import build_parser, main
    from dpst.commands.serve import build_config

    args = build_parser().parse_args(["serve", "--backbone", "random", "--masks", "none"])
    config = build_config(args)
    assert (args.host, config.backbone, config.segmenter) == ("127.0.0.1", "random", None)
    # The cap follows from the memory budget: every Fast slot and a Quality job at once.
    from dpst.serve.app.config import FAST_BYTES_PER_PIXEL, QUALITY_BYTES_PER_PIXEL, AppConfig

    per_pixel = config.fast_concurrency * FAST_BYTES_PER_PIXEL + QUALITY_BYTES_PER_PIXEL
    args = build_parser().parse_args(["serve", "--memory-budget", "2048", "--masks", "none"])
    budgeted = build_config(args)
    assert budgeted.pixel_limit == 2048 * 2**20 // per_pixel
    assert budgeted.pixel_limit * per_pixel <= 2048 * 2**20
    fewer = AppConfig(memory_budget_mb=2048, fast_concurrency=1)
    assert fewer.pixel_limit > budgeted.pixel_limit  # fewer slots, larger photos
    args = build_parser().parse_args(["serve", "--max-megapixels", "3", "--masks", "none"])
    assert build_config(args).pixel_limit == 3_000_000  # an explicit cap wins
    assert main(["serve", "--model", str(tmp_path / "missing.onnx")]) == 2


@pytest.mark.parametrize("bad", ["text", "truncated", "oversized"])
def test_bad_photo_is_a_visible_error_and_the_next_request_works(pair, tmp_path, bad):
    fake = FakeStylizer()
    content = read_image(pair[0])
    cap = content.shape[0] * content.shape[1] + 10
    cb = _callbacks(AppConfig(backbone="random", max_pixels=cap), fast=fake)
    path = tmp_path / "bad.png"
    if bad == "text":
        path.write_text("this is not an image")
    elif bad == "truncated":
        path.write_bytes(open(pair[0], "rb").read()[:200])
    else:
        write_image(path, np.zeros((content.shape[0], content.shape[1] + 1, 3), np.float32))
    (slider, download, status) = cb.fast(_payload(path), _payload(pair[1]), *NO_MASKS)
    assert slider is None and "Error: content photo" in status
    assert download["value"] is None and download["visible"] is False
    assert str(tmp_path) not in status  # names the input, not the server's file
    if bad == "oversized":
        assert "MP" in status
    # Checked at upload too: the page says so before any run.
    editor, upload_status = cb.photo_changed(_payload(path), status, what="content photo")
    if bad != "truncated":  # a truncated file's header is intact: caught when read
        assert editor is None and "Error: content photo" in upload_status
    # A good photo clears an error about the last one, and keeps a job's report.
    assert cb.photo_changed(_payload(pair[0]), status)[1] == ""
    assert cb.photo_changed(_payload(pair[0]), "<p>Done</p>")[1] == {"__type__": "update"}
    _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))


def test_corrupt_mask_is_a_visible_error(pair, tmp_path, random_config):
    broken = tmp_path / "mask.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    cb = _callbacks(random_config, fast=FakeStylizer())
    status = cb.fast(
        _payload(pair[0]),
        _payload(pair[1]),
        "upload",
        _payload(broken),
        _payload(broken),
        None,
        None,
    )[2]
    assert "Error: content mask: not a readable image" in status
    status = cb.fast(_payload(pair[0]), _payload(pair[1]), "upload", None, None, None, None)[2]
    assert "Error: no content mask" in status


def test_too_many_labels_for_the_fast_model(pair, tmp_path):
    content, style = read_image(pair[0]), read_image(pair[1])
    masks = []
    for name, image in (("cm.png", content), ("sm.png", style)):
        h, w = image.shape[:2]
        rgb = np.zeros((h, w, 3), dtype=np.uint8)
        for k, (_, colour) in enumerate(PAPER_PALETTE[:6]):  # six bands: six labels
            rgb[k * h // 6 : (k + 1) * h // 6] = colour
        Image.fromarray(rgb).save(tmp_path / name)
        masks.append(_payload(tmp_path / name))
    cb = _callbacks(AppConfig(backbone="random", min_fraction=0.0), fast=FakeStylizer())
    status = cb.fast(_payload(pair[0]), _payload(pair[1]), "upload", *masks, None, None)[2]
    assert "6 labels" in status and "at most 4" in status


def test_cancel_stops_a_quality_job_and_keeps_the_result_so_far(pair, random_config):
    engine = DemoEngine(random_config)
    cb = AppCallbacks(engine)
    assert cb.cancel() == {"__type__": "update"}  # nothing running: the last report stays

    cancelled = []

    def progress(fraction, desc):
        if not cancelled:  # as the Cancel button does, from the same session
            cancelled.append(cb.cancel())

    settings = (32, 50, False, "fast")
    outputs = cb.quality(
        _payload(pair[0]), _payload(pair[1]), *NO_MASKS, *settings, progress=progress
    )
    assert "Cancelling" in cancelled[0]
    _before, after, download, status = _ok(outputs)
    # The result so far, post-filtered at the content's size, as dpst stylize's on Ctrl-C.
    assert "Cancelled at iteration 1 of 100" in status and "1 L-BFGS iterations" in status
    assert after.shape == read_image(pair[0]).shape == read_image(download).shape
    assert cb.engine.quality_jobs() == (0, 0)


def test_quality_settings_are_bounded(pair, random_config):
    cb = _callbacks(random_config)
    status = cb.quality(_payload(pair[0]), _payload(pair[1]), *NO_MASKS, 5000, 1, False, "fast")[2]
    assert "Error: size must be between 16 and 1024" in status


def test_examples_load_with_their_masks_and_run(random_config):
    """Issue 24, item 2: a click on an example loads its photos and its region masks (mask
    mode "upload"), and the masks reach the model as the same regions in both photos."""
    from types import SimpleNamespace

    from dpst.serve.examples import examples

    fake = FakeStylizer()
    cb = _callbacks(random_config, fast=fake)
    assert example_count() == len(examples()) >= 3
    for index, example in enumerate(examples()):
        selected = cb.example_selected(SimpleNamespace(index=index))
        content, style, mode, c_mask, s_mask, box, upload_row, paint_row = selected
        assert mode == "upload" and box["open"] is True
        assert upload_row["visible"] is True and paint_row["visible"] is False
        for photo, mask, source in ((content, c_mask, example.content),
                                    (style, s_mask, example.style)):  # fmt: skip
            image, painted = read_image(photo), read_image(mask)
            assert painted.shape == image.shape  # the mask at its photo's size
            with Image.open(source) as original:  # at most example_side, never enlarged
                side = min(max(original.size), random_config.example_side)
            assert max(image.shape[:2]) == side
        outputs = cb.fast(*map(_payload, (content, style)), "upload",
                          *map(_payload, (c_mask, s_mask)), None, None)  # fmt: skip
        assert "mask files" in _ok(outputs)[3]
        _, _, cl, sl = fake.calls[-1]
        labels = set(np.unique(cl).tolist())
        assert labels == set(np.unique(sl).tolist()) and len(labels) == len(example.regions)
    thumbnails = example_thumbnails(32)
    assert [caption for _, caption in thumbnails] == [e.caption for e in examples()]
    assert all(picture.shape[0] == 32 for picture, _ in thumbnails)


def test_a_click_on_an_example_fills_the_mask_inputs(random_config):
    demo = build_app(random_config, DemoEngine(random_config, fast=FakeStylizer()))
    (select,) = [fn for fn in demo.fns.values() if fn.name == "example_selected"]
    ids = [getattr(block, "elem_id", None) for block in select.outputs]
    assert ids[:3] == ["content-image", "style-image", "mask-mode"]
    assert [getattr(b, "label", None) for b in select.outputs[3:5]] == [
        "Content mask",
        "Style mask",
    ]


def _quality_in_thread(engine, pair, session, settings, progress):
    """Run a Quality job of ``session`` in a thread: -> (thread, {"result"|"error": ...})."""
    out: dict = {}

    def work():
        try:
            out["result"] = engine.run_quality(
                pair[0], pair[1], MaskRequest(), settings, progress, session=session
            )
        except Exception as err:
            out["error"] = err

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, out


LONG_QUALITY = {"size": 32, "iters": 1000, "multiscale": False, "post_mode": "fast"}


def test_a_fast_request_completes_while_a_quality_job_runs(pair, tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    engine = DemoEngine(AppConfig(model_path=str(model), backbone="random", device="cpu"))
    cb = AppCallbacks(engine)
    optimising = threading.Event()
    thread, out = _quality_in_thread(
        engine, pair, "a", LONG_QUALITY, lambda fraction, desc: optimising.set()
    )
    try:
        assert optimising.wait(60)
        for _ in range(3):
            _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))
        assert engine.quality_jobs() == (1, 0)  # still optimising when Fast was done
    finally:
        engine.request_stop("a")
        thread.join(60)
    assert out["result"].stopped_at[1] == 2000  # two stages of 1000


def test_quality_runs_one_at_a_time_behind_a_bounded_queue(pair):
    engine = DemoEngine(AppConfig(backbone="random", device="cpu", quality_queue_size=1))
    started, said = threading.Event(), []
    first, first_out = _quality_in_thread(
        engine, pair, "a", LONG_QUALITY, lambda fraction, desc: started.set()
    )
    assert started.wait(60)
    second, second_out = _quality_in_thread(
        engine, pair, "b", LONG_QUALITY, lambda fraction, desc: said.append(desc)
    )
    try:
        for _ in range(200):
            if said:
                break
            threading.Event().wait(0.05)
        assert said == ["waiting: 1 Quality job ahead"] and engine.quality_jobs() == (1, 1)
        # A third job finds the queue full; a second one from the same page is refused too.
        with pytest.raises(QualityBusy, match="one job running, 1 waiting"):
            engine.run_quality(pair[0], pair[1], MaskRequest(), LONG_QUALITY, session="c")
        with pytest.raises(QualityBusy, match="already has a Quality job"):
            engine.run_quality(pair[0], pair[1], MaskRequest(), LONG_QUALITY, session="a")
        # Cancelling a waiting job ends it at once, with nothing run.
        assert engine.request_stop("b")
        second.join(10)
        assert isinstance(second_out["error"], JobCancelled)
        assert engine.quality_jobs() == (1, 0)
    finally:
        engine.request_stop("a")
        engine.request_stop("b")
        first.join(60)
    assert first_out["result"].stopped_at is not None and engine.quality_jobs() == (0, 0)


def test_a_waiting_job_starts_when_the_running_one_ends(pair):
    engine = DemoEngine(AppConfig(backbone="random", device="cpu"))
    started = threading.Event()
    first, first_out = _quality_in_thread(
        engine, pair, "a", LONG_QUALITY, lambda fraction, desc: started.set()
    )
    assert started.wait(60)
    tiny = {"size": 32, "iters": 1, "multiscale": False, "post_mode": "fast"}
    second, second_out = _quality_in_thread(engine, pair, "b", tiny, None)
    threading.Event().wait(0.3)
    assert engine.quality_jobs() == (1, 1)
    AppCallbacks(engine).page_closed(_Request("a"))
    first.join(60)
    second.join(60)
    assert first_out["result"].stopped_at is not None
    assert second_out["result"].stopped_at is None  # ran through, after the first


def test_an_error_clears_the_last_result(pair, tmp_path):
    cb = _callbacks(AppConfig(backbone="random"), fast=FakeStylizer())
    _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))
    slider, download, status = cb.fast(None, _payload(pair[1]), *NO_MASKS)
    assert "Error: no content photo" in status
    assert slider is None and download == {"__type__": "update", "value": None, "visible": False}


class _Request:
    """What the callbacks read of Gradio's request: the page's session."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash


def test_a_job_cancelled_while_waiting_shows_no_result(pair, random_config):
    engine = DemoEngine(random_config)
    cb = AppCallbacks(engine)
    started, waiting, out = threading.Event(), threading.Event(), {}
    first, _ = _quality_in_thread(
        engine, pair, "a", LONG_QUALITY, lambda fraction, desc: started.set()
    )
    page = _Request("b")

    def work():
        out["outputs"] = cb.quality(
            _payload(pair[0]), _payload(pair[1]), *NO_MASKS, *TINY_QUALITY,
            progress=lambda fraction, desc: waiting.set(), request=page,
        )  # fmt: skip

    try:
        assert started.wait(60)
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        assert waiting.wait(10)
        assert "Cancelling" in cb.cancel(page)
        thread.join(10)
    finally:
        engine.request_stop("a")
        first.join(60)
    slider, download, status = out["outputs"]
    assert slider is None and download["visible"] is False
    assert "Cancelled while waiting for its turn." in status and "dpst-error" not in status


def test_every_request_is_logged_in_one_line(pair, random_config, caplog):
    content = read_image(pair[0])
    h, w = content.shape[:2]
    cb = _callbacks(random_config, fast=FakeStylizer())
    with caplog.at_level(logging.INFO, logger="dpst.serve"):
        _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))
        cb.fast(_payload(pair[0]), None, *NO_MASKS)
        _ok(cb.quality(_payload(pair[0]), _payload(pair[1]), *NO_MASKS, *TINY_QUALITY))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("dpst.serve")]
    seconds = r"\d+\.\d\d s"
    expected = [
        rf"fast {w}x{h} {seconds} ok",
        rf"fast {w}x{h} {seconds} error: no style photo: upload one or pick an example",
        rf"quality {w}x{h} \(working 32x\d+\) {seconds} ok",
    ]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), line


def test_fast_and_quality_have_their_own_concurrency(random_config):

    config = replace(random_config, fast_concurrency=3, queue_size=9, quality_queue_size=2)
    demo = build_app(config, DemoEngine(config, fast=FakeStylizer()))
    by_name = {fn.name: fn for fn in demo.fns.values()}
    fast, quality = by_name["fast"], by_name["quality"]
    assert (fast.concurrency_id, fast.concurrency_limit) == ("fast", 3)
    assert quality.concurrency_id == "quality" and quality.concurrency_limit == 4
    assert not by_name["cancel"].cancels  # Cancel lets the job return its result so far
    assert demo._queue.max_size == 9
    # dpst.serve.app.page defaults GRADIO_ANALYTICS_ENABLED to False before gradio reads it.
    assert demo.analytics_enabled is False


@pytest.mark.parametrize(
    ("host", "share", "warned"),
    [
        ("127.0.0.1", False, None),
        ("localhost", False, None),
        ("::1", False, None),
        ("0.0.0.0", False, "0.0.0.0 (every network interface)"),
        ("::", False, ":: (every network interface)"),
        ("192.168.1.20", False, "192.168.1.20 without a login"),
        ("127.0.0.1", True, "public gradio.live link"),
    ],
)
def test_a_server_reachable_from_elsewhere_is_warned_about(host, share, warned):
    from dpst.commands.serve import exposure_warning

    line = exposure_warning(host, share)
    if warned is None:
        assert line is None
    else:
        assert warned in line and "\n" not in line and "--host 127.0.0.1" in line


def test_serve_flags_set_the_queues():
    from dpst.cli import build_parser
    from dpst.commands.serve import build_config

    flags = ["--quality-queue", "0", "--fast-concurrency", "2", "--queue-size", "5"]
    args = build_parser().parse_args(["serve", "--backbone", "random", "--masks", "none", *flags])
    config = build_config(args)
    assert (config.quality_queue_size, config.fast_concurrency, config.queue_size) == (0, 2, 5)


def test_a_port_in_use_is_one_line_not_a_traceback(capsys):
    from dpst.cli import main

    previous = signal.getsignal(signal.SIGTERM)  # dpst serve sets its own
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            code = main(["serve", "--port", str(port), "--backbone", "random", "--masks", "none"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"dpst serve: error: cannot listen on 127.0.0.1:{port} (the port is in")
    assert "--port" in last and "launch()" not in last


class _Request:
    """Stands in for gr.Request: the session hash is what the callbacks read."""

    def __init__(self, session: str) -> None:
        self.session_hash = session


def test_a_look_file_is_offered_and_applied_like_its_style_photo(pair, tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    cb = _callbacks(AppConfig(model_path=str(model), backbone="random"))
    look, status = cb.look_file(_payload(pair[1]))
    assert look["visible"] is True and look["value"].endswith(".dpst"), status
    _, with_style, _, _ = _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))
    # The look alone (no style photo) gives the same picture.
    outputs = cb.fast(_payload(pair[0]), None, *NO_MASKS, _payload(look["value"]))
    _, with_look, _, status = _ok(outputs)
    np.testing.assert_array_equal(with_look, with_style)
    assert "look file" in status
    # A file that is no look: one line on the page, no result.
    bad = tmp_path_factory.mktemp("bad") / "bad.dpst"
    bad.write_bytes(b"not a zip")
    result, download, status = cb.fast(_payload(pair[0]), None, *NO_MASKS, _payload(bad))
    assert result is None and download["visible"] is False and "Error" in status


def test_a_lut_is_fitted_to_this_pages_last_fast_result(pair, tmp_path_factory):
    from dpst.serve.runtime.lut_files import read_cube

    model = shared_tiny_model(tmp_path_factory)
    cb = _callbacks(AppConfig(model_path=str(model), backbone="random"))
    mine, other = _Request("mine"), _Request("other")
    lut, status = cb.lut_file(_payload(pair[0]), mine)
    assert lut["visible"] is False and "stylise a photo in Fast mode first" in status
    _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS, None, mine))
    lut, status = cb.lut_file(_payload(pair[0]), mine)
    assert lut["visible"] is True and lut["value"].endswith(".cube"), status
    assert "mean CIEDE2000" in status
    assert read_cube(lut["value"]).shape == (33, 33, 33, 3)
    # Another page has no result of its own, and a closed page's result is forgotten.
    assert cb.lut_file(_payload(pair[0]), other)[0]["visible"] is False
    cb.page_closed(mine)
    assert cb.lut_file(_payload(pair[0]), mine)[0]["visible"] is False


def test_previews_of_large_8bit_and_float_results_keep_their_colours():
    from dpst.serve.app.page import PREVIEW_SIDE, _preview

    grey = np.full((20, PREVIEW_SIDE + 300, 3), 100, dtype=np.uint8)
    for image in (grey, grey.astype(np.float32) / 255):
        preview = _preview(image)
        assert preview.dtype == np.uint8 and max(preview.shape[:2]) == PREVIEW_SIDE
        assert np.abs(preview.astype(int) - 100).max() <= 1


def test_results_folder_is_pruned_safely_by_requests_at_once(monkeypatch, random_config):

    from dpst.serve.app import engine as app_engine

    monkeypatch.setattr(app_engine, "RESULTS_KEPT", 5)
    engine = DemoEngine(random_config, fast=FakeStylizer())
    image = np.zeros((4, 4, 3), dtype=np.uint8)

    def save_many(_):
        return [engine.save_preview(image, "after") for _ in range(40)]

    with ThreadPoolExecutor(8) as pool:
        paths = [p for batch in pool.map(save_many, range(8)) for p in batch]
    assert len(set(paths)) == 320  # every request its own name
    assert len(list(engine.results_dir.glob("dpst-*"))) <= 5 + 8  # pruned as it went


def test_the_strength_slider_sets_how_much_of_the_look(pair, tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    config = AppConfig(model_path=str(model), backbone="random")
    demo = build_app(config)
    cb = demo.dpst_callbacks
    props = {c["props"].get("elem_id"): c["props"] for c in demo.get_config_file()["components"]}
    slider = props["strength"]
    limits = (slider["minimum"], slider["maximum"], slider["step"], slider["value"])
    assert limits == (0, 2, 0.05, 1) and slider["label"] == "Strength"
    assert slider["visible"] is True  # Fast is the default mode with a model
    fast = next(fn for fn in demo.fns.values() if fn.name == "fast")
    assert fast.inputs[-1].elem_id == "strength"
    # Gradio puts the request in by its annotation, before the slider's value (the last input).
    from gradio.helpers import special_args

    values = [f"input {i}" for i in range(len(fast.inputs))]
    filled = special_args(cb.fast, list(values), request="the request")[0]
    assert filled == [*values[:-1], "the request", values[-1]]
    before, full, _, _ = _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS))
    assert np.abs(full - before).mean() > 0.01  # the look changes the photo
    before, none, _, status = _ok(cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS, None,
                                          None, 0.0))  # fmt: skip
    assert np.abs(none - before).max() <= 1 / 255 + 1e-6 and "strength 0" in status
    # The slider keeps within its range; a request from elsewhere is refused in one line.
    result, download, status = cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS, None,
                                       None, 2.5)  # fmt: skip
    assert result is None and download["visible"] is False
    assert "Strength must be between 0 and 2" in status


def test_quality_mode_names_the_automatic_masks_it_used(pair):
    from dpst.models.segmenter_config import SegmenterConfig

    config = AppConfig(backbone="random", segmenter=SegmenterConfig(backend="none"))
    cb = _callbacks(config)
    outputs = cb.quality(
        _payload(pair[0]), _payload(pair[1]), "automatic", None, None, None, None, *TINY_QUALITY
    )
    # No segmenter asked: the weight-free regions, none sure in these photos (named regions:
    # tests/test_regions_everywhere.py).
    assert "automatic masks: weight-free regions: no sure sky or backdrop in the" in _ok(outputs)[3]


# Words of exceptions and of the server's places: none belongs on the page (issue 24).
RAW = re.compile(r"Traceback|Errno|gaierror|Error:|Exception|downloads are off|share=True")


def _page_words(demo) -> list[str]:
    """The words the page shows: every component's label, info, choices and text value (not
    Gradio's file data, whose URLs name its own cache by design)."""
    words = []
    for component in demo.get_config_file()["components"]:
        props = component["props"]
        for key in ("label", "info", "value", "placeholder"):
            if isinstance(props.get(key), str):
                words.append(props[key])
        words += [str(label) for label, _ in props.get("choices") or []]
    return words


def _no_server_places(text: str, *places) -> None:
    assert not RAW.search(text), text
    for place in (*places, "/root", "/tmp", "/home", ".cache", str(Path.home())):
        assert str(place) not in text, (place, text)


def test_the_page_says_what_is_missing_in_words(pair, tmp_path, monkeypatch):
    from dpst.models.segmenter_config import SegmenterConfig
    from dpst.serve.app.engine import NO_VGG

    # No VGG-19 weights (a named file that is not there: nothing to download) and no
    # segmenter weights on this "server", which is not offline (as in the issue): the
    # console's reason for the masks is then dpst serve's own rule, which never downloads.
    for name in ("HF_HUB_OFFLINE", "DPST_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    segmenter = SegmenterConfig(cache_dir=str(tmp_path / "hf"), allow_download=False)
    missing = tmp_path / "weights" / "vgg19.pth"
    config = AppConfig(backbone="vgg19", vgg_weights=str(missing), segmenter=segmenter)
    engine = DemoEngine(config, fast=FakeStylizer())
    demo = build_app(config, engine)
    words = _page_words(demo)
    for text in words:
        _no_server_places(text, tmp_path)
    by_id = {c["props"].get("elem_id"): c["props"] for c in demo.get_config_file()["components"]}
    # Quality mode is not offered; the note says what is missing and how to enable it.
    assert [label for label, _ in by_id["mode"]["choices"]] == ["Fast"]
    notes = by_id["availability"]["value"]
    assert NO_VGG[0] in notes and "<code>--vgg-weights FILE</code>" in notes
    # Automatic masks go on without the segmenter (the weight-free regions), in words.
    assert "weight-free regions" in notes and "no segmenter weights" in notes
    # The console keeps the details, with the true reason for the masks.
    assert str(missing) in engine.backbone_off.console
    assert engine.automatic_off() is None and "weight-free" in engine.automatic_available()[1]
    # A Quality request sent anyway (the API) gets the same words, in red.
    status = demo.dpst_callbacks.quality(_payload(pair[0]), _payload(pair[1]), *NO_MASKS,
                                         *TINY_QUALITY)[2]  # fmt: skip
    assert "Quality mode is unavailable" in status
    _no_server_places(status.replace("Error: ", ""), tmp_path)


def test_a_failed_request_shows_no_exception_or_server_path(pair, tmp_path, caplog):
    cb = _callbacks(AppConfig(backbone="random"), fast=FakeStylizer())
    secret = tmp_path / "private" / "state.bin"

    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot map {secret}: bad magic")

    cb.engine.run_fast = broken
    with caplog.at_level(logging.ERROR):
        status = cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS)[2]
    assert "internal error" in status and "bad magic" not in status
    _no_server_places(status.replace("Error: ", ""), tmp_path)
    assert "bad magic" in caplog.text  # the log has it, for the operator

    def refused(*args, **kwargs):
        raise app_inputs.InputError(f"could not write {secret} (No space left on device)")

    cb.engine.run_fast = refused
    status = cb.fast(_payload(pair[0]), _payload(pair[1]), *NO_MASKS)[2]
    assert "could not write state.bin (No space left on device)" in status
    _no_server_places(status.replace("Error: ", ""), tmp_path)
