"""The torch-free fast stylizer: the exported generator on ONNX Runtime (NumPy, Pillow, ORT).

Nothing on this module's import path imports torch (tested in a subprocess where importing
torch fails), so apps can ship it without PyTorch.

The model is three ONNX files written together by ``dpst export`` (:mod:`dpst.models.export`):

- ``model.onnx``, the stylizer: ``content (1,3,H,W)``, ``content_masks (1,K,h,w)`` and the
  style code (``STYLE_CODE``: per-label feature and colour statistics) -> ``output (1,3,H,W)``
  and its ``grid``;
- ``model.style.onnx`` (its name is in the stylizer's metadata), the style encoder:
  ``style (1,3,Hs,Ws)``, ``style_masks (1,K,hs,ws)`` -> the style code;
- ``model.render.onnx``, the renderer: the grid applied to a band of the content.

The stylizer runs on the content resized to its working size, and the renderer on bands of
rows (:mod:`dpst.serve.runtime.tiled_render`): memory stays bounded at any image size. Models of
format 2 (no renderer) run whole-image as before.

Splitting them is what lets the style encoding be cached: a style photo is encoded once and
its statistics are reused for every content (the Gradio demo, batch jobs over one style).
Images are float32 in [0, 1]; masks are soft one-hot label masks (see
:mod:`dpst.labels.pooled_masks`), all zeros for "no segmentation".

Usage::

    from dpst.serve.runtime.stylizer import FastStylizer, default_model_path
    stylizer = FastStylizer(default_model_path())     # sessions created once
    out = stylizer.stylize(content, style)            # (H,W,3) float32 in [0,1]
    out = stylizer.stylize(content, style, content_labels, style_labels)  # int (H,W), -1 = none
    out = stylizer.stylize(content, style, strength=0.5)  # half the look (0 to 2)

Errors: :class:`RuntimeModelError` for a missing, corrupt or incompatible model;
:class:`dpst.errors.InputError` for images or label maps of the wrong kind.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import sys
import threading
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dpst.errors import DpstError, InputError, first_line
from dpst.hashing import file_sha256
from dpst.labels.pooled_masks import masks_for_image
from dpst.models.onnx_format import (
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    LABEL_LONG_SIDE,
    LEGACY_STYLIZER_OUTPUTS,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    RENDERER_INPUTS,
    RENDERER_OUTPUTS,
    REQUIRED_METADATA,
    ROLE_RENDERER,
    ROLE_STYLE_ENCODER,
    ROLE_STYLIZER,
    STYLE_CODE,
    STYLIZER_INPUTS,
    STYLIZER_OUTPUTS,
    V3_RENDERER_INPUTS,
    V3_STYLIZER_OUTPUTS,
    decode_metadata,
    digest_path_for,
    renderer_path_for,
    style_encoder_path_for,
)
from dpst.serve.runtime import tiled_render
from dpst.serve.runtime.highlights import highlight_amount, highlight_tint, protect_highlights
from dpst.serve.runtime.post_filter import PostFilter, fitted_maps
from dpst.serve.runtime.render_plan import RenderPlan, blend_plan, label_weights
from dpst.serve.runtime.strength import DEFAULT_STRENGTH, blend_image, check_strength
from dpst.serve.runtime.threads import check_threads

LOG = logging.getLogger(__name__)

MODEL_ENV = "DPST_MODEL"
DEFAULT_MODEL_PATH = Path("~/.cache/dpst/model.onnx")
# The model shipped in the package (trained on photos and looks; see bundled/MODEL_CARD.md).
BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "bundled" / "model.onnx"
DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")
DEFAULT_CACHE_SIZE = 8  # style encodings kept (a few KB each)
# Images may exceed [0, 1] by this much from float round-off.
RANGE_SLACK = 1e-4
# Pixels of a band the post-filter carries to full resolution at once: its four neighbours'
# 15 channels are held per pixel (about 16 MB a band in float32).
CARRY_BAND_PIXELS = 1 << 16


class RuntimeModelError(DpstError):
    """The ONNX model is missing, unreadable, not a dpst model, or from an incompatible version."""


def default_model_path() -> Path | None:
    """The model to use when none is given: ``$DPST_MODEL``, else ``~/.cache/dpst/model.onnx``
    if it exists, else the model shipped in the package (:data:`BUNDLED_MODEL`).

    Returns None when nothing exists at all (a source checkout without the bundled files),
    so callers can say "no model". ``$DPST_MODEL`` naming a missing file is a
    RuntimeModelError naming it: the user chose that file, and a message of "no model" sent
    them looking elsewhere.
    """
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            what = "no such file" if not path.exists() else "not a file"
            raise RuntimeModelError(f"${MODEL_ENV} names {chosen}: {what}")
        return path
    for path in (DEFAULT_MODEL_PATH.expanduser(), BUNDLED_MODEL):
        if path.is_file():
            return path
    return None


def check_image(image: Any, name: str) -> np.ndarray:
    """An ``(H, W, 3)`` image (float in [0, 1], or uint8) as contiguous float32; else InputError."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} must be a NumPy array (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape) < 1:
        raise InputError(f"{name} must be an (H, W, 3) RGB array, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if not np.issubdtype(image.dtype, np.floating):
        raise InputError(f"{name} must be float in [0, 1] or uint8, got dtype {image.dtype}")
    low, high = float(image.min()), float(image.max())
    if not (low >= -RANGE_SLACK and high <= 1 + RANGE_SLACK):  # also false for NaN
        raise InputError(f"{name} values must be finite and in [0, 1], got [{low}, {high}]")
    return np.ascontiguousarray(image, dtype=np.float32)


def check_content(image: Any, name: str = "content") -> np.ndarray:
    """Like :func:`check_image`, but uint8 stays uint8 (a quarter of the memory): the tiled
    path converts one band at a time."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape) < 1:
            raise InputError(f"{name} must be an (H, W, 3) RGB array, got shape {image.shape}")
        return image
    return check_image(image, name)


def _planar(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (1, 3, H, W) contiguous float32."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None])


class FastStylizer:
    """The exported generator on ONNX Runtime, with a per-style-image cache of encodings.

    Args:
        model_path: the stylizer ``.onnx`` written by ``dpst export`` (its style encoder
            next to it).
        providers: ONNX Runtime execution providers in order of preference; default CUDA
            then CPU (only those this onnxruntime build has are requested).
        cache_size: style encodings kept, least recently used dropped first.
        threads: ONNX Runtime intra-op threads of the stylizer and encoder, and bands of the
            full resolution rendered at once (default: ONNX Runtime's choice; the cores).
        protect_highlights: keep clipped highlights bright and near-neutral (or the style's
            highlight tint) instead of the grid's rotated colour
            (:mod:`dpst.serve.runtime.highlights`; default on; off renders the model's grid
            alone, as before).
        post_filter: the paper's smooth-local-affine post-filter in its fast mode, fitted
            at a working size and carried to full resolution
            (:mod:`dpst.serve.runtime.post_filter`); default its :class:`PostFilter`
            settings; None renders the model's result as it is. Photos only: video renders
            its plans itself (:meth:`render`).

    Attributes:
        provider: the execution provider that runs the model (e.g. "CPUExecutionProvider").
        metadata: the model's metadata, parsed (``config``, ``max_labels``, ``label_set``,
            ``version`` (of dpst), ``format_version``, ``precision``, ``input_range``,
            ``output_range``, ...; see :mod:`dpst.models.export`).
        max_labels: K, the number of mask channels; labels must be in ``[-1, K)``.

    Raises:
        RuntimeModelError: missing, corrupt or incompatible model files.

    Thread-safe: ``stylize`` may be called from several threads at once.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        providers: list[str] | tuple[str, ...] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        threads: int | None = None,
        protect_highlights: bool = True,
        post_filter: PostFilter | None = PostFilter(),  # noqa: B008 (frozen: never mutated)
    ) -> None:
        threads = check_threads(threads, "threads")
        self.model_path = Path(model_path)
        self.protect_highlights = bool(protect_highlights)
        self.post_filter = post_filter
        self._cache: OrderedDict[bytes, tuple[np.ndarray, ...]] = OrderedDict()
        self._cache_size = max(0, int(cache_size))
        self._lock = threading.Lock()
        providers = choose_providers(list(providers or DEFAULT_PROVIDERS), _available_providers())
        self._unchecked = [] if check_digest(self.model_path) else [self.model_path.name]
        self._stylizer = _open_session(self.model_path, providers, threads)
        self.metadata = read_metadata(self._stylizer, self.model_path, ROLE_STYLIZER)
        version = self.metadata["format_version"]
        # Format 4 renders the labels' maps per pixel (label-exact); 3 has them in its grid.
        self._label_exact = version >= 4
        outputs = STYLIZER_OUTPUTS if self._label_exact else V3_STYLIZER_OUTPUTS
        outputs = outputs if version >= 3 else LEGACY_STYLIZER_OUTPUTS
        _check_io(self._stylizer, self.model_path, STYLIZER_INPUTS, outputs)
        encoder_path = find_style_encoder(self.model_path, self.metadata["style_encoder_file"])
        self._encoder = self._open_companion(
            encoder_path, ROLE_STYLE_ENCODER, ENCODER_INPUTS, ENCODER_OUTPUTS, providers, threads
        )
        self._renderer = None
        if version >= 3:
            renderer_path = _find_beside(
                self.model_path, self.metadata.get("renderer_file"), renderer_path_for
            )
            # One thread per run, several runs at once: bands rendered side by side on two
            # threads took 0.145 s at 1080p against 0.25 s for ONNX Runtime's own two
            # threads inside each band's small operators (bench: FastStylizer.render, idle).
            inputs = RENDERER_INPUTS if self._label_exact else V3_RENDERER_INPUTS
            self._renderer = self._open_companion(
                renderer_path, ROLE_RENDERER, inputs, RENDERER_OUTPUTS, providers, 1
            )
        if self._unchecked:
            # Said, not refused: models exported before checksums existed have none.
            warnings.warn(
                f"{self.model_path.parent}: no .sha256 beside {', '.join(self._unchecked)}, so "
                "the model could not be checked for damage (dpst export writes them)",
                stacklevel=2,
            )
        self._render_workers = max(1, int(threads or os.cpu_count() or 1))
        self._render_pool: ThreadPoolExecutor | None = None
        self.max_labels = int(self.metadata["max_labels"])
        self.working_size = int(self.metadata["config"]["working_size"])
        self.provider = self._stylizer.get_providers()[0]
        if self.provider != providers[0]:
            LOG.warning("%s could not start; running on %s", providers[0], self.provider)
        LOG.info("dpst fast model %s runs on %s", self.model_path, self.provider)

    def _open_companion(self, path: Path, role: str, inputs, outputs, providers, threads):
        """A graph exported with the stylizer: checked, opened, and of the same model."""
        if not check_digest(path):
            self._unchecked.append(path.name)
        session = _open_session(path, providers, threads)
        meta = read_metadata(session, path, role)
        _check_io(session, path, inputs, outputs)
        if meta.get("model_id") != self.metadata.get("model_id"):
            raise RuntimeModelError(
                f"{path} was not exported with {self.model_path} (model ids differ): "
                f"export both again with dpst export"
            )
        return session

    # -- public API ----------------------------------------------------------------------

    def encode_style(
        self, style: np.ndarray, style_labels: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """The style code, float32 arrays (read-only) named by ``STYLE_CODE``; cached.

        The cache key is a hash of the image's pixels and the label map, so a new array with
        the same content hits the cache.
        """
        style = check_image(style, "style")
        key = _style_key(style, style_labels)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        masks = masks_for_image(
            style_labels, style.shape[:2], self.max_labels, self.working_size, "style labels"
        )
        code = self._encoder.run(
            list(ENCODER_OUTPUTS), {"style": _planar(style), "style_masks": masks}
        )
        code = tuple(array.astype(np.float32, copy=False) for array in code)
        for array in code:
            array.flags.writeable = False  # shared by every later call with this style
        with self._lock:
            self._cache[key] = code
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return code

    def stylize(
        self,
        content: np.ndarray,
        style: np.ndarray,
        content_labels: np.ndarray | None = None,
        style_labels: np.ndarray | None = None,
        dtype: Any = np.float32,
        strength: float = DEFAULT_STRENGTH,
    ) -> np.ndarray:
        """Stylise ``content`` like ``style``: ``(H, W, 3)`` float32 in [0, 1] (or uint8).

        Args:
            content, style: ``(H, W, 3)`` RGB, float in [0, 1] (or uint8), any sizes. A uint8
                content is converted band by band, never whole.
            content_labels, style_labels: optional integer label maps ``(H, W)`` of their
                image's size, values in ``[-1, max_labels)`` (-1 = unlabelled); give both or
                neither. Label k of the content takes the style of label k of the style.
                Maps read from mask files go through
                :func:`dpst.labels.one_pass.prepare_one_pass` first.
            dtype: ``np.float32`` (default) or ``np.uint8`` (rounded; a quarter of the
                memory of a large result).
            strength: how much of the look, in [0, 2]: 0 gives the content, 1 the model's
                result (default), 2 twice its change. The grid is blended with the identity
                (:mod:`dpst.serve.runtime.strength`), so the result is ``content + strength * (raw -
                content)`` clamped to [0, 1], ``raw`` the model's unclamped result, then
                clipped highlights protected (:mod:`dpst.serve.runtime.highlights`, unless
                ``protect_highlights`` is off). A model without a renderer (format 2) clamps
                first and blends its output after, with no highlight protection.

        Raises:
            InputError: an image or label map of the wrong kind, size or range.
        """
        if (content_labels is None) != (style_labels is None):
            raise InputError("give label maps for both images or for neither")
        strength = check_strength(strength)
        content = check_content(content)
        code = self.encode_style(style, style_labels)
        return self.stylize_with_code(content, code, content_labels, dtype, strength)

    def stylize_with_code(
        self,
        content: np.ndarray,
        code: tuple[np.ndarray, ...],
        content_labels: np.ndarray | None = None,
        dtype: Any = np.float32,
        strength: float = DEFAULT_STRENGTH,
    ) -> np.ndarray:
        """Stylise ``content`` with a style code from :meth:`encode_style` (or a saved look,
        :mod:`dpst.serve.runtime.looks`), without the style photo: ``(H, W, 3)`` in [0, 1], float32
        or uint8 as ``dtype`` says, ``strength`` of the look in [0, 2] (see :meth:`stylize`).

        ``content_labels`` use the code's label numbering. Raises InputError for a code whose
        arrays do not fit this model (a code saved from another model).
        """
        strength = check_strength(strength)
        content = check_content(content)
        dtype = _output_dtype(dtype)
        if self._renderer is None:  # a format-2 model: the whole image in one graph
            content = check_image(content, "content")
            out = self._stylize_whole(content, code, content_labels)
            out = blend_image(content, out, strength)  # its output is clamped already
            return out if dtype == np.float32 else np.rint(out * 255).astype(np.uint8)
        plan = blend_plan(self.plan(content, code, content_labels), strength)
        tint = self.highlight_tint(code, strength)
        if self.post_filter is None:
            return self.render(content, plan, dtype, highlights=tint)
        return self._render_filtered(content, plan, dtype, tint, strength)

    def _render_filtered(self, content, plan: RenderPlan, dtype, tint, strength) -> np.ndarray:
        """The plan rendered at the post-filter's working size, fitted and smoothed there, and
        carried to the full resolution band by band (:mod:`dpst.serve.runtime.post_filter`):
        the model itself never renders the full resolution."""
        height, width = content.shape[:2]
        scale = min(1.0, self.post_filter.side / max(height, width))
        small_size = max(1, round(height * scale)), max(1, round(width * scale))
        small = tiled_render.resized(content, *small_size)[0].transpose(1, 2, 0)
        result = self.render(small, plan, np.float32, highlights=tint)
        maps = fitted_maps(small, result, height, width, self.post_filter, strength, self._in_bands)
        out = np.empty((height, width, 3), dtype=_output_dtype(dtype))

        def carry(rows: slice) -> None:
            colour = _planar(tiled_render.as_float(content[rows]))
            tiled_render.store(out, rows, maps.band(rows, colour[0])[None])

        self._in_bands(list(tiled_render.row_bands(height, width, CARRY_BAND_PIXELS)), carry)
        return out

    def highlight_tint(self, code: tuple[np.ndarray, ...], strength: float = DEFAULT_STRENGTH):
        """The tint :meth:`render` gives clipped highlights for a style code at ``strength``
        (:func:`dpst.serve.runtime.highlights.highlight_tint`, from the style's whole-image colour
        statistics), or None when highlight protection is off (``protect_highlights``)."""
        if not self.protect_highlights:
            return None
        # The last label is the whole style photo's (the code's global entry).
        mean = code[STYLE_CODE.index("style_colour_mean")][0, -1]
        cov = code[STYLE_CODE.index("style_colour_cov")][0, -1]
        return highlight_tint(mean, cov, check_strength(strength))

    def plan(
        self,
        content: np.ndarray,
        code: tuple[np.ndarray, ...],
        content_labels: np.ndarray | None = None,
    ) -> RenderPlan:
        """What the model predicts for ``content`` (uint8 or float ``(H, W, 3)``) and a style
        code: a :class:`~dpst.serve.runtime.render_plan.RenderPlan` (the grid, and for a
        label-exact model the labels' maps and weights), which :meth:`render` applies. Video
        smooths these over time."""
        if self._renderer is None:
            raise RuntimeModelError(
                f"{self.model_path} has no renderer (dpst ONNX format "
                f"{self.metadata['format_version']}): export the model again with dpst export"
            )
        content = check_content(content)
        self._check_code(code)
        feeds = {
            "content": tiled_render.working_image(content, self.working_size),
            "content_masks": self._content_masks(content, content_labels),
        }
        feeds.update(zip(STYLE_CODE, code, strict=True))
        if not self._label_exact:
            (grid,) = self._stylizer.run(["grid"], feeds)
            return RenderPlan(grid)
        grid, maps = self._stylizer.run(["grid", "label_maps"], feeds)
        weights, channels = label_weights(content_labels, content, self.max_labels, LABEL_LONG_SIDE)
        return RenderPlan(grid, np.ascontiguousarray(maps[:, channels]), weights)

    def render(
        self,
        content: np.ndarray,
        plan: RenderPlan,
        dtype: Any = np.float32,
        highlights: np.ndarray | None = None,
    ):
        """Apply a plan from :meth:`plan` to ``content`` ``(H, W, 3)``, one band of rows at a
        time: ``(H, W, 3)`` in [0, 1], float32 or uint8 (``dtype``).

        ``highlights``: a tint from :meth:`highlight_tint`; each band's clipped highlights are
        then kept bright and near that tint
        (:func:`dpst.serve.runtime.highlights.protect_highlights`). None renders the grid
        alone."""
        content = check_content(content)
        if self._renderer is None:
            raise RuntimeModelError(f"{self.model_path} has no renderer: export it again")
        height, width = content.shape[:2]
        grid = np.ascontiguousarray(plan.grid, dtype=np.float32)
        out = np.empty((height, width, 3), dtype=_output_dtype(dtype))
        cols = tiled_render.cell_positions(0, width, width, grid.shape[4])
        labels = {}
        if self._label_exact:
            weights = plan.label_weights
            if weights is None or plan.label_maps is None:  # its grid is a residual alone
                raise InputError("this model renders a plan with its label maps and weights "
                                 "(FastStylizer.plan), not a grid alone")  # fmt: skip
            labels = {
                "label_weights": np.ascontiguousarray(weights, dtype=np.float32),
                "label_maps": np.ascontiguousarray(plan.label_maps, dtype=np.float32),
                "label_cols": tiled_render.cell_positions(0, width, width, weights.shape[3]),
            }
        amount = 0.0 if highlights is None else highlight_amount(content)

        def render_band(rows: slice) -> None:
            y_pos = tiled_render.cell_positions(rows.start, rows.stop, height, grid.shape[3])
            feeds = {
                "content": _planar(tiled_render.as_float(content[rows])),
                "grid": grid,
                "rows": y_pos,
                "cols": cols,
            }
            if labels:
                lattice_rows = labels["label_weights"].shape[2]
                feeds.update(
                    labels,
                    label_rows=tiled_render.cell_positions(
                        rows.start, rows.stop, height, lattice_rows
                    ),
                )
            (band,) = self._renderer.run(list(RENDERER_OUTPUTS), feeds)
            if amount > 0:
                rgb = protect_highlights(
                    feeds["content"][0].transpose(1, 2, 0),
                    band[0].transpose(1, 2, 0),
                    highlights,
                    amount,
                )
                band = rgb.transpose(2, 0, 1)[None]
            tiled_render.store(out, rows, band)  # each worker its own rows

        self._in_bands(list(tiled_render.row_bands(height, width)), render_band)
        return out

    def _in_bands(self, bands: list[slice], work) -> None:
        """``work(rows)`` for every band, on up to ``threads`` threads (each its own bands)."""
        workers = min(self._render_workers, len(bands))
        if workers <= 1:
            for rows in bands:
                work(rows)
            return
        with self._lock:
            if self._render_pool is None:
                self._render_pool = ThreadPoolExecutor(self._render_workers, "dpst-render")

        def run(part: list[slice]) -> None:
            for rows in part:
                work(rows)

        parts = [bands[i::workers] for i in range(workers)]
        for done in [self._render_pool.submit(run, part) for part in parts]:
            done.result()  # re-raises a worker's error here

    def _content_masks(self, content: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        return masks_for_image(
            labels, content.shape[:2], self.max_labels, self.working_size, "content labels"
        )

    def _stylize_whole(self, content, code, content_labels) -> np.ndarray:
        self._check_code(code)
        feeds = {
            "content": _planar(content),
            "content_masks": self._content_masks(content, content_labels),
        }
        feeds.update(zip(STYLE_CODE, code, strict=True))
        (out,) = self._stylizer.run(["output"], feeds)
        return np.ascontiguousarray(out[0].transpose(1, 2, 0), dtype=np.float32)

    def _check_code(self, code: tuple[np.ndarray, ...]) -> None:
        # A wrong shape would fail deep in ONNX Runtime with a multi-line message.
        if not isinstance(code, tuple | list) or len(code) != len(STYLE_CODE):
            raise InputError(f"a style code is {len(STYLE_CODE)} arrays named {STYLE_CODE}")
        expected = {i.name: i.shape for i in self._stylizer.get_inputs()}
        for name, array in zip(STYLE_CODE, code, strict=True):
            want = expected[name]
            fits = isinstance(array, np.ndarray) and array.ndim == len(want)
            fits = fits and array.dtype == np.float32 and array.shape[0] == 1
            fits = fits and all(
                not isinstance(w, int) or w == n
                for w, n in zip(want[1:], array.shape[1:], strict=True)
            )
            if not fits:
                got = array.shape if isinstance(array, np.ndarray) else type(array).__name__
                raise InputError(f"style code {name} {got} does not fit this model ({want})")

    def warm_up(self, height: int = 1080, width: int = 1920) -> None:
        """Run once at this size so the first real request does not pay for memory setup.

        ONNX Runtime's CPU arena grows to the largest image seen and is reused after; the
        first call at a new largest size costs about twice a later one (measured at 1080p and
        4K). The style cache is left as it was.
        """
        grey = np.full((height, width, 3), 128, dtype=np.uint8)
        masks = masks_for_image(None, grey.shape[:2], self.max_labels, self.working_size)
        code = self._encoder.run(
            list(ENCODER_OUTPUTS),
            {"style": _planar(tiled_render.as_float(grey[:64, :64])), "style_masks": masks},
        )
        self.stylize_with_code(grey, tuple(code), dtype=np.uint8)

    def clear_cache(self) -> None:
        """Forget every cached style encoding."""
        with self._lock:
            self._cache.clear()


def _style_key(style: np.ndarray, labels: np.ndarray | None) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(style.shape).encode())
    digest.update(style.tobytes())
    if labels is not None:
        labels = np.asarray(labels)
        digest.update(f"labels {labels.shape} {labels.dtype}".encode())
        digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.digest()


def _cuda_driver_present() -> bool:
    """Whether the NVIDIA driver library loads: without it the CUDA provider cannot start.

    onnxruntime-gpu lists CUDAExecutionProvider as available on machines without a GPU and
    then prints two error lines per session when it fails to start; asking the driver first
    keeps CPU-only machines quiet.
    """

    names = {"win32": ("nvcuda.dll",), "linux": ("libcuda.so.1", "libcuda.so")}
    for name in names.get(sys.platform, ()):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def _available_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeModelError(
            "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)"
        ) from None
    return ort.get_available_providers()


def choose_providers(wanted, available) -> list[str]:
    """The wanted execution providers this onnxruntime has (CPU always last as a fallback)."""
    chosen = [p for p in wanted if p in available]
    if "CUDAExecutionProvider" in chosen and not _cuda_driver_present():
        LOG.info("CUDAExecutionProvider skipped: no NVIDIA driver found")
        chosen.remove("CUDAExecutionProvider")
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _open_session(path: Path, providers: list[str], threads: int | None):
    """An ONNX Runtime session for ``path`` or a one-line RuntimeModelError."""
    import onnxruntime as ort

    # ORT_DISABLE_TELEMETRY (dpst.network) stops ONNX Runtime's uploads when it is set before
    # ORT starts; this also covers a process that imported onnxruntime before dpst.
    getattr(ort, "disable_telemetry_events", lambda: None)()
    if not path.is_file():
        raise RuntimeModelError(f"ONNX model not found: {path} (write one with dpst export)")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no per-node warnings; failures raise anyway
    # Memory patterns are planned per input shape, and every photo has its own: measured at
    # 4K, turning them off halves the peak memory (5.0 -> 2.8 GB) at the same speed.
    options.enable_mem_pattern = False
    if threads:
        options.intra_op_num_threads = int(threads)
    # Waiting threads sleep instead of spinning: on a busy machine spinning burnt the CPU
    # the other threads needed (1080p render 0.61 -> 0.30 s under load; no change when idle).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as error:  # ORT raises its own Fail/InvalidProtobuf/... types
        raise RuntimeModelError(
            f"{path}: not a loadable ONNX model ({first_line(error, 200)})"
        ) from None


def check_digest(path: Path) -> bool:
    """The file matches the checksum ``dpst export`` wrote beside it, when there is one
    (``model.onnx.sha256``); a damaged or altered model would otherwise run silently.
    False when there is none (nothing could be checked: the caller says so)."""
    sidecar = digest_path_for(path)
    if not path.is_file():
        return True  # the caller's "not found" is the message
    if not sidecar.is_file():
        return False
    try:
        expected = sidecar.read_text(encoding="utf-8").split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError):
        raise RuntimeModelError(f"{sidecar}: unreadable checksum file") from None
    if file_sha256(path) != expected:
        raise RuntimeModelError(
            f"{path} does not match its checksum ({sidecar.name}): the file is damaged or "
            f"was changed; restore it or export the model again"
        )
    return True


