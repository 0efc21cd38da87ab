"""The Gradio demo: two photos in, the content photo with the style's look out.

    engine = DemoEngine(AppConfig(model_path="model.onnx"))
    build_app(engine.config, engine).launch(**launch_options(engine))
    # or, from a shell: dpst serve --model model.onnx

Fast mode runs the exported generator through ONNX Runtime (about a second), several at once;
Quality mode runs the paper's optimiser (minutes), one job at a time behind a short queue of
its own, with a progress bar and a cancel button that keeps the result so far. The two never
wait for each other. Every request is logged in one line (logger ``dpst.serve.app.page``: mode,
size, seconds, outcome). The page is built by :func:`build_app`; its callbacks are the methods of
:class:`AppCallbacks`, plain functions of the page's values that tests call without a server.
The run events take Gradio's raw file payloads (``preprocess=False``) so that a broken upload
reaches our reader and comes back as a message on the page rather than a stack trace.
"""

from __future__ import annotations

import html
import logging
import os
import re
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# No usage reports to Gradio's servers from a photo demo; read when a Blocks is made, so
# setting it here is in time; setdefault leaves a user's own choice alone.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import numpy as np

from dpst.constants import DEFAULT_STRENGTH, STRENGTH_MAX, STRENGTH_MIN
from dpst.errors import DpstError
from dpst.labels.palette import PAPER_PALETTE
from dpst.labels.regions import FROM_SEGMENTER
from dpst.serve.app.config import AppConfig
from dpst.serve.app.engine import (
    DemoEngine,
    JobCancelled,
    JobResult,
    MaskRequest,
    QualityBusy,
)
from dpst.serve.app.inputs import payload_path

log = logging.getLogger(__name__)

FAST, QUALITY = "Fast", "Quality"
MASK_CHOICES = (
    ("No masks (one region)", "none"),
    ("Automatic (segmenter, else weight-free regions)", "automatic"),
    ("Upload mask files", "upload"),
    ("Paint masks", "paint"),
)
# Before/after pictures shown in the page at most this size; the download is full size.
PREVIEW_SIDE = 1600
POST_MODES = ("fast", "exact")
CSS = """
.dpst-error {color: #b91c1c; font-weight: 600}
#examples .thumbnail-item {aspect-ratio: 5 / 2}
"""


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _preview(image: np.ndarray) -> np.ndarray:
    """8-bit, at most PREVIEW_SIDE pixels long, from a float or 8-bit image."""
    from dpst.imageio import resize_long_side, to_uint8

    if max(image.shape[:2]) <= PREVIEW_SIDE:
        return image if image.dtype == np.uint8 else to_uint8(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / np.float32(255)
    return to_uint8(resize_long_side(image, PREVIEW_SIDE))


def status_html(body: str) -> str:
    """The status box's content, in one element apart from Gradio's progress overlay."""
    return f'<div id="dpst-status-body">{body}</div>'


# An absolute path in a message (POSIX or Windows): the server's own, which the page never
# shows; the file's name alone says which file.
_SERVER_PATH = re.compile(r"(?<![\w.~/:])(?:[A-Za-z]:\\|/)(?:[^\s/\\:;,()'\"]+[/\\])+")


def without_server_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last part (``/tmp/x/a.png`` -> ``a.png``)."""
    return _SERVER_PATH.sub("", message)


def words_html(text: str) -> str:
    """Plain words as HTML: escaped, with `commands` in backquotes set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def error_html(message: str) -> str:
    """An error for the page: one red line, no server path (messages name the inputs, as
    "content photo"; this is the net for one that names a file)."""
    text = words_html(without_server_paths(message))
    return status_html(f'<p class="dpst-error" id="dpst-error">Error: {text}</p>')


def result_html(result: JobResult) -> str:
    """Timings, backend and notes of a finished (or cancelled) job as a few lines of HTML."""
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in result.seconds.items() if k != "total")
    head = "<b>Done</b>"
    if result.stopped_at is not None:
        head = "<b>Cancelled at iteration {} of {}</b>: the result so far,".format(
            *result.stopped_at
        )
    total = result.seconds["total"]
    lines = [
        f"<p>{head} in {total:.2f} s ({parts}); output {result.size}.</p>",
        f"<p>{html.escape(result.backend)}</p>",
    ]
    lines += [f"<p>{html.escape(n)}</p>" for n in result.info]
    lines += notes_html(result.warnings)
    return status_html("\n".join(lines))


