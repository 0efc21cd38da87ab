"""``dpst serve``: the Gradio demo on this machine (``http://127.0.0.1:7860`` by default).

A thin layer over :func:`dpst.serve.app.build_app`; nothing heavy is imported until ``run``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dpst.models.segmenter_config import add_segmenter_arguments

    p.add_argument(
        "--model",
        metavar="PATH",
        help="fast model (.onnx from dpst export; default: $DPST_MODEL or the cache)",
    )
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--share", action="store_true", help="also open a public Gradio link")
    p.add_argument(
        "--backbone",
        choices=("vgg19", "random"),
        default="vgg19",
        help="Quality mode's network: VGG-19 (the Caffe weights, fetched at start if missing) "
        "or random (tests; meaningless)",
    )
    p.add_argument(
        "--vgg-weights", metavar="PATH", help="VGG-19 weights file, or 'torchvision' by name"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (Quality mode)")
    p.add_argument("--max-megapixels", type=float, default=25.0, help="largest image accepted (25)")
    p.add_argument("--max-upload-mb", type=int, default=25, help="largest upload (25 MB)")
    p.add_argument("--queue-size", type=int, default=8, help="requests that may wait (8)")
    group = p.add_argument_group("automatic masks (segmenter weights must be on disk)")
    group.add_argument(
        "--masks",
        choices=("auto", "none"),
        default="auto",
        help="none: the page offers no automatic masks",
    )
    add_segmenter_arguments(group, device=False)


def _model_path(args: argparse.Namespace) -> str | None:
    from dpst.errors import InputError

    if args.model:
        path = Path(args.model).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: no such model file (--model)")
        return str(path)
    try:
        from dpst.serve.runtime import default_model_path
    except ImportError:
        return None
    found = default_model_path()
    return None if found is None else str(found)


def build_config(args: argparse.Namespace):
    from dataclasses import replace

    from dpst.models.segmenter_config import segmenter_config_from_args
    from dpst.serve.app_config import AppConfig

    segmenter = None
    if args.masks == "auto":
        # A request never waits for a download: the weights must already be on disk.
        segmenter = replace(
            segmenter_config_from_args(args), device=args.device, allow_download=False
        )
    return AppConfig(
        model_path=_model_path(args),
        backbone=args.backbone,
        vgg_weights=args.vgg_weights,
        segmenter=segmenter,
        device=args.device,
        max_upload_mb=args.max_upload_mb,
        max_pixels=int(args.max_megapixels * 1e6),
        queue_size=args.queue_size,
    )


def run(args: argparse.Namespace) -> int:
    from dpst.serve.app import build_app, launch_options
    from dpst.serve.app_engine import DemoEngine

    config = build_config(args)
    engine = DemoEngine(config)
    say = lambda line: print(f"dpst serve: {line}", file=sys.stderr, flush=True)  # noqa: E731
    say(f"fast mode: {engine.fast.provider if engine.fast else engine.fast_error}")
    quality = engine.backbone_error or (
        "random backbone (meaningless results)" if config.backbone == "random" else "VGG-19"
    )
    say(f"quality mode: {quality}")
    demo = build_app(config, engine)
    # A service manager stops us with SIGTERM: exit as on Ctrl-C, so the results folder
    # (removed at exit) does not stay behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    automatic = engine.automatic_available()
    say(f"automatic masks: {'available' if automatic[0] else automatic[1]}")
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        quiet=False,
        **launch_options(engine),
    )
    return 0
