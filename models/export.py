"""ONNX export of the generator: three graphs, so that the runtime can cache style encodings
and run the full-resolution pass in tiles.

``export_onnx(model, "model.onnx")`` writes

- ``model.onnx``, the stylizer: ``content (B,3,H,W)``, ``content_masks (B,K,h,w)`` and the
  style code ``style_mean (B,K+1,C)``, ``style_std (B,K+1,C)``, ``style_colour_mean
  (B,K+1,3)``, ``style_colour_cov (B,K+1,3,3)`` -> ``output (B,3,H,W)``, ``grid
  (B,12,D,G,G)`` and ``label_maps (B,K+1,3,4)`` (each label's colour map, applied per pixel:
  :mod:`dpst.models.label_maps`; zeros for a model whose grid holds the whole map);
- ``model.style.onnx``, the style encoder: ``style (B,3,Hs,Ws)``, ``style_masks (B,K,hs,ws)``
  -> the style code;
- ``model.render.onnx``, the renderer: a tile ``content (B,3,h,w)`` of a larger image, a
  ``grid``, the tile's ``rows (h,)`` and ``cols (w,)`` as grid coordinates
  (:func:`dpst.models.bilateral_grid.cell_positions`), ``label_weights (B,L,lh,lw)`` and
  ``label_maps (B,L,3,4)`` (any L labels, e.g. those present) and the tile's ``label_rows (h,)``
  and ``label_cols (w,)`` on the weights' lattice -> ``output (B,3,h,w)``.

Running the encoder and then the stylizer is the generator's ``forward``; a style photo's
encoding (a few KB) can be kept and reused for every content, which is what
:class:`dpst.serve.runtime.stylizer.FastStylizer` does. The grid depends on the content only through
its resize to the working size, so the runtime feeds the stylizer that small image and renders
the full resolution tile by tile: memory for one tile instead of twelve coefficients per pixel.
Batch, height and width are dynamic; images are float32 in [0, 1], masks soft one-hot
(:mod:`label_masks`; all zeros, any size such as ``(B,K,1,1)``, for "no segmentation"). Inputs
and outputs are float32 in the fp16 export too (the casts are inside the graph), so callers
never change.

The three files carry the same metadata (ONNX ``metadata_props``, keys ``dpst_*``; strings as they
are, everything else JSON): format and format version, dpst version, role, the model config,
``max_labels``, the label set (if the checkpoint has one), value ranges, precision, opset, the
mask size rule, and a ``model_id`` that pairs the files.

Exporter: torch's dynamo exporter (``torch.onnx.export(dynamo=True)``, needs ``onnxscript``).
It takes dynamic shapes as ``torch.export.Dim`` and keeps them symbolic through the whole
graph; the TorchScript exporter is deprecated in torch 2.x and traces shapes as constants
unless every size computation is written for it. Opset 18 is the minimum: the generator's
antialiased resize to the working size needs ``Resize`` with ``antialias`` (opset 18). The
slice uses the generator's ``"gather"`` method (same maths; ONNX Runtime's GridSample is slow).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dpst import __version__
from dpst.errors import InputError, first_line
from dpst.imageio import atomic_write
from dpst.models.bilateral_grid import cell_positions
from dpst.models.generator import Generator, StyleCode
from dpst.models.label_masks import UNLABELLED, masks_for_image
from dpst.models.onnx_format import (
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    RENDERER_INPUTS,
    RENDERER_OUTPUTS,
    ROLE_RENDERER,
    ROLE_STYLE_ENCODER,
    ROLE_STYLIZER,
    STYLE_CODE,
    STYLIZER_INPUTS,
    STYLIZER_OUTPUTS,
    digest_path_for,
    encode_metadata,
    renderer_path_for,
    style_encoder_path_for,
)

MIN_OPSET = 18  # Resize with antialias
DEFAULT_OPSET = 18
MAX_SIDE = 1 << 15  # the largest height or width the graphs declare
VALUE_RANGE = (0.0, 1.0)
# Parity of the exported graphs with PyTorch eager (float32), max abs difference in [0, 1].
PARITY_TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
# Parity inputs: odd, non-square content and a style of another shape.
PARITY_CONTENT_SIZE = (45, 67)
PARITY_STYLE_SIZE = (38, 29)
EXAMPLE_BATCH = 2


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote and how well it matches PyTorch."""

    stylizer_path: Path
    style_encoder_path: Path
    renderer_path: Path
    metadata: dict[str, Any]
    parity_max_abs_diff: float | None  # None when the parity check was skipped
    parity_tolerance: float

    @property
    def parity_ok(self) -> bool:
        return self.parity_max_abs_diff is not None and (
            self.parity_max_abs_diff <= self.parity_tolerance
        )


