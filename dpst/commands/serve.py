"""``dpst serve``: the Gradio demo on this machine (``http://127.0.0.1:7860`` by default).

A thin layer over :func:`dpst.serve.app.build_app`; nothing heavy is imported until ``run``.
The flags resolve into :class:`dpst.serve.app_config.AppConfig` as every command's do.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from dpst.commands import options

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# flag dest -> AppConfig field
FLAGS = {
    "backbone": "backbone",
    "vgg_weights": "vgg_weights",
    "device": "device",
    "max_upload_mb": "max_upload_mb",
    "queue_size": "queue_size",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    options.add_backbone(p, "Quality mode's network (fetched when the server starts)")
    options.add_device(p, " (Quality mode)")
    p.add_argument("--max-megapixels", type=float, help="largest image accepted (25)")
    p.add_argument("--max-upload-mb", type=int, help="largest upload (25 MB)")
    p.add_argument("--queue-size", type=int, help="requests that may wait (8)")
    options.add_automatic_masks(
        p, "auto", "none: the page offers no automatic masks",
        "automatic masks (segmenter weights must be on disk)",
    )  # fmt: skip


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
    """Defaults, then the flags: the resolved AppConfig."""
    from dataclasses import replace

    from dpst.commands.resolve import resolve
    from dpst.serve.app_config import AppConfig

    given: dict = {"model_path": _model_path(args)}
    if args.max_megapixels is not None:
        given["max_pixels"] = int(args.max_megapixels * 1e6)
    config = resolve(AppConfig(), args, FLAGS, given=given)
    if args.masks == "none":
        return config
    # A request never waits for a download: the weights must already be on disk.
    segmenter = options.segmenter_config(args, device=config.device, allow_download=False)
    return replace(config, segmenter=segmenter)


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
