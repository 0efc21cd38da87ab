"""The demo's work, without the page: models loaded once, masks, the fast and quality jobs.

:class:`DemoEngine` is created per app (never a module-level singleton) and holds what must
outlive one request: the ONNX session, the segmenter, the backbone's availability, the stop
flags of running quality jobs, and a private folder for results (and the examples' files).
Gradio is not imported here; ``serve/app/page.py`` turns its results into page updates.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dpst.constants import DEFAULT_STRENGTH
from dpst.errors import DpstError, InputError, first_line
from dpst.labels.finder import AutoMasks, Finder, choose_finder, pair_finder
from dpst.labels.one_pass import LABEL_WORK_SIDE
from dpst.labels.policy import LabelPolicy
from dpst.labels.regions import FROM_MASK_FILES, FROM_PAINTED, FROM_SEGMENTER, Regions, one_region
from dpst.serve.app import inputs
from dpst.serve.app.config import MASK_MODES, AppConfig
from dpst.serve.runtime.pipeline import run_look, run_pair

# Results kept in the engine's folder; older ones are deleted (Gradio keeps its own copies).
# Files kept in the results folder (a Fast request writes three: before, after, result); the
# oldest go first. Gradio copies what it serves into its own cache, so this only bounds disk.
RESULTS_KEPT = 128
# Without a request (tests, scripts) jobs share this key for their stop flag.
LOCAL_SESSION = "local"
# A waiting Quality job looks this often (seconds) whether it was cancelled or may start.
WAIT_POLL_S = 0.25


# What the page says when a part of the demo is unavailable: what is missing, in words, and
# what the server's operator does about it. The console gets the details (the exception, the
# server's paths, every flag), which a visitor can neither read nor act on.
class Unavailable(NamedTuple):
    """Why a part of the demo is off: ``console`` for the operator (details), ``reason`` and
    ``remedy`` for the page (``reason`` also goes into the lines of requests that need it)."""

    console: str
    reason: str
    remedy: str = ""

    @property
    def page(self) -> str:
        """The page's note: the reason as a sentence, then the remedy."""
        return f"{self.reason[:1].upper()}{self.reason[1:]}. {self.remedy}".strip()


NO_VGG = (
    "Quality mode is unavailable: this server has no VGG-19 weights",
    "To enable it, restart `dpst serve` where it can download them, or with `--vgg-weights FILE`.",
)
NO_MODEL = (
    "Fast mode is unavailable: this server has no fast model",
    "To enable it, restart `dpst serve` with `--model FILE` (a model from `dpst export`).",
)
BAD_MODEL = (
    "Fast mode is unavailable: this server's fast model could not be loaded",
    "To enable it, restart `dpst serve` with a model from `dpst export`, or without `--model`.",
)
NO_ONNX = (
    "Fast mode is unavailable: ONNX Runtime is not installed on this server",
    "To enable it, install onnxruntime and restart `dpst serve`.",
)
MASKS_OFF = ("automatic masks are unavailable: they are off on this server", "")
NO_TORCH = (
    "Quality mode is unavailable: this server has no PyTorch",
    "To enable it, install dpst's optimiser extra on the server and restart `dpst serve`.",
)


class QualityBusy(DpstError):
    """Quality mode's queue is full, or this page already has a Quality job."""


class JobCancelled(DpstError):
    """A Quality job was cancelled before the optimiser started: there is nothing to show."""


@dataclass
class JobResult:
    """A finished job: the image at the content's size, its PNG, timings and notes."""

    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    content: np.ndarray  # the content photo as read, for the before/after view
    path: str  # the PNG written for download
    seconds: dict[str, float]  # stage name -> seconds, "total" included
    backend: str  # one line: what computed it
    warnings: list[str] = field(default_factory=list)  # shown with a warning sign
    info: list[str] = field(default_factory=list)  # what was used (masks found, ...)
    report: dict = field(default_factory=dict)
    # Quality mode, cancelled: (iterations run, iterations planned); None when it ran through.
    stopped_at: tuple[int, int] | None = None

    @property
    def size(self) -> str:
        h, w = self.image.shape[:2]
        return f"{w}x{h}"


