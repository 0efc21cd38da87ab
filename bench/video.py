"""dpst video at 1080p: frames per second, and how steady the look is with and without the
grid's moving average.

    python -m bench.video --threads 2              # 50 frames of a 1080p25 pan over a photo
    python -m bench.video --frames 20 --json out.json

The clip is made here: a photo from ``../shared/data/photos`` (``--photo``; 640 px, so
upscaled) seen through a window that pans and zooms in slowly, at 1920x1080 and 25 fps, with
light seeded grain (2 levels) as a camera adds, H.264 at CRF 18 plus an AAC track (copied by
dpst video). The style is another photo of the folder. The clip is processed twice by
:func:`dpst.serve.runtime.video.process_video` with the bundled model: ``--temporal-smoothing`` 0.8
(the default) and 0 (each frame on its own).

Reported per run: frames per second (wall) and process CPU seconds per frame (on a shared
machine CPU / threads is closer to what an idle one gives), and the time inside the model
per frame on its thread (decoding, the resize to the model's 256 px and encoding run on
others). Stability, from the decoded
input and output: the mean absolute frame-to-frame change of the input (``in``), of the output
(``out``), the output's added change ``out - in`` and its ratio to ``in`` (issue 17's target:
at most 1.2, and below the run without smoothing), and the change of the stylisation itself,
``mean |d(out - in)|``, over ``in``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REPO_ROOT

PHOTOS = REPO_ROOT.parent / "shared" / "data" / "photos"
SIZE = (1920, 1080)
RATE = 25
GRAIN = 2.0  # standard deviation in levels of 0..255
ZOOM = 1.15  # the window's last size is 1 / ZOOM of its first
TARGET_FPS = 4.0
TARGET_ADDED = 1.2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.video", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--photo", type=Path, default=PHOTOS / "src10_0001.jpg")
    p.add_argument("--style", type=Path, default=PHOTOS / "src10_0006.jpg")
    p.add_argument("--smoothings", type=float, nargs="+", default=[0.8, 0.0])
    p.add_argument("--json", type=Path)
    return p


def make_clip(path: Path, photo: Path, frames: int) -> None:
    """A slow pan and zoom over ``photo`` at SIZE and RATE, H.264, with an AAC tone."""
    import av
    from PIL import Image

    source = Image.open(photo).convert("RGB")
    width, height = source.size
    aspect = SIZE[0] / SIZE[1]
    base_w = min(width, height * aspect)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.codec_context.options = {"crf": "18"}
        sound = out.add_stream("aac", rate=48000, layout="stereo")
        for index in range(frames):
            t = index / max(1, frames - 1)
            w = base_w / (1 + (ZOOM - 1) * t)
            h = w / aspect
            left, top = (width - w) * (0.2 + 0.6 * t), (height - h) * 0.5
            window = source.resize(SIZE, Image.Resampling.BICUBIC, (left, top, left + w, top + h))
            pixels = np.asarray(window, dtype=np.float32) + rng.normal(0, GRAIN, (*SIZE[::-1], 3))
            frame = av.VideoFrame.from_ndarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
            frame.pts = index
            out.mux(video.encode(frame))
        samples = 1024
        for start in range(0, 48000 * frames // RATE, samples):
            t = (start + np.arange(samples)) / 48000
            wave = np.repeat((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], 2, 0)
            chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
        out.mux(video.encode(None))


def stability(src: Path, dst: Path) -> dict[str, float]:
    """Mean absolute frame-to-frame changes (levels of 0..255), streamed two frames at a time."""
    import av

    sums = {"in": 0.0, "out": 0.0, "styling": 0.0}
    pairs = 0
    previous = None
    with av.open(str(src)) as a, av.open(str(dst)) as b:
        for x, y in zip(a.decode(video=0), b.decode(video=0), strict=True):
            x = x.to_ndarray(format="rgb24").astype(np.float32)
            y = y.to_ndarray(format="rgb24").astype(np.float32)
            if previous is not None:
                px, py = previous
                sums["in"] += float(np.abs(x - px).mean())
                sums["out"] += float(np.abs(y - py).mean())
                sums["styling"] += float(np.abs((y - x) - (py - px)).mean())
                pairs += 1
            previous = x, y
    means = {k: v / pairs for k, v in sums.items()}
    means["added"] = means["out"] - means["in"]
    means["added_over_in"] = means["added"] / means["in"]
    means["styling_over_in"] = means["styling"] / means["in"]
    return means


class _Timed:
    """Frames timed on the model's thread (``prepare``, on the decoding thread, is not)."""

    def __init__(self, frames) -> None:
        self.frames, self.seconds = frames, 0.0
        self.prepare = frames.prepare

    def __call__(self, frame, *prepared):
        start = time.perf_counter()
        result = self.frames(frame, *prepared)
        self.seconds += time.perf_counter() - start
        return result


def run_once(clip: Path, out: Path, stylizer, code, smoothing: float) -> dict:
    from dpst.serve.runtime.video import process_video
    from dpst.serve.runtime.video_frames import ModelFrames, TemporalConfig

    frames = ModelFrames(stylizer, code, TemporalConfig(smoothing=smoothing))
    timed = _Timed(frames)
    cpu = time.process_time()
    report = process_video(clip, out, timed)
    cpu = time.process_time() - cpu
    return {
        "smoothing": smoothing,
        "frames": report.frames,
        "fps": report.frames / report.seconds,
        "wall_s_per_frame": report.seconds / report.frames,
        "cpu_s_per_frame": cpu / report.frames,
        "model_s_per_frame": timed.seconds / report.frames,
        "scene_cuts": frames.smoothed.cuts,
        "encoder": report.encoder,
        **stability(clip, out),
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from dpst.imageio import read_image
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

    stylizer = FastStylizer(BUNDLED_MODEL, threads=args.threads)
    code = stylizer.encode_style(read_image(args.style))
    stylizer.warm_up(SIZE[1], SIZE[0])
    results = []
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        start = time.perf_counter()
        make_clip(clip, args.photo, args.frames)
        made = time.perf_counter() - start
        print(f"clip: {args.frames} frames {SIZE[0]}x{SIZE[1]} at {RATE} fps from "
              f"{args.photo.name} in {made:.1f} s", file=sys.stderr)  # fmt: skip
        for smoothing in args.smoothings:
            results.append(run_once(clip, Path(folder) / "out.mp4", stylizer, code, smoothing))
            row = results[-1]
            print(
                f"smoothing {smoothing:.2f}: {row['fps']:.2f} frames/s (target {TARGET_FPS}), "
                f"{row['cpu_s_per_frame']:.3f} CPU s/frame, model {row['model_s_per_frame']:.3f} "
                f"s/frame; change in {row['in']:.3f}, out {row['out']:.3f}, added/in "
                f"{row['added_over_in']:.3f} (target <= {TARGET_ADDED}), styling/in "
                f"{row['styling_over_in']:.3f}, cuts {row['scene_cuts']}"
            )
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
