"""``dpst serve``: the Gradio demo on this machine (``http://127.0.0.1:7860`` by default).

A thin layer over :func:`dpst.serve.app.page.build_app`; nothing heavy is imported until ``run``.
The flags resolve into :class:`dpst.serve.app.config.AppConfig` as every command's do.
Once serving, the console gets one line per request (mode, size, seconds, outcome).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

from dpst.commands import options
from dpst.commands.fast import add_model
from dpst.errors import InputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# flag dest -> AppConfig field
FLAGS = {
    "backbone": "backbone",
    "vgg_weights": "vgg_weights",
    "device": "device",
    "max_upload_mb": "max_upload_mb",
    "memory_budget": "memory_budget_mb",
    "queue_size": "queue_size",
    "quality_queue": "quality_queue_size",
    "fast_concurrency": "fast_concurrency",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, "Fast mode's model, a .onnx from dpst export")
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only)",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})"
    )
    p.add_argument(
        "--share", action="store_true",
        help="also open a public gradio.live link (no login: anyone with it can run jobs)",
    )  # fmt: skip
    options.add_backbone(p, "Quality mode's network (fetched when the server starts)")
    options.add_device(p, " (Quality mode)")
    p.add_argument(
        "--memory-budget",
        type=int,
        metavar="MB",
        help="memory the jobs may use at once (default: half of this machine's); the largest "
        "photo accepted follows from it",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        metavar="MP",
        help="largest image accepted (default: what --memory-budget allows for every Fast "
        "slot and one Quality job at once)",
    )
    p.add_argument("--max-upload-mb", type=int, metavar="MB", help="largest upload (25 MB)")
    p.add_argument("--queue-size", type=int, metavar="N", help="Fast requests that may wait (16)")
    p.add_argument(
        "--quality-queue",
        type=int,
        metavar="N",
        help="Quality jobs that may wait behind the running one; more are refused (2)",
    )
    p.add_argument("--fast-concurrency", type=int, metavar="N", help="Fast jobs at once (4)")
    options.add_automatic_masks(
        p, "auto", "auto (default): the page offers automatic masks, found as dpst fast finds "
        "them (the segmenter, its ONNX file fetched once when the server starts, else the "
        "weight-free regions, else one region); none: the page offers no automatic masks",
        "automatic masks",
    )  # fmt: skip


def _model_path(args: argparse.Namespace) -> str | None:

    if args.model:
        path = Path(args.model).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: no such model file (--model)")
        return str(path)
    try:
        from dpst.serve.runtime.stylizer import default_model_path
    except ImportError:
        return None
    found = default_model_path()
    return None if found is None else str(found)


MAX_PORT = 65535


def build_config(args: argparse.Namespace):
    """Defaults, then the flags: the resolved AppConfig."""

    from dpst.commands.resolve import resolve
    from dpst.serve.app.config import AppConfig

    given: dict = {"model_path": _model_path(args)}
    if args.max_megapixels is not None:
        given["max_pixels"] = int(args.max_megapixels * 1e6)
    config = resolve(AppConfig(), args, FLAGS, given=given)
    if args.masks == "none":
        return config
    # The segmenter's ONNX file may be fetched, as dpst fast fetches it: when the server starts
    # (run asks for automatic masks before serving), so a request never waits for it.
    segmenter = options.segmenter_config(args, device=config.device)
    return replace(config, segmenter=segmenter)


def _loopback(host: str) -> bool:
    """Whether ``host`` reaches this machine only; a name counts when all its addresses do."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False  # the bind will say what is wrong with it
    return bool(found) and all(ipaddress.ip_address(a[4][0]).is_loopback for a in found)


def exposure_warning(host: str, share: bool) -> str | None:
    """One line when the demo is reachable from other machines (it has no login), else None."""
    where = []
    if not _loopback(host):
        all_interfaces = host in ("0.0.0.0", "::", "")
        where.append(f"{host or '*'}{' (every network interface)' if all_interfaces else ''}")
    if share:
        where.append("a public gradio.live link (--share)")
    if not where:
        return None
    return (
        f"warning: listening on {' and '.join(where)} without a login: anyone who can reach "
        f"it can run jobs on this machine; the defaults (--host {DEFAULT_HOST}, no --share) "
        "keep it to this machine"
    )


def _log_requests():
    """Send the demo's per-request lines (and its errors) to the console; returns the undo
    (a caller in the same process, a test or a notebook, must not keep the handler)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s dpst serve: %(message)s", "%H:%M:%S"))
    logger = logging.getLogger("dpst.serve")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return undo


def run(args: argparse.Namespace) -> int:
    # Before gradio is imported (dpst.serve.app.page sets the same default, for other callers).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from dpst.serve.app.engine import DemoEngine
    from dpst.serve.app.page import build_app, launch_options

    if not 1 <= args.port <= MAX_PORT:  # else an OverflowError from the socket, late
        raise InputError(f"--port must be 1 to {MAX_PORT}, got {args.port}")
    config = build_config(args)
    engine = DemoEngine(config)
    say = lambda line: print(f"dpst serve: {line}", file=sys.stderr, flush=True)  # noqa: E731
    # The console is the operator's: each part with the details of why it is off (the page
    # says the same in words, without the server's paths).
    say(f"fast mode: {engine.fast.provider if engine.fast else engine.fast_off.console}")
    quality = engine.backbone_off.console if engine.backbone_off else (
        "random backbone (meaningless results)" if config.backbone == "random" else "VGG-19"
    )  # fmt: skip
    say(f"quality mode: {quality}")
    say(
        f"photos up to {config.pixel_limit / 1e6:.1f} MP ({config.fast_concurrency} Fast jobs "
        f"and one Quality job at once; --memory-budget, --max-megapixels)"
    )
    demo = build_app(config, engine)
    # A service manager stops us with SIGTERM: exit as on Ctrl-C, so the results folder
    # (removed at exit) does not stay behind.
    previous_sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    automatic = engine.automatic_available()
    if not automatic[0]:
        say(f"automatic masks: {automatic[1]}")
    else:  # the finder chosen now, as every front end chooses it, and why not the segmenter
        say(
            f"automatic masks: {engine.finder().title}"
            + (f"; {automatic[1]}" if automatic[1] else "")
        )
    warning = exposure_warning(args.host, args.share)
    if warning:
        say(warning)
    stop_logging = _log_requests()
    try:
        # Quiet: Gradio's own lines advise its Python API ("set `share=True` in `launch()`");
        # ours below name the flags. It prints the public link itself (--share).
        demo.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            quiet=True,
            prevent_thread_lock=True,
            **launch_options(engine),
        )
        say(f"running on {demo.local_url} (Ctrl-C stops it)")
        if not args.share:
            say("a public link for others to use: dpst serve --share")
        demo.block_thread()
    except OSError as err:
        # A port in use is a common slip; Gradio's message would advise its own Python API.
        raise InputError(
            f"cannot listen on {args.host}:{args.port} ({_bind_failure(err)}): "
            "choose another --port or --host"
        ) from None
    finally:
        stop_logging()
        signal.signal(signal.SIGTERM, previous_sigterm)
    return 0


def _bind_failure(err: OSError) -> str:
    if "empty port" in str(err):  # how Gradio says that binding failed
        return "the port is in use, or the address is not one of this machine's"
    return err.strerror or str(err)
