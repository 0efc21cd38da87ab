"""``dpst export CHECKPOINT -o model.onnx``: the generator as ONNX for the torch-free runtime.

A thin layer over :func:`dpst.models.export.export_onnx`; see that module for the three
files it writes and the metadata they carry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from dpst.commands.exit_codes import EXIT_PROBLEMS
from dpst.errors import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.models.onnx_format import renderer_path_for, style_encoder_path_for

    p.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="a generator checkpoint (dpst train writes them), a bundle folder, or 'bundled' "
        "(the model shipped in the package)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="MODEL.onnx",
        help=f"the stylizer; its style encoder and renderer are written beside it "
        f"({style_encoder_path_for('MODEL.onnx').name}, {renderer_path_for('MODEL.onnx').name})",
    )
    p.add_argument(
        "--bundle",
        metavar="DIR",
        help="instead of -o: write a model bundle into DIR (the weights as safetensors with "
        "a JSON config, and the ONNX files), as the package ships its model",
    )
    p.add_argument(
        "--opset", type=int, default=18, metavar="N", help="ONNX opset, at least 18 (default 18)"
    )
    p.add_argument(
        "--fp16",
        action="store_true",
        help="compute in float16 inside the graphs (for GPUs; inputs and outputs stay float32)",
    )
    p.add_argument(
        "--label-exact",
        action="store_true",
        help="re-derive a model trained with its labels' colour maps mixed into grid cells "
        "(before dpst 0.1's ONNX format 4) as a label-exact one: the same weights, the maps "
        "applied per pixel from the label weights",
    )


def _check_outputs(args: argparse.Namespace) -> None:
    """Before loading anything: the files to write are writable and none is the checkpoint."""

    from dpst.commands.outputs import check_no_clash, check_not_a_folder, check_writable_folder
    from dpst.models.bundle import CONFIG_FILE, STYLIZER_FILE, WEIGHTS_FILE
    from dpst.models.onnx_format import (
        digest_path_for,
        renderer_path_for,
        style_encoder_path_for,
    )

    if args.bundle is not None:
        folder = Path(args.bundle)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"--bundle {folder} is a file, not a folder")
        stylizer = folder / STYLIZER_FILE
        files = [folder / WEIGHTS_FILE, folder / CONFIG_FILE]
    else:
        check_not_a_folder(args.output)
        stylizer = Path(args.output)
        if stylizer.suffix.lower() != ".onnx":
            raise InputError(f"-o must name a .onnx file, got {args.output}")
        folder, files = stylizer.parent, []
    check_writable_folder(folder)
    graphs = [stylizer, style_encoder_path_for(stylizer), renderer_path_for(stylizer)]
    # Each graph's checksum beside it is written too (issue 25: every file a run writes).
    files += [*graphs, *map(digest_path_for, graphs)]
    check_no_clash(files, {"checkpoint": args.checkpoint})


def _load(source: str):
    """(generator, provenance, label set) from a checkpoint, a bundle or ``bundled``."""
    from dpst.models.bundle import BUNDLED, CONFIG_FILE, bundled_folder, is_bundle, load_bundle
    from dpst.models.checkpoint import load_checkpoint
    from dpst.models.export import label_set_from_extra

    folder = bundled_folder() if source == BUNDLED else Path(source)
    if is_bundle(folder):
        config_file = folder if folder.name == CONFIG_FILE else folder / CONFIG_FILE
        saved = json.loads(config_file.read_text())
        return load_bundle(folder), dict(saved.get("info") or {}), None
    model, extra = load_checkpoint(source)
    info = {"checkpoint": Path(source).name}
    if isinstance(extra, dict):  # a training run's: what trained it
        info.update({k: extra[k] for k in ("kind", "step", "config") if k in extra})
    return model, info, label_set_from_extra(extra)


def _label_exact(model):
    """The same weights as a label-exact generator (GeneratorConfig.label_exact)."""
    from dpst.models.generator import Generator

    if model.config.base != "mkl":
        raise InputError("--label-exact needs a model on the MKL base (its config's base)")
    exact = Generator(dataclasses.replace(model.config, label_exact=True)).eval()
    exact.load_state_dict(model.state_dict())
    return exact


def run(args: argparse.Namespace) -> int:

    from dpst.models.export import PARITY_CONTENT_SIZE, export_onnx

    if (args.output is None) == (args.bundle is None):
        raise InputError("give -o MODEL.onnx or --bundle DIR (one of them)")
    _check_outputs(args)
    model, info, label_set = _load(args.checkpoint)
    if args.label_exact and not model.config.label_exact:
        model = _label_exact(model)
        info["re_derived"] = "label-exact: dpst export --label-exact (same weights)"
    if args.bundle is not None:
        from dpst.models.bundle import save_bundle

        if args.fp16 or args.opset != 18:
            raise InputError("--bundle writes the shipped format: float32, opset 18")
        result = save_bundle(model, args.bundle, info)
    else:
        result = export_onnx(
            model, args.output, opset=args.opset, fp16=args.fp16, label_set=label_set
        )
    meta = result.metadata
    print(
        f"wrote {result.stylizer_path} (stylizer), {result.style_encoder_path} (style encoder) "
        f"and {result.renderer_path} (renderer)"
    )
    print(
        f"  {meta['precision']}, opset {meta['opset']}, max_labels {meta['max_labels']}, "
        f"labels {meta['label_set'] or 'unnamed'}, model id {meta['model_id']}"
    )
    height, width = PARITY_CONTENT_SIZE
    verdict = "ok" if result.parity_ok else "FAILED"
    print(
        f"parity with PyTorch eager (ONNX Runtime CPU, a {height}x{width} pair): "
        f"max abs diff {result.parity_max_abs_diff:.2e} "
        f"(tolerance {result.parity_tolerance:.0e}): {verdict}"
    )
    if not result.parity_ok:
        print("dpst export: error: the ONNX model does not match PyTorch", file=sys.stderr)
        return EXIT_PROBLEMS  # written, but not to be trusted
    return 0
