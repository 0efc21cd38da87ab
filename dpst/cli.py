"""The ``dpst`` command: one entry point, one subcommand per task.

Every subcommand is a module of the command layer, :mod:`dpst.commands`, exposing
``add_arguments(parser)`` and ``run(args) -> int``. Those modules import nothing heavy at
import time, so ``dpst --help`` stays fast (and torch-free) and nothing is parsed on import.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from dpst import __version__
from dpst.commands.exit_codes import EXIT_INTERRUPTED, EXIT_USER_ERROR
from dpst.commands.signals import forget_handled_interrupts
from dpst.errors import DpstError
from dpst.extras import install_hint

# name -> (module of dpst.commands, one-line help). Modules are imported only to build
# their parser.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the main job on a bundled example pair"),
    "stylize": ("stylize", "the reference optimiser (highest quality, slow)"),
    "segment": ("segment", "automatic semantic masks for a content/style pair"),
    "data": ("data", "pair manifests: build from a photo folder, check, samples"),
    "targets": ("targets", "the optimiser's output for every pair of a manifest"),
    "train": ("train", "train the feed-forward generator on a manifest"),
    "train-looks": (
        "train_looks",
        "train the one-pass generator on photos and looks (no pretrained network)",
    ),
    "eval": ("eval", "the generator against the optimiser, pair by pair"),
    "serve": ("serve", "the web demo (Gradio) on this machine"),
    "export": ("export", "the generator as ONNX for the torch-free runtime"),
    "fast": ("fast", "one pass of the exported model (ONNX Runtime, no torch)"),
    "look": ("look", "a style photo as a reusable look file; a result as a 3D LUT (.cube)"),
    "video": ("video", "a video restyled by the one-pass model or a LUT (no torch)"),
}


# Second forms of a command with a parser of their own: ``dpst look export ...`` is parsed by
# the parser named "look export", so that its --help is its own (and its positionals named).
# (command, word) -> (module, add_arguments, run); not listed in ``dpst --help`` (the first
# form's help names it).
SECOND_FORMS: dict[tuple[str, str], tuple[str, str, str]] = {
    ("look", "export"): ("look", "add_export_arguments", "run_export"),
}
SECOND_FORM_HELP = {
    ("look", "export"): "a result of the one-pass model as a 3D LUT (.cube) and Hald CLUT",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpst",
        description="Photorealistic style transfer (Deep Photo Style Transfer).",
    )
    parser.add_argument("--version", action="version", version=f"dpst {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(f"dpst.commands.{module_name}")
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    for (command, word), (module_name, add, run) in SECOND_FORMS.items():
        module = importlib.import_module(f"dpst.commands.{module_name}")
        help_text = SECOND_FORM_HELP[(command, word)]
        # No help= here: argparse would list the form among the commands.
        sub_parser = sub.add_parser(f"{command} {word}", description=help_text)
        getattr(module, add)(sub_parser)
        sub_parser.set_defaults(_run=getattr(module, run))
    return parser


def second_form(argv: list[str]) -> list[str]:
    """``["look", "export", ...]`` -> ``["look export", ...]``: the form's own parser."""
    if len(argv) >= 2 and (argv[0], argv[1]) in SECOND_FORMS:
        return [f"{argv[0]} {argv[1]}", *argv[2:]]
    return argv


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """User-facing warnings as one line, without the source location."""
    print(f"dpst: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(second_form(list(sys.argv[1:] if argv is None else argv)))
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return int(args._run(args) or 0)
    except DpstError as err:
        print(f"dpst {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ModuleNotFoundError as err:
        # A module of an extra that is not installed: say which extra, in one line.
        hint = install_hint(err, args.command)
        if hint is None:
            raise
        print(f"dpst {args.command}: error: {hint}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"dpst {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        forget_handled_interrupts()


if __name__ == "__main__":
    sys.exit(main())
