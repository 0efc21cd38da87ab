"""Export an ADE20K segmenter's PyTorch weights to the one ONNX file ``--masks auto`` runs.

For a model with no published ONNX build (``openmmlab/upernet-convnext-tiny``, MIT), or to
make the file from weights already on disk: load it with transformers (a Hugging Face name,
downloaded unless offline, or a local folder), export ``pixel_values -> logits`` once, with
the class names and preprocessing as metadata, beside it its SHA-256 (``NAME.sha256``,
``sha256sum`` format, checked on every load). Needs the ``seg`` extra; running the file does
not. ::

    python -m dpst.models.segmenter_export openmmlab/upernet-convnext-tiny
    python -m dpst.models.segmenter_export DIR -o model.onnx   # a save_pretrained folder

Without ``-o`` the file goes where ``--masks auto`` looks for it
(:func:`dpst.models.segmenter_download.segmenter_folder`), under its table entry's name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

from dpst.errors import DpstError, InputError
from dpst.hashing import file_sha256
from dpst.models.segmenter_download import segmenter_folder, spec_for
from dpst.models.segmenter_onnx import (
    META_ID2LABEL,
    META_INPUT_SIZE,
    META_MEAN,
    META_SOURCE,
    META_STD,
)

OPSET = 17


def default_output(source: str) -> Path:
    """Where ``--masks auto`` finds the export of ``source`` (a model of the table)."""
    spec = spec_for(source)
    if spec is None:
        raise InputError(f"{source} is not in dpst's segmenter table: pass -o FILE.onnx")
    return segmenter_folder() / spec.file_name


def export_segmenter_onnx(source: str, out: str | os.PathLike, opset: int = OPSET) -> Path:
    """Export ``source`` (a Hugging Face model name or a ``save_pretrained`` folder) to ``out``.

    Written to a temporary file beside ``out`` and renamed once complete, then ``out.sha256``.
    Returns ``out``.
    """
    import onnx
    import torch
    from transformers import AutoModelForSemanticSegmentation

    from dpst.models.segformer import _read_preprocessing

    out = Path(out)
    local = Path(source) if Path(source).is_dir() else None
    model = AutoModelForSemanticSegmentation.from_pretrained(source).eval()
    prep = _read_preprocessing(source, local, may_download=local is None, cache_dir=None)

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values=pixel_values).logits

    example = torch.zeros(1, 3, *prep.size)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        # SegFormer through the TorchScript exporter; other models, such
        # as UperNet, whose pooling pyramid (1, 2, 3 and 6 bins) only torch.export converts,
        # through torch.export.
        legacy = model.config.model_type == "segformer"
        with torch.no_grad():
            torch.onnx.export(
                Logits().eval(), (example,), str(tmp), input_names=["pixel_values"],
                output_names=["logits"], opset_version=opset if legacy else max(opset, 18),
                dynamo=not legacy, external_data=False,
                **({"dynamic_axes": {"pixel_values": {0: "batch"}, "logits": {0: "batch"}}}
                   if legacy else {}),
            )  # fmt: skip
        graph = onnx.load(str(tmp))
        id2label = {str(k): str(v) for k, v in model.config.id2label.items()}
        meta = {
            META_ID2LABEL: json.dumps(id2label),
            META_INPUT_SIZE: json.dumps(list(prep.size)),
            META_MEAN: json.dumps(list(prep.mean)),
            META_STD: json.dumps(list(prep.std)),
            META_SOURCE: str(source),
        }
        del graph.metadata_props[:]
        for key, value in meta.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    out.with_name(out.name + ".sha256").write_text(f"{file_sha256(out)}  {out.name}\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m dpst.models.segmenter_export", description=__doc__.splitlines()[0]
    )
    p.add_argument("source", help="Hugging Face ADE20K model name, or a save_pretrained folder")
    p.add_argument("-o", "--output", metavar="FILE.onnx", help="default: where --masks auto looks")
    p.add_argument("--opset", type=int, default=OPSET)
    args = p.parse_args(argv)
    try:
        out = args.output or default_output(args.source)
        path = export_segmenter_onnx(args.source, out, args.opset)
    except (DpstError, OSError) as err:
        print(f"segmenter_export: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, sha256 {file_sha256(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
