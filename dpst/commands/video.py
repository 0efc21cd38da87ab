"""``dpst video IN STYLE -o OUT``: a video restyled by the one-pass model, torch-free.

The look comes from a style photo, a look file (``--look``, :mod:`dpst.serve.runtime.looks`) or a
3D LUT (``--lut``, applied instead of the model). Video uses no masks: one region.

A thin layer over :func:`dpst.serve.runtime.video.process_video` with
:class:`dpst.serve.runtime.video_frames.ModelFrames` (the grid smoothed over time), or
:class:`~dpst.serve.runtime.video_frames.LutFrames` with ``--lut``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dpst.commands.fast import add_model, add_strength, add_threads
from dpst.commands.resolve import one_pass_config
from dpst.constants import DEFAULT_STRENGTH
from dpst.errors import InputError

HELP_SMOOTHING = (
    "weight of the past in the moving average of the model's colour grid, in [0, 1) (default "
    "0.8: it forgets with a time constant of 5 frames); 0 stylises every frame on its own, "
    "which may flicker. The average restarts at a scene cut (see --scene-cut)"
)
HELP_CUT = (
    "a frame whose 256 px image differs from the previous one's by more than this mean "
    "absolute change (0..1; default 0.1) starts a new scene: the average restarts there, so a "
    "new shot never takes the last one's colours; 1 never restarts"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="VIDEO", help="the video to restyle (any format FFmpeg reads)")
    p.add_argument(
        "style", metavar="STYLE", nargs="?",
        help="the photo whose look to take (or --look, or --lut)",
    )  # fmt: skip
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="the video to write (.mp4, .mkv, .mov, .webm, ...; the container follows the "
        "extension); written to a hidden temporary file beside it and renamed at the end, "
        "which an error or Ctrl-C deletes",
    )
    p.add_argument(
        "--look",
        metavar="LOOK.dpst",
        help="a look from dpst look STYLE, instead of the style photo (made with the same model)",
    )
    p.add_argument(
        "--lut",
        metavar="LUT.cube",
        help="apply this 3D LUT to every frame instead of the model (no style photo)",
    )
    add_model(p)
    add_strength(p)
    p.add_argument(
        "--temporal-smoothing", type=float, default=0.8, metavar="WEIGHT", help=HELP_SMOOTHING
    )
    p.add_argument("--scene-cut", type=float, default=0.1, metavar="CHANGE", help=HELP_CUT)
    add_threads(
        p, "ONNX Runtime threads, and bands of each frame rendered at once, 1 to twice the cores"
    )


def _frames(args: argparse.Namespace):
    """The per-frame callable, every input checked (a bad LUT, style or model: one line)."""

    from dpst.serve.runtime.video_frames import LutFrames, ModelFrames, TemporalConfig

    given = [name for name, value in (("STYLE", args.style), ("--look", args.look),
                                      ("--lut", args.lut)) if value is not None]  # fmt: skip
    if len(given) != 1:
        raise InputError(
            "give one of STYLE (a photo), --look LOOK.dpst or --lut FILE.cube"
            + (f", not {' and '.join(given)}" if given else "")
        )
    if args.lut is not None:
        if args.strength != DEFAULT_STRENGTH:
            raise InputError(
                "--strength is for the model; a LUT is applied as it is (fit one at another "
                "strength with dpst look export --strength)"
            )
        return LutFrames(args.lut), f"the LUT {args.lut}"
    from dpst.commands.fast import open_stylizer

    config = TemporalConfig(args.temporal_smoothing, args.scene_cut)
    config.validate()
    if args.threads is None:
        # Measured at 1080p on 2 idle cores (bench.video): 2 threads 5.1 frames/s, 1 thread
        # 3.3; ONNX Runtime's threads sleep when idle, so decoding and encoding still run.
        args.threads = max(1, os.cpu_count() or 1)
    from dpst.imageio import read_image
    from dpst.serve.runtime.looks import read_look
    from dpst.serve.runtime.pipeline import style_code

    # A damaged look or an unreadable style costs one line before the model loads.
    look = read_look(args.look) if args.look is not None else None
    style = read_image(args.style) if look is None else None
    stylizer = open_stylizer(args)
    code = style_code(stylizer, style, look, args.look or "the look")
    return ModelFrames(stylizer, code, config, args.strength), stylizer.provider


def run(args: argparse.Namespace) -> int:

    from tqdm import tqdm

    from dpst.commands.outputs import (
        check_no_clash,
        check_not_a_folder,
        check_writable_folder,
        write_errors,
    )
    from dpst.commands.signals import termination_as_interrupt
    from dpst.serve.runtime.video import check_output_format, probe, process_video

    # The resolved values stand in for the flags: every helper below reads one value.
    config = one_pass_config(args)
    args.strength, args.threads = config.strength, config.threads
    check_not_a_folder(args.output)
    out = Path(args.output)
    check_output_format(out)
    check_writable_folder(out.parent)
    inputs = {"input video": args.input, "style photo": args.style, "--look": args.look,
              "--lut": args.lut, "--model": args.model}  # fmt: skip
    check_no_clash([out], inputs)
    info = probe(args.input)
    frames, runs_on = _frames(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=info.frames or None, unit="frame", disable=None, file=sys.stderr)
    with termination_as_interrupt() as received:
        try:
            with write_errors(out):
                report = process_video(args.input, out, frames, lambda n: bar.update(1))
        except KeyboardInterrupt:
            bar.close()
            print(f"dpst video: interrupted ({received.name()}): nothing written, the "
                  f"partial file deleted", file=sys.stderr)  # fmt: skip
            return received.exit_code()
        finally:
            bar.close()
    codec = (report.encoder if report.same_codec else
             f"{report.encoder} ({report.decoder} cannot be written here)")  # fmt: skip
    fps = report.frames / report.seconds if report.seconds else 0.0
    print(
        f"wrote {out} ({report.width}x{report.height}, {report.frames} frames at "
        f"{float(report.rate):g} fps, {codec}, {report.audio_streams} audio and "
        f"{report.subtitle_streams} subtitle stream(s) copied) "
        f"in {report.seconds:.1f} s ({fps:.2f} frames/s, {runs_on})"
    )
    if report.out_of_time:
        print(f"dpst video: warning: {report.out_of_time} frame(s) or packet(s) whose time went "
              "back (a damaged clip) left out", file=sys.stderr)  # fmt: skip
    if report.dropped_streams:
        print(f"dpst video: warning: not copied: {', '.join(report.dropped_streams)}",
              file=sys.stderr)  # fmt: skip
    return 0
