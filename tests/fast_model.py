"""A tiny exported fast model for the demo's tests: a freshly initialised generator, saved as
a checkpoint and exported to ONNX as ``dpst export`` would (results are meaningless)."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_MAX_LABELS = 4


def tiny_onnx_model(folder: Path) -> Path:
    """Write ``folder/model.onnx`` (and its style encoder); skips when export is unavailable."""
    export = pytest.importorskip("dpst.models.export", reason="ONNX export is not available")
    from dpst.models.checkpoint import save_checkpoint
    from dpst.models.generator import Generator, GeneratorConfig

    config = GeneratorConfig(
        working_size=16,
        grid_size=4,
        luma_bins=4,
        max_labels=TINY_MAX_LABELS,
        encoder_widths=(4, 8),
        head_width=8,
        global_levels=1,
        guide_hidden=4,
    )
    checkpoint = folder / "tiny.pt"
    save_checkpoint(checkpoint, Generator(config))
    out = folder / "model.onnx"
    export.export_checkpoint(checkpoint, out, check_parity=False)
    return out


def shared_tiny_model(tmp_path_factory) -> Path:
    """:func:`tiny_onnx_model`, exported once per test session (export takes seconds)."""
    folder = tmp_path_factory.getbasetemp() / "dpst-tiny-onnx-model"
    model = folder / "model.onnx"
    if not model.is_file():
        folder.mkdir(exist_ok=True)
        tiny_onnx_model(folder)
    return model