def notes_html(warnings: list[str]) -> list[str]:
    """Each warning as a paragraph with a warning sign."""
    return [f'<p class="dpst-note">&#9888; {html.escape(n)}</p>' for n in warnings]


class AppCallbacks:
    """Everything the page's events call; each returns the values of the event's outputs."""

    def __init__(self, engine: DemoEngine) -> None:
        self.engine = engine

    @staticmethod
    def _masks(mode, content_mask, style_mask, content_editor, style_editor) -> MaskRequest:
        return MaskRequest(mode, content_mask, style_mask, content_editor, style_editor)

    def _finish(self, mode: str, result: JobResult, started: float):
        outcome = "ok"
        if result.stopped_at is not None:
            outcome = "cancelled at iteration {}/{}".format(*result.stopped_at)
        size = result.size
        if mode == QUALITY:
            h, w = result.report["sizes"]["working"]
            size += f" (working {w}x{h})"
        log_request(mode, size, time.perf_counter() - started, outcome)
        download = gr.update(value=result.path, visible=True)
        # Files of this request's own names, not arrays: Gradio caches an array under a name
        # made from its pixels, so two requests with the same photos (an example clicked on
        # two pages) wrote and served the same file at once, and a download came back empty.
        before = self.engine.save_preview(_preview(result.content), "before")
        after = self.engine.save_preview(_preview(result.image), "after")
        return (before, after), download, result_html(result)

    @staticmethod
    def _failed(mode: str, err: BaseException, content, started: float):
        """The page's outputs for a request that gave no result: the last request's result
        is taken away with the message, so no download offers an older picture as this one's."""
        if isinstance(err, JobCancelled):
            text = str(err)
            outcome, status = (
                "cancelled before starting",
                status_html(f"<p>{html.escape(text[:1].upper() + text[1:])}.</p>"),
            )
        elif isinstance(err, DpstError):
            outcome = "refused: busy" if isinstance(err, QualityBusy) else f"error: {err}"
            status = error_html(str(err))
        else:
            log.exception("demo job failed")
            outcome = f"internal error: {type(err).__name__}"
            # The exception's text is the log's (logged above): it can hold the server's paths
            # and says nothing a visitor can act on.
            status = error_html(
                "this request failed on the server (an internal error, "
                "recorded in its log); try again, or with other photos"
            )
        log_request(mode, _upload_size(content), time.perf_counter() - started, outcome)
        return None, gr.update(value=None, visible=False), status

    def fast(
        self,
        content,
        style,
        mask_mode,
        content_mask,
        style_mask,
        c_editor,
        s_editor,
        look=None,
        request: gr.Request | None = None,
        strength: float = DEFAULT_STRENGTH,
    ):
        """Fast mode (with ``look``, a look file instead of the style photo; ``strength`` of
        the look, the Strength slider): -> (slider value, download path, status HTML).

        ``strength`` comes after ``request``, which Gradio fills in by its type, so that
        callers passing ``look`` and ``request`` by position are not shifted.
        """
        started = time.perf_counter()
        masks = self._masks(mask_mode, content_mask, style_mask, c_editor, s_editor)
        try:
            result = self.engine.run_fast(content, style, masks, look, _session(request), strength)
        except Exception as err:  # the page shows it; the server goes on
            return self._failed(FAST, err, content, started)
        return self._finish(FAST, result, started)

    def quality(
        self,
        content,
        style,
        mask_mode,
        content_mask,
        style_mask,
        c_editor,
        s_editor,
        size,
        iters,
        multiscale,
        post_mode,
        progress: gr.Progress | None = gr.Progress(),  # noqa: B008 (Gradio's injection marker)
        request: gr.Request | None = None,
    ):
        """Quality mode: -> (slider value, download path, status HTML)."""
        started = time.perf_counter()
        masks = self._masks(mask_mode, content_mask, style_mask, c_editor, s_editor)
        settings = {"size": size, "iters": iters, "multiscale": multiscale, "post_mode": post_mode}

        def report(fraction: float, desc: str) -> None:
            if progress is not None:
                progress(fraction, desc=desc)

        try:
            result = self.engine.run_quality(
                content, style, masks, settings, report, session=_session(request)
            )
        except Exception as err:  # the page shows it; the server goes on
            return self._failed(QUALITY, err, content, started)
        return self._finish(QUALITY, result, started)

    def cancel(self, request: gr.Request | None = None):
        """Ask this page's Quality job to stop; its own event then shows the result so far.

        The job's event is not cancelled through Gradio (``cancels=``): that would drop the
        value the job returns, the result so far, as it did before.
        """
        if self.engine.request_stop(_session(request)):
            return status_html("<p>Cancelling: the result so far follows shortly.</p>")
        return gr.update()  # nothing running: the last report stays

    def page_closed(self, request: gr.Request | None = None) -> None:
        """The tab was closed or reloaded: its Quality job would hold the queue for nobody."""
        self.engine.request_stop(_session(request))
        self.engine.forget(_session(request))

    def look_file(
        self, style, mask_mode="none", content_mask=None, style_mask=None, c_editor=None,
        s_editor=None,
    ):  # fmt: skip
        """The style photo as a look file, with the regions of the page's mask mode:
        -> (look download, status HTML)."""
        started = time.perf_counter()
        masks = self._masks(mask_mode, content_mask, style_mask, c_editor, s_editor)
        try:
            saved = self.engine.make_look(style, masks)
        except Exception as err:  # the page shows it; the server goes on
            _, hidden, status = self._failed("look", err, style, started)
            return hidden, status
        log_request("look", _upload_size(style), time.perf_counter() - started, "ok")
        note = f"<p>Look saved ({html.escape(saved.regions)}): apply it later without the "
        note += "style photo (Fast mode, above, or <code>dpst fast PHOTO --look FILE</code>).</p>"
        note += "".join(notes_html(saved.warnings))
        return gr.update(value=saved.path, visible=True), status_html(note)

    def lut_file(self, content, request: gr.Request | None = None):
        """A 3D LUT fitted to this page's last Fast result: -> (LUT download, status HTML)."""
        started = time.perf_counter()
        try:
            path, summary = self.engine.make_lut(content, _session(request))
        except Exception as err:  # the page shows it; the server goes on
            _, hidden, status = self._failed("lut", err, content, started)
            return hidden, status
        log_request("lut", _upload_size(content), time.perf_counter() - started, "ok")
        return gr.update(value=path, visible=True), status_html(f"<p>{html.escape(summary)}.</p>")

    def photo_changed(self, payload, status: str | None = None, what: str = "content photo"):
        """A new photo: check it at once; -> (mask editor value, status HTML).

        ``status`` is the status box's content: an error is replaced (by this photo's, or
        cleared when the photo is fine); a job's report stays.
        """
        from dpst.serve.app.inputs import check_photo

        path = payload_path(payload)
        keep = gr.update() if status is None or "dpst-error" not in status else ""
        if path is None:
            return None, keep
        try:
            check_photo(path, what, self.engine.config.pixel_limit)
        except DpstError as err:
            return None, error_html(str(err))
        return gr.update(value={"background": path, "layers": [], "composite": None}), keep

    def example_selected(self, evt: gr.SelectData):
        """A click on example pair ``evt.index``: -> (content path, style path, mask mode
        "upload", content mask path, style mask path, the masks' box opened, upload row
        shown, paint row hidden): the pair's region masks load with its photos."""
        content, style, content_mask, style_mask = self.engine.example_paths(int(evt.index))
        return (
            content,
            style,
            "upload",
            content_mask,
            style_mask,
            gr.update(open=True),
            gr.update(visible=True),
            gr.update(visible=False),
        )

    @staticmethod
    def mode_changed(mode: str):
        """-> visibility of (quality options, Strength slider, fast button, quality button,
        cancel button)."""
        quality = mode == QUALITY
        return (
            gr.update(visible=quality),
            gr.update(visible=not quality),
            gr.update(visible=not quality),
            gr.update(visible=quality),
            gr.update(visible=quality),
        )

    @staticmethod
    def mask_mode_changed(mode: str):
        """-> visibility of (upload row, paint row)."""
        return gr.update(visible=mode == "upload"), gr.update(visible=mode == "paint")


