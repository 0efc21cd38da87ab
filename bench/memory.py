"""Peak memory of ``dpst fast``: one photo at 12, 24 and 50 megapixels, and a folder of photos.

    python -m bench.memory                              # 12, 24, 50 MP; 20 photos at 1080p
    python -m bench.memory --sizes 2 4 --folder-photos 4 --json out.json   # a quick check

Each measurement is one ``python -m dpst fast ... --masks none`` process, as a user runs it
(start-up, reading, the one pass, writing), and its peak resident memory is the kernel's
``ru_maxrss`` for that child alone (``os.wait4``). The photos are smooth 3:2 JPEGs (upscaled
noise, so the encoder and decoder do real work) written once into a temporary folder (or
``--workdir``, kept and reused); the style photo is 1024x683. The folder mode runs ``dpst fast
FOLDER STYLE --out-dir OUT`` on ``--folder-photos`` photos at ``--folder-size`` and reports
photos per second (wall time of the whole command, start-up included) and its peak.

Issue 18's target: ``dpst fast`` on a 50-megapixel photo under 2 GiB. The model is the one
bundled with dpst unless ``--model`` names another. Runs alone: the wall times grow with
anyone else's load on the machine, the peaks do not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import MIB, parse_named_size

DEFAULT_SIZES = (12.0, 24.0, 50.0)
TARGET_MP, TARGET_BYTES = 50.0, 2 * 1024**3
ASPECT = 1.5  # 3:2, a camera's
STYLE_SIZE = (1024, 683)
QUALITY = 92


def size_for(megapixels: float) -> tuple[int, int]:
    """``(width, height)`` of a 3:2 photo of about ``megapixels`` (50 -> 8660x5773)."""
    width = round(math.sqrt(megapixels * 1e6 * ASPECT))
    return width, round(width / ASPECT)


def smooth_photo(path: Path, width: int, height: int, seed: int) -> Path:
    """A smooth JPEG: coarse noise upscaled (bicubic), so the file is photo-like, not flat."""
    if path.is_file():
        with Image.open(path) as img:
            if img.size == (width, height):
                return path
    rng = np.random.default_rng(seed)
    coarse = (rng.random((12, 18, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, quality=QUALITY)
    return path


def measure(args: list[str], env: dict[str, str]) -> dict:
    """Run ``python -m dpst ARGS``; its exit code, wall seconds and peak resident bytes."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "dpst", *args], env=env, stdout=out,
                                stderr=err)  # fmt: skip
        # wait4: this child's own rusage (RUSAGE_CHILDREN would be the largest of all).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]
    return {
        "exit_code": proc.returncode,
        "wall_s": round(wall, 2),
        # Linux reports KiB (macOS bytes).
        "peak_bytes": usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
        "stderr_tail": tail[0] if tail else "",
    }


def bundled_model() -> str:
    from dpst import serve

    return str(Path(serve.__file__).parent / "bundled" / "model.onnx")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    p.add_argument("--sizes", nargs="*", type=float, default=list(DEFAULT_SIZES),
                   metavar="MP", help="megapixels of the one-photo runs (12 24 50)")  # fmt: skip
    p.add_argument(
        "--folder-photos", type=int, default=20, help="photos in the folder run (20; 0: none)"
    )
    p.add_argument("--folder-size", type=parse_named_size, default="1080p",
                   help="their size: 1080p, 4k or WxH (1080p)")  # fmt: skip
    p.add_argument("--model", help="the stylizer .onnx (default: the bundled model)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads (dpst fast --threads)")
    p.add_argument("--workdir", type=Path, help="keep the generated photos here and reuse them")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = {**os.environ, "DPST_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    common = ["--masks", "none", "--model", args.model or bundled_model()]
    if args.threads:
        common += ["--threads", str(args.threads)]
    with tempfile.TemporaryDirectory(prefix="dpst-memory-") as scratch:
        work = args.workdir or Path(scratch)
        out = Path(scratch) / "out"
        style = smooth_photo(work / "style.jpg", *STYLE_SIZE, seed=1)
        results: dict = {"photos": [], "folder": None, "model": common[3]}
        print(f"{'photo':>16} {'MP':>6} {'peak MiB':>9} {'wall s':>7}  exit")
        for mp in args.sizes:
            width, height = size_for(mp)
            photo = smooth_photo(work / f"photo_{width}x{height}.jpg", width, height, seed=2)
            run = measure(["fast", str(photo), str(style), "-o", str(out / "out.jpg"), *common],
                          env)  # fmt: skip
            run.update(megapixels=round(width * height / 1e6, 2), width=width, height=height)
            results["photos"].append(run)
            print(f"{width:>7}x{height:<8} {run['megapixels']:>6.1f} "
                  f"{run['peak_bytes'] / MIB:>9.0f} {run['wall_s']:>7.1f}  {run['exit_code']}"
                  + (f"  {run['stderr_tail']}" if run["exit_code"] else ""))  # fmt: skip
        if args.folder_photos > 0:
            width, height = args.folder_size
            folder = work / f"folder_{width}x{height}"
            for i in range(args.folder_photos):
                smooth_photo(folder / f"p{i:03d}.jpg", width, height, seed=100 + i)
            extra = sorted(folder.glob("p*.jpg"))[args.folder_photos :]
            for stale in extra:  # an earlier, larger --folder-photos in the same --workdir
                stale.unlink()
            run = measure(["fast", str(folder), str(style), "--out-dir", str(out / "folder"),
                           *common], env)  # fmt: skip
            run.update(photos=args.folder_photos, width=width, height=height,
                       photos_per_s=round(args.folder_photos / run["wall_s"], 3))  # fmt: skip
            results["folder"] = run
            print(
                f"folder of {run['photos']} photos at {width}x{height}: "
                f"{run['photos_per_s']:.2f} photos/s ({run['wall_s']:.1f} s in all, start-up "
                f"included), peak {run['peak_bytes'] / MIB:.0f} MiB, exit {run['exit_code']}"
            )
    target = [r for r in results["photos"] if r["megapixels"] >= TARGET_MP]
    if target:
        met = all(r["peak_bytes"] < TARGET_BYTES and r["exit_code"] == 0 for r in target)
        results["target_met"] = met
        print(f"target (50 MP under 2 GiB): {'met' if met else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    failed = [r for r in [*results["photos"], results["folder"]] if r and r["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