class Masks(NamedTuple):
    """The regions found (label maps at the photos' sizes, before the label policy, which
    the job runs once), and what to tell; ``automatic``: found by automatic masks, whose
    one-line ``note`` (why one region) the status names once the job knows the regions used."""

    regions: Regions
    info: list[str]
    warnings: list[str]
    automatic: bool = False
    note: str | None = None


class SavedLook(NamedTuple):
    """A look file written for download, its regions in words, and what to tell."""

    path: str
    regions: str
    warnings: list[str]


@dataclass
class MaskRequest:
    """Which masks to use and the page inputs they come from (Gradio payloads or paths)."""

    mode: str = "none"
    content_file: Any = None
    style_file: Any = None
    content_editor: Any = None
    style_editor: Any = None


ProgressFn = Callable[[float, str], None]


def _missing_extra(error: ModuleNotFoundError, command: str) -> str:
    """Why a mode is off when a module of an extra is missing (a bug's import error re-raised)."""
    from dpst.extras import install_hint

    hint = install_hint(error, command)
    if hint is None:
        raise error
    return hint


def _age_key(path: Path) -> float:
    """A file's modification time; 0 for one gone meanwhile (removed by someone else)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _automatic_line(masks: Masks, used: list[int] | None) -> list[str]:
    """The status line of automatic masks: the regions the job used (label ids after the
    label policy; None: one region), named, and their source in words, or why one region;
    [] for other mask modes (said already)."""
    if not masks.automatic:
        return []
    names = [masks.regions.name_of(label) for label in used or []]
    if names:
        return [f"automatic masks: {', '.join(names)} ({masks.regions.source})"]
    return [f"automatic masks: {masks.note or 'one region'}"]


def _upload(payload: Any, what: str) -> str:
    path = inputs.payload_path(payload)
    if path is None:
        raise InputError(f"no {what}: upload one")
    return path


class DemoEngine:
    """Models and jobs of one demo server (see the module docstring)."""

    def __init__(self, config: AppConfig, fast: Any = None) -> None:
        """``fast``: an already made stylizer (anything with FastStylizer's ``stylize``,
        ``provider`` and ``max_labels``) instead of loading ``config.model_path``."""
        self.config = config
        self._lock = threading.Lock()
        self._network_lock = threading.Lock()
        # Quality jobs: each admitted one's stop flag by session; the one running; the ones
        # waiting, first come first served. All under ``_gate``.
        self._gate = threading.Condition()
        self._stops: dict[str, threading.Event] = {}
        self._running: threading.Event | None = None
        self._waiting: deque[threading.Event] = deque()
        self._finder: Finder | None = None
        self._finder_note: str | None = None
        self._network: tuple[Any, dict] | None = None
        self.results_dir = Path(tempfile.mkdtemp(prefix="dpst-serve-"))
        # Each page's last Fast result, for "fit a LUT to it": kept here, never taken from a
        # path the page sends back.
        self._last_fast: dict[str, str] = {}
        self._files_lock = threading.Lock()
        weakref.finalize(self, shutil.rmtree, self.results_dir, ignore_errors=True)
        # Each part's Unavailable (console line, page words), None when it works.
        if fast is not None:
            self.fast, self.fast_off = fast, None
        else:
            self.fast, self.fast_off = self._load_fast(config.model_path)
        self.backbone, self.backbone_off = self._resolve_backbone()

    # -- what is available ---------------------------------------------------------------

    @staticmethod
    def _load_fast(model_path: str | None):
        """``(stylizer, None)``, or ``(None, Unavailable)``."""
        if model_path is None:
            return None, Unavailable(
                "no fast model was given (dpst serve --model PATH, or set DPST_MODEL)", *NO_MODEL
            )
        try:
            from dpst.serve.runtime.stylizer import FastStylizer
        except ImportError as err:
            return None, Unavailable(
                f"the ONNX runtime is not available ({first_line(err)})", *NO_ONNX
            )
        try:
            return FastStylizer(model_path), None
        except (DpstError, OSError, ValueError) as err:
            return None, Unavailable(
                f"the fast model could not be loaded: {first_line(err)}", *BAD_MODEL
            )

    def _resolve_backbone(self):
        """``(BackboneConfig, None)`` when Quality mode can run, else ``(None, Unavailable)``."""
        try:
            from dpst.optim_reference.vgg import BackboneConfig, resolve_weights
        except ModuleNotFoundError as err:  # Fast mode alone: the serve extra without torch
            return None, Unavailable(_missing_extra(err, "stylize"), *NO_TORCH)

        if self.config.backbone == "random":
            return BackboneConfig(name="random"), None
        # Resolved when the server starts, so a missing Caffe file is fetched now (unless
        # offline) and a request never waits for a download.
        try:
            resolve_weights(BackboneConfig(weights=self.config.vgg_weights))
        except DpstError as err:
            return None, Unavailable(first_line(err), *NO_VGG)
        return BackboneConfig(weights=self.config.vgg_weights, download=False), None

    def network(self) -> tuple[Any, dict]:
        """The backbone and its identity, loaded on first use and kept for every job."""
        from dpst.devices import resolve_device
        from dpst.optim_reference.vgg import load_backbone

        if self.backbone is None:
            raise InputError(self.backbone_off.page)
        with self._network_lock:
            if self._network is None:
                self._network = load_backbone(self.backbone, resolve_device(self.config.device))
            return self._network

    def auto_masks(self) -> AutoMasks | None:
        """What automatic masks may use on this server (None: they are off)."""
        if self.config.segmenter is None:
            return None
        return AutoMasks(self.config.segmenter, LABEL_WORK_SIDE)

    def finder(self) -> Finder:
        """Automatic masks' finder, chosen once as every front end chooses it
        (:func:`~dpst.labels.finder.choose_finder`: the segmenter, else the weight-free
        regions, else one region; ``dpst serve`` asks at start, so that a request never waits
        for the segmenter's download); InputError when automatic masks are off."""
        auto = self.auto_masks()
        if auto is None:
            raise InputError(MASKS_OFF[0])
        with self._lock:
            if self._finder is None:
                notes: list[str] = []
                self._finder = choose_finder("serve", auto, notes.append)
                self._finder_note = notes[0] if notes else None
            return self._finder

    def segmenter_finder(self) -> Finder | None:
        """The finder of segmenter groups, when automatic masks have the segmenter."""
        finder = self.finder()
        return finder if finder.source == FROM_SEGMENTER else None

    def automatic_available(self) -> tuple[bool, str | None]:
        """Whether automatic masks are offered, and what to say of them: why they are off,
        or why they go without the segmenter (None: the segmenter is used)."""
        try:
            self.finder()
        except InputError as err:
            return False, str(err)
        return True, self._finder_note

    def automatic_off(self) -> Unavailable | None:
        """Why automatic masks are off (console line, page words); None when they work (with
        the segmenter or without it: the weight-free regions)."""
        if self.auto_masks() is None:
            return Unavailable("off (dpst serve --masks none)", *MASKS_OFF)
        return None

    # -- inputs --------------------------------------------------------------------------

    def read_pair(self, content: Any, style: Any) -> tuple[np.ndarray, np.ndarray]:
        cap = self.config.pixel_limit
        return (
            inputs.read_photo(content, "content photo", cap),
            inputs.read_photo(style, "style photo", cap),
        )

    def masks(
        self, request: MaskRequest, content: np.ndarray, style: np.ndarray, work_side: int
    ) -> Masks:
        """Label maps at the photos' sizes for ``request`` (None, None: one region)."""
        cap, mode = self.config.pixel_limit, request.mode
        if mode not in MASK_MODES:
            raise InputError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
        if mode == "none":
            return Masks(one_region(), [], [])
        if mode == "upload":
            cl, c_warn = inputs.read_mask_upload(
                request.content_file, "content mask", content.shape[:2], cap
            )
            sl, s_warn = inputs.read_mask_upload(
                request.style_file, "style mask", style.shape[:2], cap
            )
            info = f"mask files: {inputs.describe_labels(cl, sl, colours=False)}"
            return Masks(Regions(cl, sl, FROM_MASK_FILES), [info], c_warn + s_warn)
        if mode == "paint":
            cl = inputs.painted_labels(
                inputs.read_editor_layers(request.content_editor, "content mask", cap),
                content.shape[:2],
            )
            sl = inputs.painted_labels(
                inputs.read_editor_layers(request.style_editor, "style mask", cap),
                style.shape[:2],
            )
            if cl is None and sl is None:
                return Masks(one_region(), [], ["nothing painted: one region"])
            cl = np.full(content.shape[:2], inputs.UNPAINTED) if cl is None else cl
            sl = np.full(style.shape[:2], inputs.UNPAINTED) if sl is None else sl
            info = f"painted masks: {inputs.describe_labels(cl, sl)}"
            return Masks(Regions(cl, sl, FROM_PAINTED), [info], [])
        return self._automatic(content, style, work_side)

    def _automatic(self, content: np.ndarray, style: np.ndarray, work_side: int) -> Masks:
        """Both photos' regions as every front end finds them (the segmenter's groups on
        copies of at most ``work_side`` px, else the weight-free regions, else one region);
        the job's label policy relates orphan groups first."""
        regions, note = pair_finder(self.finder().at_side(work_side), style)(content)
        return Masks(regions, [], [], automatic=True, note=note)

    # -- jobs ----------------------------------------------------------------------------

    def _new_file(self, kind: str, suffix: str) -> Path:
        """A fresh name in the results folder, the oldest files beyond RESULTS_KEPT removed.

        Requests run at once: the listing and the removal are one step under a lock (a file
        removed by one request between another's listing and its look at the file's age
        failed that request)."""
        with self._files_lock:
            old = sorted(self.results_dir.glob("dpst-*"), key=_age_key)
            for stale in old[: max(0, len(old) - RESULTS_KEPT + 1)]:
                stale.unlink(missing_ok=True)
        stamp = f"{time.strftime('%H%M%S')}-{os.urandom(6).hex()}"
        return self.results_dir / f"dpst-{kind}-{stamp}{suffix}"

    def _save(self, image: np.ndarray, kind: str) -> str:
        from dpst.imageio import write_image

        path = self._new_file(kind, ".png")
        write_image(path, image)
        return str(path)

    def save_preview(self, image: np.ndarray, kind: str) -> str:
        """An 8-bit preview as a PNG of its own name in the results folder."""
        from dpst.imageio import write_image

        path = self._new_file(kind, ".png")
        write_image(path, image)
        return str(path)

    def _need_fast(self) -> None:
        if self.fast is None:
            raise InputError(self.fast_off.page)

    def run_fast(
        self,
        content: Any,
        style: Any,
        masks: MaskRequest,
        look: Any = None,
        session: str = LOCAL_SESSION,
        strength: float = DEFAULT_STRENGTH,
    ) -> JobResult:
        """One pass of the ONNX model on the uploaded pair; with ``look`` (a ``.dpst`` file
        from :meth:`make_look` or ``dpst look``), that look instead of the style photo;
        ``strength`` of the look in [0, 2] (:mod:`dpst.serve.runtime.strength`)."""
        from dpst.serve.runtime.strength import check_strength

        self._need_fast()
        self._last_fast.pop(session, None)
        strength = check_strength(strength, "Strength")
        if look is not None:
            result = self._run_look(content, look, masks, strength)
        else:
            result = self._run_pair(content, style, masks, strength)
        if strength != DEFAULT_STRENGTH:
            result.info.append(f"strength {strength:g} (1 = the model's full look)")
        self._last_fast[session] = result.path
        return result

    def _run_pair(self, content: Any, style: Any, masks: MaskRequest, strength: float):
        t0 = time.perf_counter()
        content_img, style_img = self.read_pair(content, style)
        found = self.masks(masks, content_img, style_img, LABEL_WORK_SIDE)
        regions, info, warnings = found.regions, found.info, found.warnings
        t1 = time.perf_counter()
        # The one pass as dpst fast runs it: the same files, the same output (8-bit, shown and
        # saved as 8-bit anyway, at a quarter of the memory).
        policy = LabelPolicy(min_fraction=self.config.min_fraction)
        image, report = run_pair(self.fast, content_img, style_img, regions, strength, policy)
        t2 = time.perf_counter()
        info = info + _automatic_line(found, report.get("label_ids"))
        path = self._save(image, "fast")
        seconds = {"inputs": t1 - t0, "model": t2 - t1, "total": time.perf_counter() - t0}
        backend = f"Fast mode: ONNX Runtime ({self.fast.provider})"
        return JobResult(image, content_img, path, seconds, backend, warnings, info, report)

    def _run_look(self, content: Any, look: Any, masks: MaskRequest, strength: float):
        """A look file on the content: per region when the look and the page's mask mode
        allow it (:func:`dpst.serve.app.looks.content_regions`), else one region."""
        from dpst.serve.app.looks import content_regions
        from dpst.serve.runtime.looks import check_model, read_look

        t0 = time.perf_counter()
        saved = read_look(_upload(look, "look file"), name="the look file")
        check_model(saved, self.fast, "the look file")  # before segmenting: one line
        content_img = inputs.read_photo(content, "content photo", self.config.pixel_limit)
        found = content_regions(self, saved, masks, content_img)
        labels, info, warnings = found.labels, found.info, found.warnings
        t1 = time.perf_counter()
        image, report = run_look(self.fast, saved, content_img, labels, "the look file", strength,
                                 found.relation, names=found.names)  # fmt: skip
        t2 = time.perf_counter()
        path = self._save(image, "fast")
        seconds = {"inputs": t1 - t0, "model": t2 - t1, "total": time.perf_counter() - t0}
        backend = f"Fast mode with a look file: ONNX Runtime ({self.fast.provider})"
        used = "" if labels is not None else " (masks of this page unused)"
        info = [f"look of {saved.style_name or 'a style photo'}{used}", *info]
        return JobResult(image, content_img, path, seconds, backend, warnings, info, report)

    def make_look(self, style: Any, masks: MaskRequest | None = None) -> SavedLook:
        """The style photo as a look file (``.dpst``) to download, with the regions of the
        page's mask mode as ``dpst look`` records them
        (:func:`dpst.serve.app.looks.style_regions`); without ``masks``, one region."""
        from dpst.serve.app.looks import style_regions
        from dpst.serve.runtime.looks import describe_regions, encode_look, look_to_bytes

        self._need_fast()
        masks = masks or MaskRequest()
        if masks.mode not in MASK_MODES:
            raise InputError(f"mask mode must be one of {MASK_MODES}, got {masks.mode!r}")
        style_img = inputs.read_photo(style, "style photo", self.config.pixel_limit)
        name = Path(_upload(style, "style photo")).name
        found = style_regions(self, masks, style_img, self.fast.max_labels)
        saved = encode_look(
            self.fast, style_img, found.labels, name, found.group_names, found.label_source
        )
        warnings = found.warnings
        path = self._new_file("look", ".dpst")
        path.write_bytes(look_to_bytes(saved))
        return SavedLook(str(path), describe_regions(saved), warnings)

    def make_lut(self, content: Any, session: str = LOCAL_SESSION) -> tuple[str, str]:
        """A 3D LUT (``.cube``, 33 nodes) fitted from the content photo to this page's last
        Fast result, and a one-line summary of its fit error."""
        from dpst.imageio import read_image
        from dpst.serve.runtime.look_export import export_lut

        result_path = self._last_fast.get(session)
        if not result_path or not Path(result_path).is_file():
            raise InputError("stylise a photo in Fast mode first: the LUT is fitted to its result")
        content_img = inputs.read_photo(content, "content photo", self.config.pixel_limit)
        result = read_image(result_path)
        if result.shape != content_img.shape:
            raise InputError("the result shown is of another content photo: stylise it again")
        path = self._new_file("look", ".cube")
        fit = export_lut(content_img, result, path)
        return str(path), (
            f"3D LUT ({fit.lut.shape[0]} nodes): mean CIEDE2000 {fit.mean_de2000:.2f} (95th "
            f"percentile {fit.p95_de2000:.2f}) between the result and the LUT on the photo"
        )

    def quality_config(self, size: int, iters: int, multiscale: bool, post_mode: str):
        from dpst.optim_reference.postfilter import PostFilterConfig
        from dpst.optim_reference.stylize import StylizeConfig

        cfg = self.config
        if not 16 <= int(size) <= cfg.quality_max_size:
            raise InputError(f"size must be between 16 and {cfg.quality_max_size}, got {size}")
        if not 1 <= int(iters) <= cfg.quality_max_iters:
            raise InputError(
                f"iterations must be between 1 and {cfg.quality_max_iters}, got {iters}"
            )
        return StylizeConfig(
            size=int(size),
            iters=int(iters),
            multiscale=bool(multiscale),
            device=cfg.device,
            post=PostFilterConfig(mode=post_mode),
        )

    def run_quality(
        self,
        content: Any,
        style: Any,
        masks: MaskRequest,
        settings: dict[str, Any],
        progress: ProgressFn | None = None,
        session: str = LOCAL_SESSION,
    ) -> JobResult:
        """The reference optimiser; ``settings``: size, iters, multiscale, post_mode.

        One job runs at a time; up to ``config.quality_queue_size`` more wait their turn (and
        say so through ``progress``); beyond that, and for a second job of the same session,
        :class:`QualityBusy` at once. The job can be stopped from its start
        (:meth:`request_stop` with the same session): before the optimiser starts it ends
        with :class:`JobCancelled`; while it optimises it returns the result so far, as
        ``dpst stylize`` does on Ctrl-C (post-filtered, with ``stopped_at`` set).
        """
        stop = self._begin(session)
        try:
            self._wait_turn(stop, progress)
            return self._quality(content, style, masks, settings, progress, stop)
        finally:
            self._end(session, stop)

    def _quality(self, content, style, masks, settings, progress, stop) -> JobResult:
        network = self.network()  # first: it says why when Quality mode is unavailable
        from dpst.optim_reference.stylize import multiscale_schedule, stylize

        cfg = self.quality_config(**settings)
        t0 = time.perf_counter()
        content_img, style_img = self.read_pair(content, style)
        found = self.masks(masks, content_img, style_img, cfg.size)
        regions, info, warnings = found.regions, found.info, found.warnings
        cl, sl = regions.content, regions.style
        scale = min(1.0, cfg.size / max(content_img.shape[:2]))
        work_hw = tuple(max(1, round(s * scale)) for s in content_img.shape[:2])
        total = sum(n for _, _, n in multiscale_schedule(cfg, work_hw)) or 1
        done = 0

        def on_iteration(event) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(
                    min(done / total, 1.0),
                    f"stage {event.stage}, iteration {event.iteration}/{event.total}",
                )

        if stop.is_set():
            raise JobCancelled("cancelled before the optimiser started")
        result = stylize(
            content_img,
            style_img,
            cl,
            sl,
            cfg,
            self.backbone,
            callback=on_iteration,
            should_stop=stop.is_set,
            network=network,
            relation=regions.relation,
        )
        report = result.report
        path = self._save(result.image, "quality")
        seconds = {
            "optimiser": sum(s["seconds"] for s in report["stages"]),
            "post-filter": report["postfilter"]["seconds"],
            "total": time.perf_counter() - t0,
        }
        identity = report["backbone"]
        if identity.get("random"):
            net = "a random backbone standing in for VGG-19"
            warnings.insert(
                0,
                "random backbone: this server runs without VGG-19 weights (--backbone random), "
                "so the result shows the machinery, not the method",
            )
        else:
            net = f"VGG-19 ({identity.get('format', '?')} weights, sha256 {identity.get('sha256')})"
        iterations = sum(s["iterations"] for s in report["stages"])
        backend = f"Quality mode: reference optimiser, {net}, on {report['device']}"
        backend += f", {iterations} L-BFGS iterations at {work_hw[1]}x{work_hw[0]}"
        stopped_at = (iterations, total) if report.get("cancelled") else None
        labels = report["labels"]
        info = info + _automatic_line(
            found, None if labels.get("one_region") else labels["label_ids"]
        )
        return JobResult(
            result.image, content_img, path, seconds, backend, warnings, info, report, stopped_at
        )

    # -- stopping quality jobs -------------------------------------------------------------

    def _begin(self, session: str) -> threading.Event:
        """Admit a job into the queue, or refuse it at once."""
        cap = self.config.quality_queue_size
        with self._gate:
            if session in self._stops:
                raise QualityBusy(
                    "this page already has a Quality job running or waiting; "
                    "wait for it or cancel it first"
                )
            if len(self._stops) > cap:
                raise QualityBusy(
                    f"Quality mode is busy (one job running, {len(self._waiting)} waiting); "
                    "try again in a few minutes, or use Fast mode"
                )
            stop = threading.Event()
            self._stops[session] = stop
            self._waiting.append(stop)
            return stop

    def _wait_turn(self, stop: threading.Event, progress: ProgressFn | None) -> None:
        """Block until this job is first in line and none runs; say how many are ahead."""
        said = None
        while True:
            with self._gate:
                if stop.is_set():
                    raise JobCancelled("cancelled while waiting for its turn")
                if self._running is None and self._waiting[0] is stop:
                    self._waiting.popleft()
                    self._running = stop
                    return
                ahead = self._waiting.index(stop) + (self._running is not None)
            if progress is not None and ahead != said:
                progress(0.0, f"waiting: {ahead} Quality job{'s' * (ahead > 1)} ahead")
                said = ahead
            with self._gate:
                self._gate.wait(WAIT_POLL_S)

    def _end(self, session: str, stop: threading.Event) -> None:
        with self._gate:
            if self._running is stop:
                self._running = None
            if stop in self._waiting:
                self._waiting.remove(stop)
            if self._stops.get(session) is stop:
                del self._stops[session]
            self._gate.notify_all()

    def quality_jobs(self) -> tuple[int, int]:
        """(running, waiting) Quality jobs now."""
        with self._gate:
            return int(self._running is not None), len(self._waiting)

    def forget(self, session: str) -> None:
        """A page closed: its last result is no longer offered to it."""
        self._last_fast.pop(session, None)

    def request_stop(self, session: str = LOCAL_SESSION) -> bool:
        """Stop the session's Quality job: after its current iteration, or now if it waits."""
        with self._gate:
            stop = self._stops.get(session)
            if stop is None:
                return False
            stop.set()
            self._gate.notify_all()
            return True

    def example_paths(self, index: int) -> tuple[str, str, str, str]:
        """PNG files of example pair ``index`` (content, style, content mask, style mask),
        written once."""
        from dpst.serve.app.examples import example_files

        return example_files(self.results_dir / "examples", index, self.config.example_side)