def log_request(mode: str, size: str, seconds: float, outcome: str) -> None:
    """The console's line for one request."""
    log.info("%s %s %.2f s %s", mode.lower(), size, seconds, outcome)


def _upload_size(payload) -> str:
    """``WxH`` of an uploaded photo from its header, or ``-`` (for the log only)."""
    from dpst.serve.app.inputs import check_photo

    try:
        h, w = check_photo(payload, "photo", sys.maxsize)
    except DpstError:
        return "-"
    return f"{w}x{h}"


def _session(request) -> str:
    from dpst.serve.app.engine import LOCAL_SESSION

    return getattr(request, "session_hash", None) or LOCAL_SESSION


def _availability_html(engine: DemoEngine) -> str:
    """What this server cannot do and how its operator enables it, in words: the details
    (exceptions, the server's paths) are the console's (``dpst serve`` prints them)."""
    lines = []
    if engine.fast_off is not None:
        lines.append(engine.fast_off.page)
    if engine.backbone_off is not None:
        lines.append(engine.backbone_off.page)
    elif engine.backbone.name == "random":
        lines.append(
            "This server runs Quality mode with a random backbone standing in for VGG-19: "
            "results show the machinery, not the method."
        )
    masks_off = engine.automatic_off()
    if masks_off is not None:
        lines.append(masks_off.page)
    elif engine.finder().source != FROM_SEGMENTER:  # the console says why, with the details
        lines.append(
            "Automatic masks use the weight-free regions (a sky or a backdrop, and the rest): "
            "this server has no segmenter weights. To use the segmenter, put its weights on "
            "the server (its console says how) and restart `dpst serve`."
        )
    return "\n".join(f'<p class="dpst-note">&#9888; {words_html(x)}</p>' for x in lines)


