"""The exported model's contract, shared by the exporter and the torch-free runtime.

No torch here: :mod:`dpst.serve.runtime.stylizer` imports this module. See :mod:`dpst.models.export`
for what the three graphs compute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MODEL_FORMAT = "dpst-onnx"
# Bump when the graphs' inputs, outputs or metadata change incompatibly; the runtime reads
# files up to the version it was written for.
# Version 2: the style code gained the style's per-label colour statistics (the MKL base).
# Version 3: the stylizer also outputs its grid, and a third graph, the renderer, applies a
# grid to a tile of the content (the runtime's bounded-memory full-resolution pass).
# Version 4: label-exact rendering. The stylizer also outputs each label's colour map, and the
# renderer applies them per pixel from label weights read at the tile's positions on the
# weights' own lattice (any size; the runtime pools the label map to at most LABEL_LONG_SIDE).
MODEL_FORMAT_VERSION = 4
ROLE_STYLIZER = "stylizer"
ROLE_STYLE_ENCODER = "style_encoder"
ROLE_RENDERER = "renderer"
# The style code, in the order of dpst.models.generator.StyleCode's fields.
STYLE_CODE = ("style_mean", "style_std", "style_colour_mean", "style_colour_cov")
STYLIZER_INPUTS = ("content", "content_masks", *STYLE_CODE)
STYLIZER_OUTPUTS = ("output", "grid", "label_maps")
V3_STYLIZER_OUTPUTS = ("output", "grid")
LEGACY_STYLIZER_OUTPUTS = ("output",)  # format 2
# The renderer: a content tile, the grid, and the tile's rows and columns as grid coordinates.
V3_RENDERER_INPUTS = ("content", "grid", "rows", "cols")
# Format 4 adds the label weights and maps and the tile's positions on the weights' lattice.
RENDERER_INPUTS = (*V3_RENDERER_INPUTS, "label_weights", "label_maps", "label_rows", "label_cols")
# The long side of the lattice the runtime pools a content's label map to for the label weights
# (above it, a lattice cell spans several pixels and the feathering's radius, 8 cells, with
# it). 512: the weights and their feathering took 0.43 s of a 1080p pass at 1024 (2 labels).
LABEL_LONG_SIDE = 512
RENDERER_OUTPUTS = ("output",)
ENCODER_INPUTS = ("style", "style_masks")
ENCODER_OUTPUTS = STYLE_CODE
DIGEST_SUFFIX = ".sha256"
# Metadata keys are METADATA_PREFIX + name.
METADATA_PREFIX = "dpst_"
# Names every file must carry, with their types (the stylizer also names its encoder file).
REQUIRED_METADATA: dict[str, type] = {"config": dict, "max_labels": int, "model_id": str}


def digest_path_for(path: str | os.PathLike) -> Path:
    """The checksum written beside each graph: ``model.onnx`` -> ``model.onnx.sha256``, in
    ``sha256sum`` format, so ``sha256sum -c model.onnx.sha256`` checks it too."""
    path = Path(path)
    return path.with_name(path.name + DIGEST_SUFFIX)


def style_encoder_path_for(path: str | os.PathLike) -> Path:
    """The style encoder written beside a stylizer: ``model.onnx`` -> ``model.style.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.style{path.suffix or '.onnx'}")


def renderer_path_for(path: str | os.PathLike) -> Path:
    """The renderer written beside a stylizer: ``model.onnx`` -> ``model.render.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.render{path.suffix or '.onnx'}")


def encode_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """Prefixed string values: strings as they are (readable in Netron), the rest as JSON."""
    return {
        METADATA_PREFIX + key: value if isinstance(value, str) else json.dumps(value)
        for key, value in metadata.items()
    }


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """Inverse of :func:`encode_metadata`; keys without the prefix are ignored."""
    decoded = {}
    for key, text in props.items():
        if key.startswith(METADATA_PREFIX):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            decoded[key[len(METADATA_PREFIX) :]] = value
    return decoded