def find_style_encoder(model_path: Path, recorded: str) -> Path:
    """The style encoder: the name the stylizer's metadata records, else the one named after
    the stylizer (``foo.onnx`` -> ``foo.style.onnx``), so that renaming both files works."""
    return _find_beside(model_path, recorded, style_encoder_path_for)


def _find_beside(model_path: Path, recorded: str | None, named_after) -> Path:
    """A companion graph: the file the metadata names, else the one named after the stylizer."""
    beside = named_after(model_path)
    if not isinstance(recorded, str):
        return beside
    named = model_path.parent / recorded
    return named if named.is_file() or not beside.is_file() else beside


def _output_dtype(dtype: Any):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.uint8):
        raise InputError(f"output dtype must be float32 or uint8, got {dtype}")
    return dtype


def read_metadata(session, path: Path, role: str) -> dict[str, Any]:
    """The dpst metadata of a session's model, parsed and checked; RuntimeModelError if not."""
    props = dict(session.get_modelmeta().custom_metadata_map)
    meta = decode_metadata(props)
    if meta.get("format") != MODEL_FORMAT:
        raise RuntimeModelError(f"{path} is not a dpst ONNX model (no dpst metadata)")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > MODEL_FORMAT_VERSION:
        raise RuntimeModelError(
            f"{path} has dpst ONNX format {version!r} (written by dpst "
            f"{meta.get('version', '?')}); this runtime reads up to {MODEL_FORMAT_VERSION}: "
            f"upgrade dpst or export the model again"
        )
    if meta.get("role") != role:
        raise RuntimeModelError(
            f"{path} is the {meta.get('role')!r} model, expected the {role!r} one "
            f"(pass the file dpst export -o wrote)"
        )
    required = dict(REQUIRED_METADATA)
    if role == ROLE_STYLIZER:
        required["style_encoder_file"] = str
    missing = [k for k, kind in required.items() if not isinstance(meta.get(k), kind)]
    if missing:
        raise RuntimeModelError(f"{path}: corrupt dpst metadata (missing or invalid {missing})")
    return meta


def _check_io(session, path: Path, inputs: tuple, outputs: tuple) -> None:
    got_in = tuple(i.name for i in session.get_inputs())
    got_out = tuple(o.name for o in session.get_outputs())
    if set(got_in) != set(inputs) or set(got_out) != set(outputs):
        raise RuntimeModelError(
            f"{path} has inputs {got_in} and outputs {got_out}; expected {inputs} -> {outputs}"
        )