def available_modes(engine: DemoEngine) -> list[str]:
    """The modes this server can run, Fast first: a mode without its model or weights is
    not offered (the availability note says why and how to enable it)."""
    return [mode for mode, ready in ((FAST, engine.fast), (QUALITY, engine.backbone)) if ready]


def build_app(config: AppConfig, engine: DemoEngine | None = None):
    """The demo page as a ``gr.Blocks``; queue configured, not launched.

    ``engine`` lets tests share one; by default one is made from ``config``.
    """
    engine = engine or DemoEngine(config)
    cb = AppCallbacks(engine)
    automatic = engine.automatic_available()
    modes = available_modes(engine)
    default_mode = modes[0] if modes else None
    with gr.Blocks(title="Deep Photo Style Transfer", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# Deep Photo Style Transfer\n"
            "Give a content photo and a style photo: the result is the content photo with "
            "the style photo's colours and tones, still a photograph."
        )
        gr.HTML(_availability_html(engine), elem_id="availability")
        page = SimpleNamespace()
        _photos_and_masks(page, automatic[0])
        _mode_and_settings(page, config, engine, default_mode)
        _result_and_looks(page, engine)
        _wire(page, cb, config)
        demo.unload(cb.page_closed)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1, api_open=False)
    demo.dpst_callbacks = cb  # for tests and embedding; the page itself does not need it
    return demo