class _StyleEncoderGraph(nn.Module):
    """``Generator._encode_style`` with tensors in and out (what the exporter needs)."""

    def __init__(self, generator: Generator, dtype: torch.dtype) -> None:
        super().__init__()
        self.generator, self.dtype = generator, dtype

    def forward(self, style: torch.Tensor, style_masks: torch.Tensor):
        code = self.generator._encode_style(style.to(self.dtype), style_masks.to(self.dtype))
        return tuple(t.float() for t in code)


class _StylizerGraph(nn.Module):
    """``Generator._stylize`` on a style code given as two tensors."""

    def __init__(self, generator: Generator, dtype: torch.dtype) -> None:
        super().__init__()
        self.generator, self.dtype = generator, dtype

    def forward(self, content, content_masks, style_mean, style_std, style_colour_mean,
                style_colour_cov):  # fmt: skip
        # Named arguments, not *args: torch.export keys dynamic shapes by argument name.
        code = (style_mean, style_std, style_colour_mean, style_colour_cov)
        code = StyleCode(*(t.to(self.dtype) for t in code))
        generator = self.generator
        raw, (grid, maps) = generator._predict_and_render(
            content.to(self.dtype), content_masks.to(self.dtype), code
        )
        return generator._clamp(raw).float(), grid.float(), maps.float()


class _RendererGraph(nn.Module):
    """``Generator.render_tile``: a grid applied to a tile of the content."""

    def __init__(self, generator: Generator, dtype: torch.dtype) -> None:
        super().__init__()
        self.generator, self.dtype = generator, dtype

    def forward(self, content, grid, rows, cols, label_weights, label_maps, label_rows,
                label_cols):  # fmt: skip
        dtype = self.dtype
        out = self.generator.render_tile(
            *(t.to(dtype) for t in (content, grid, rows, cols)),
            *(t.to(dtype) for t in (label_maps, label_weights, label_rows, label_cols)),
        )
        return out.float()