def _photos_and_masks(page: SimpleNamespace, automatic: bool) -> None:
    """The two photos, the examples and the mask inputs (upload or paint), onto ``page``."""
    from dpst.serve.app.examples import example_thumbnails

    thumbnails = example_thumbnails()
    with gr.Row():
        page.content = gr.Image(
            label="Content photo", type="filepath", image_mode=None, format="png",
            sources=["upload", "clipboard"], elem_id="content-image", height=320,
        )  # fmt: skip
        page.style = gr.Image(
            label="Style photo", type="filepath", image_mode=None, format="png",
            sources=["upload", "clipboard"], elem_id="style-image", height=320,
        )  # fmt: skip
    page.examples = gr.Gallery(
        value=thumbnails,
        label="Examples (click one to load it with its masks)",
        columns=len(thumbnails),
        allow_preview=False,
        object_fit="contain",
        height=190,
        elem_id="examples",
    )
    mask_choices = [c for c in MASK_CHOICES if automatic or c[1] != "automatic"]
    brush = gr.Brush(
        colors=[_hex(rgb) for _, rgb in PAPER_PALETTE],
        default_color=_hex(PAPER_PALETTE[0][1]),
        color_mode="fixed",
    )
    colours = ", ".join(name for name, _ in PAPER_PALETTE)
    with gr.Accordion("Masks", open=False) as page.mask_box:
        page.mask_mode = gr.Radio(
            mask_choices, value="none", label="Masks", elem_id="mask-mode",
            info="Regions of one colour in both photos take their look from each other.",
        )  # fmt: skip
        with gr.Row(visible=False) as page.upload_row:
            page.content_mask = gr.Image(
                label="Content mask", type="filepath", image_mode=None, format="png"
            )
            page.style_mask = gr.Image(
                label="Style mask", type="filepath", image_mode=None, format="png"
            )
        with gr.Column(visible=False) as page.paint_row:
            gr.Markdown(
                f"Paint regions that belong together in the same colour in both photos "
                f"({colours}); the unpainted parts of the two form one more region."
            )
            with gr.Row():
                page.c_editor = gr.ImageEditor(
                    label="Content mask", brush=brush, sources=None, transforms=(),
                    format="png", layers=True, elem_id="content-editor",
                )  # fmt: skip
                page.s_editor = gr.ImageEditor(
                    label="Style mask", brush=brush, sources=None, transforms=(),
                    format="png", layers=True, elem_id="style-editor",
                )  # fmt: skip


def _mode_and_settings(
    page: SimpleNamespace, config: AppConfig, engine: DemoEngine, default_mode: str
) -> None:
    """Fast or Quality, Quality's settings, the strength slider and the buttons."""
    modes = available_modes(engine)
    info = {
        FAST: "Fast: the trained network, about a second.",
        QUALITY: "Quality: the paper's optimiser, minutes, one job at a time.",
    }
    said = " ".join(info[mode] for mode in modes)
    said += "".join(f" {mode} mode is unavailable here (see above)." for mode in info
                    if mode not in modes)  # fmt: skip
    page.mode = gr.Radio(
        modes, value=default_mode, label="Mode", elem_id="mode", info=said.strip(),
        interactive=len(modes) > 1,
    )  # fmt: skip
    with gr.Group(visible=default_mode == QUALITY) as page.quality_box:
        with gr.Row():
            page.size = gr.Slider(
                64, config.quality_max_size, value=config.quality_size, step=16,
                label="Working size (long side, px)", elem_id="quality-size",
            )  # fmt: skip
            page.iters = gr.Slider(
                1, config.quality_max_iters, value=config.quality_iters, step=1,
                label="Iterations per stage", elem_id="quality-iters",
            )  # fmt: skip
        with gr.Row():
            page.multiscale = gr.Checkbox(value=True, label="Multi-scale (much faster)")
            page.post_mode = gr.Radio(list(POST_MODES), value="fast", label="Post-filter")
    page.strength = gr.Slider(
        STRENGTH_MIN, STRENGTH_MAX, value=DEFAULT_STRENGTH, step=0.05, label="Strength",
        info="How much of the look: 0 the photo unchanged, 1 the model's full look, "
        "up to 2 to exaggerate it.", elem_id="strength", visible=default_mode == FAST,
    )  # fmt: skip
    with gr.Row():
        page.run_fast = gr.Button(
            "Stylize (fast)", variant="primary", elem_id="run-fast",
            visible=default_mode == FAST,
        )  # fmt: skip
        page.run_quality = gr.Button(
            "Stylize (quality)", variant="primary", elem_id="run-quality",
            visible=default_mode == QUALITY,
        )  # fmt: skip
        page.cancel = gr.Button("Cancel", elem_id="cancel", visible=default_mode == QUALITY)


def _result_and_looks(page: SimpleNamespace, engine: DemoEngine) -> None:
    """The status, the before/after view, its download, and the looks and LUTs box."""
    page.status = gr.HTML("", elem_id="status")
    page.result = gr.ImageSlider(
        label="Before / after", format="png", elem_id="result", interactive=False
    )
    page.download = gr.DownloadButton(
        "Download the result (PNG)", elem_id="download", visible=False
    )
    with gr.Accordion("Looks and 3D LUTs (Fast mode)", open=False, visible=engine.fast is not None):
        gr.Markdown(
            "Save the style photo as a look file and apply it later without the photo "
            "(with automatic or uploaded masks, per region, as the masks above say), "
            "or take a result's colours to Lightroom, Photoshop, Resolve or ffmpeg as a 3D "
            "LUT (`.cube`, one global colour mapping fitted to the result)."
        )
        page.look_in = gr.File(
            label="Apply a look file (.dpst) instead of the style photo",
            file_types=[".dpst"], elem_id="look-in",
        )  # fmt: skip
        with gr.Row():
            page.make_look = gr.Button("Save the style photo as a look", elem_id="make-look")
            page.make_lut = gr.Button("Fit a 3D LUT to the result", elem_id="make-lut")
        with gr.Row():
            page.look_out = gr.DownloadButton("Download the look (.dpst)", visible=False,
                                              elem_id="look-out")  # fmt: skip
            page.lut_out = gr.DownloadButton("Download the LUT (.cube)", visible=False,
                                             elem_id="lut-out")  # fmt: skip


def _wire(page: SimpleNamespace, cb: AppCallbacks, config: AppConfig) -> None:
    """The page's events."""
    p = page
    job_inputs = [p.content, p.style, p.mask_mode, p.content_mask, p.style_mask, p.c_editor,
                  p.s_editor]  # fmt: skip
    job_outputs = [p.result, p.download, p.status]
    # Each mode has its own concurrency group, so a Fast request never waits behind a
    # Quality job. Quality's one-at-a-time and its short queue are the engine's (Gradio
    # has one queue size for all events): the extra places here let a request over the
    # limit reach the engine and be refused at once, rather than wait unseen.
    fast = {"concurrency_limit": config.fast_concurrency, "concurrency_id": "fast"}
    p.run_fast.click(
        cb.fast, [*job_inputs, p.look_in, p.strength], job_outputs, preprocess=False,
        show_progress_on=p.result, **fast,
    )  # fmt: skip
    p.make_look.click(  # the page's masks give the look its regions, as dpst look's flags
        cb.look_file, job_inputs[1:], [p.look_out, p.status], preprocess=False, **fast
    )
    p.make_lut.click(cb.lut_file, p.content, [p.lut_out, p.status], preprocess=False, **fast)
    p.run_quality.click(
        cb.quality, [*job_inputs, p.size, p.iters, p.multiscale, p.post_mode], job_outputs,
        preprocess=False, concurrency_limit=config.quality_queue_size + 2,
        concurrency_id="quality", show_progress_on=p.result,
    )  # fmt: skip
    p.cancel.click(cb.cancel, None, p.status, queue=False)
    p.mode.change(
        cb.mode_changed,
        p.mode,
        [p.quality_box, p.strength, p.run_fast, p.run_quality, p.cancel],
        queue=False,
    )
    p.mask_mode.change(cb.mask_mode_changed, p.mask_mode, [p.upload_row, p.paint_row], queue=False)
    p.content.change(
        partial(cb.photo_changed, what="content photo"), [p.content, p.status],
        [p.c_editor, p.status], preprocess=False, show_progress="hidden",
    )  # fmt: skip
    p.style.change(
        partial(cb.photo_changed, what="style photo"), [p.style, p.status],
        [p.s_editor, p.status], preprocess=False, show_progress="hidden",
    )  # fmt: skip
    p.examples.select(
        cb.example_selected, None,
        [p.content, p.style, p.mask_mode, p.content_mask, p.style_mask, p.mask_box,
         p.upload_row, p.paint_row],
    )  # fmt: skip


def launch_options(engine: DemoEngine) -> dict[str, Any]:
    """``Blocks.launch`` arguments that keep the server to what the demo needs.

    Gradio serves only its own cache (uploads, results) here: no ``allowed_paths``. The model
    files are blocked too, should they sit in a folder Gradio could otherwise reach.
    """
    config = engine.config
    blocked = []
    if config.model_path:
        model = Path(config.model_path).expanduser().resolve()
        blocked.append(str(model))
        encoder = getattr(engine.fast, "metadata", {}).get("style_encoder_file")
        if encoder:
            blocked.append(str(model.parent / encoder))
    return {
        "max_file_size": f"{config.max_upload_mb}mb",
        "allowed_paths": [],
        "blocked_paths": blocked,
        "css": CSS,
        "show_error": False,
        "run_history": False,  # would keep results in the browser (or a bucket): not needed
        "footer_links": ["gradio", "settings"],
    }