def model_id(model: Generator, precision: str) -> str:
    """A short hash of config, weights and precision: pairs a stylizer with its encoder."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    digest.update(precision.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def build_metadata(
    model: Generator, role: str, precision: str, opset: int, label_set: list[str] | None
) -> dict[str, Any]:
    """The metadata stored in each exported file (before encoding as strings)."""
    config = model.config
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "version": __version__,
        "role": role,
        "model_id": model_id(model, precision),
        "config": config.to_dict(),
        "max_labels": config.max_labels,
        "label_set": label_set,
        "unlabelled": UNLABELLED,
        "mask_long_side": config.working_size,
        "input_range": list(VALUE_RANGE),
        "output_range": list(VALUE_RANGE),
        "precision": precision,
        "opset": opset,
        "exporter": f"torch.onnx dynamo (torch {torch.__version__})",
    }


def _dims(*names: str) -> dict[int, torch.export.Dim]:
    """Dynamic axes 0, 2, 3 (batch, height, width) named ``names``."""
    return {
        axis: torch.export.Dim(name, min=1, max=MAX_SIDE)
        for axis, name in zip((0, 2, 3), names, strict=True)
    }


@dataclass(frozen=True)
class _GraphSpec:
    """One graph to export: the module and its example arguments, its file, its named and
    dynamic inputs and outputs, and its metadata and doc string."""

    module: nn.Module
    args: tuple
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict
    metadata: dict
    doc: str


def _export_graph(spec: _GraphSpec, opset: int) -> None:
    """Export one graph to ``path`` (atomically), attach metadata, run the full checker."""
    import onnx

    path = spec.path
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and trace chatter
            torch.onnx.export(
                spec.module,
                spec.args,
                raw,
                dynamo=True,
                opset_version=opset,
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_shapes=spec.dynamic,
                verbose=False,
            )
        proto = onnx.load(raw)
        written = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        if written != opset:
            # The exporter falls back to its own opset when it cannot convert, with a log line.
            raise InputError(f"the exporter could not write opset {opset} (it wrote {written})")
        proto.doc_string = spec.doc
        del proto.metadata_props[:]
        for key, value in encode_metadata(spec.metadata).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto, full_check=True)
        data = proto.SerializeToString()
        atomic_write(path, lambda fh: fh.write(data))
        line = f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode()
        atomic_write(digest_path_for(path), lambda fh: fh.write(line))


def _check_opset(opset: int) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise InputError(
            f"--opset must be between {MIN_OPSET} (antialiased Resize) and {newest} (the newest "
            f"this onnx knows), got {opset}"
        )


def export_onnx(
    model: Generator,
    output: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    label_set: list[str] | None = None,
    check_parity: bool = True,
) -> ExportResult:
    """Export ``model`` as a stylizer (``output``), a style encoder and a renderer beside it.

    Args:
        model: the generator (not modified; a copy is exported).
        output: the stylizer's path, e.g. ``model.onnx``; the encoder goes to
            :func:`style_encoder_path_for` (``model.style.onnx``), the renderer to
            :func:`renderer_path_for` (``model.render.onnx``).
        opset: ONNX opset, at least 18.
        fp16: compute in float16 inside the graphs (inputs and outputs stay float32); meant
            for GPUs: on CPU ONNX Runtime runs it slower than float32.
        label_set: names of the labels the model was trained with, stored in the metadata.
        check_parity: compare ONNX Runtime with PyTorch eager on a small odd-sized pair.

    Raises:
        InputError: an opset outside [18, newest onnx opset], one the exporter cannot write,
            or one this onnxruntime cannot run (the parity check).
    """
    _check_opset(opset)
    precision = "fp16" if fp16 else "fp32"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    reference = copy.deepcopy(model).float().eval()
    metadata = build_metadata(reference, ROLE_STYLIZER, precision, opset, label_set)
    specs = _graph_specs(reference, torch.float16 if fp16 else torch.float32, output, metadata)
    for spec in specs:
        _export_graph(spec, opset)
    encoder_path, renderer_path = style_encoder_path_for(output), renderer_path_for(output)
    diff = parity(reference, output, encoder_path, renderer_path) if check_parity else None
    return ExportResult(
        output, encoder_path, renderer_path, metadata, diff, PARITY_TOLERANCE[precision]
    )


def _graph_specs(
    reference: Generator, dtype: torch.dtype, output: Path, metadata: dict
) -> list[_GraphSpec]:
    """The three graphs: style encoder, renderer, stylizer (in that order, each with example
    inputs of a batch of two: with one, torch.export specialises the batch axis to 1).
    ``metadata`` (the stylizer's) gains the names of its two companions."""
    exported = copy.deepcopy(reference).to(dtype)
    exported.slice_method = "gather"
    config = reference.config
    k = config.max_labels
    content, style, content_masks, style_masks = (
        t.expand(EXAMPLE_BATCH, -1, -1, -1).contiguous()
        for t in _parity_inputs(config.max_labels, config)
    )
    with torch.no_grad():
        code = reference.encode_style(style, style_masks)
        grid, maps = reference.predict(content, content_masks, code)
        weights = reference.label_weights(content_masks, content)
    encoder_path, renderer_path = style_encoder_path_for(output), renderer_path_for(output)
    encoder_meta = {**metadata, "role": ROLE_STYLE_ENCODER}
    metadata["style_encoder_file"] = encoder_path.name
    metadata["renderer_file"] = renderer_path.name
    io_doc = (
        f"dpst generator, {metadata['precision']}. Images float32 (B,3,H,W) in [0,1]; masks "
        f"float32 (B,{k},h,w) soft one-hot label masks (zeros: no segmentation); style code "
        f"(B,{k + 1},{sum(config.encoder_widths)}). "
    )
    batch = {0: torch.export.Dim("batch", min=1, max=MAX_SIDE)}
    tile_rows, tile_cols = _example_tile(content.shape[2:], grid.shape[3:])
    tile = content[:, :, tile_rows[0] : tile_rows[1], tile_cols[0] : tile_cols[1]]
    tile_height, tile_width = (
        torch.export.Dim(name, min=1, max=MAX_SIDE) for name in ("tile_height", "tile_width")
    )
    positions = _tile_positions(content.shape[2:], grid.shape[3:], tile_rows, tile_cols)
    label_positions = _tile_positions(content.shape[2:], weights.shape[2:], tile_rows, tile_cols)
    labels = torch.export.Dim("labels", min=1, max=MAX_SIDE)
    return [
        _GraphSpec(
            _StyleEncoderGraph(exported, dtype),
            (style, style_masks),
            encoder_path,
            ENCODER_INPUTS,
            ENCODER_OUTPUTS,
            {
                "style": _dims("batch", "style_height", "style_width"),
                "style_masks": _dims("batch", "style_mask_height", "style_mask_width"),
            },
            encoder_meta,
            io_doc + "Style encoder: run once per style photo, then the stylizer per content.",
        ),
        _GraphSpec(
            _RendererGraph(exported, dtype),
            (tile, grid, *positions, weights, maps, *label_positions),
            renderer_path,
            RENDERER_INPUTS,
            RENDERER_OUTPUTS,
            {
                "content": {0: batch[0], 2: tile_height, 3: tile_width},
                "grid": batch,
                "rows": {0: tile_height},
                "cols": {0: tile_width},
                "label_weights": _dims("batch", "label_height", "label_width") | {1: labels},
                "label_maps": {0: batch[0], 1: labels},
                "label_rows": {0: tile_height},
                "label_cols": {0: tile_width},
            },
            {**metadata, "role": ROLE_RENDERER},
            io_doc + f"Renderer: applies the grid and label maps that {output.name} outputs to "
            "a tile of the content; rows and cols are the tile's pixel centres in grid "
            "coordinates, label_rows and label_cols on the label weights' lattice.",
        ),
        _GraphSpec(
            _StylizerGraph(exported, dtype),
            (content, content_masks, *code),
            output,
            STYLIZER_INPUTS,
            STYLIZER_OUTPUTS,
            {
                "content": _dims("batch", "height", "width"),
                "content_masks": _dims("batch", "mask_height", "mask_width"),
                **{name: batch for name in STYLE_CODE},
            },
            metadata,
            io_doc + f"Stylizer: takes the style code from {encoder_path.name}.",
        ),
    ]


def _example_tile(size, cells) -> tuple[tuple[int, int], tuple[int, int]]:
    """An inner window of an image of ``size`` (rows and columns), away from every edge."""
    (height, width) = size
    return (height // 4, height // 4 + height // 3), (width // 5, width // 5 + width // 2)


def _tile_positions(size, cells, rows, cols) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid coordinates of a window's rows and columns in an image of ``size``."""
    like = torch.zeros(())
    return (
        cell_positions(*rows, size[0], int(cells[0]), like),
        cell_positions(*cols, size[1], int(cells[1]), like),
    )


def _parity_inputs(num_labels: int, config) -> tuple[torch.Tensor, ...]:
    """A seeded odd-sized pair with two labelled regions each (and unlabelled pixels)."""
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, *PARITY_CONTENT_SIZE, generator=gen)
    style = torch.rand(1, 3, *PARITY_STYLE_SIZE, generator=gen)
    masks = []
    for image in (content, style):
        height, width = image.shape[2:]
        labels = torch.zeros(1, height, width, dtype=torch.long)
        labels[:, height // 2 :] = min(1, num_labels - 1)
        labels[:, :, :2] = UNLABELLED
        # Masks coarser than their image, as the runtime gives them at large sizes: every
        # resize between the two lattices is then traced and checked.
        side = min(config.working_size, max(height, width) // 2)
        masks.append(masks_for_image(labels, image, num_labels, side))
    return content, style, masks[0], masks[1]


def parity(
    reference: Generator, stylizer_path: Path, encoder_path: Path, renderer_path: Path
) -> float:
    """Max abs difference between ONNX Runtime (CPU) and PyTorch eager on the parity pair:
    the stylizer's output, and the renderer on a tile against the same window of it."""
    import onnxruntime as ort

    content, style, content_masks, style_masks = _parity_inputs(
        reference.config.max_labels, reference.config
    )
    providers = ["CPUExecutionProvider"]
    try:
        encoder = ort.InferenceSession(str(encoder_path), providers=providers)
        stylizer = ort.InferenceSession(str(stylizer_path), providers=providers)
        renderer = ort.InferenceSession(str(renderer_path), providers=providers)
    except Exception as error:  # e.g. an opset newer than this onnxruntime
        raise InputError(
            f"the model was written but ONNX Runtime {ort.__version__} cannot load it for the "
            f"parity check ({first_line(error, 200)}); try a lower --opset"
        ) from None
    code = encoder.run(None, {"style": style.numpy(), "style_masks": style_masks.numpy()})
    feeds = {"content": content.numpy(), "content_masks": content_masks.numpy()}
    out, grid, maps = stylizer.run(None, {**feeds, **dict(zip(STYLE_CODE, code, strict=True))})
    weights = reference.label_weights(content_masks, content)
    rows, cols = _example_tile(content.shape[2:], grid.shape[3:])
    positions = _tile_positions(content.shape[2:], grid.shape[3:], rows, cols)
    label_positions = _tile_positions(content.shape[2:], weights.shape[2:], rows, cols)
    window = (slice(None), slice(None), slice(*rows), slice(*cols))
    tile_inputs = (content[window], grid, *positions, weights, maps, *label_positions)
    (tile,) = renderer.run(
        None, {name: np.asarray(t) for name, t in zip(RENDERER_INPUTS, tile_inputs, strict=True)}
    )
    with torch.no_grad():
        expected = reference(content, style, content_masks, style_masks).numpy()
    return max(float(np.abs(out - expected).max()), float(np.abs(tile - expected[window]).max()))


def label_set_from_extra(extra: dict[str, Any] | None) -> list[str] | None:
    """The label names a checkpoint's ``extra`` records (``label_set`` or ``labels``), if any."""
    if not isinstance(extra, dict):
        return None
    for key in ("label_set", "labels"):
        names = extra.get(key)
        if isinstance(names, list | tuple) and all(isinstance(n, str) for n in names):
            return list(names)
    return None


def export_checkpoint(
    checkpoint: str | os.PathLike, output: str | os.PathLike, **options: Any
) -> ExportResult:
    """Load a generator checkpoint and :func:`export_onnx` it (options passed through)."""
    from dpst.models.checkpoint import load_checkpoint

    model, extra = load_checkpoint(checkpoint)
    options.setdefault("label_set", label_set_from_extra(extra))
    return export_onnx(model, output, **options)
