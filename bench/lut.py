"""LUT fidelity (issue 17): the one-pass output against the content through its exported LUT.

    python -m bench.lut                                  # 512 px, 33 nodes, 1 thread
    python -m bench.lut --size 256 --pairs 1 2 3 --json out.json

For each pair of the shared examples (``$DPST_EXAMPLES``, see :mod:`bench.common`) with a
readable content and style photo: the bundled model (or ``--model``) stylises the content at
``--size`` px on the long side with a global look (no masks: one region, what a LUT can
hold), :func:`dpst.serve.runtime.look_export.export_lut` fits and writes the ``.cube``, and the file
is read back and applied by an independent implementation, Pillow's ``Color3DLUT`` through
pillow-lut (8-bit, trilinear). Reported per pair and on average: the mean CIEDE2000 between
the model's output and the content through Pillow's LUT (the target: at most 2.0), the same
with the project's own float LUT application (the fit error ``dpst look export`` reports),
and the fit's time. Unreadable photos (``style/tar23.png`` is broken) are skipped and listed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import EXAMPLE_COUNT, EXAMPLES
from dpst.errors import InputError

TARGET_DE2000 = 2.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.lut", description=__doc__)
    p.add_argument("--size", type=int, default=512, help="long side in px (default 512)")
    p.add_argument("--lut-size", type=int, default=33, help="LUT_3D_SIZE (default 33)")
    p.add_argument("--smoothness", type=float, default=None, help="the fit's smoothness")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default 1)")
    p.add_argument("--model", default=None, help="a stylizer .onnx (default: the bundled one)")
    p.add_argument("--pairs", type=int, nargs="+", default=None, help="example numbers")
    p.add_argument("--examples", type=Path, default=EXAMPLES)
    p.add_argument("--json", default=None, help="also write the results here")
    return p


def pillow_apply(cube: Path, image: np.ndarray) -> np.ndarray:
    """``image`` through the ``.cube`` file as Pillow applies it (8-bit in and out)."""
    from PIL import Image
    from pillow_lut import load_cube_file

    from dpst.imageio import to_uint8

    lut = load_cube_file(str(cube))
    result = Image.fromarray(to_uint8(image)).filter(lut)
    return np.asarray(result, dtype=np.float64) / 255.0


def measure_pair(stylizer, content, style, cube: Path, config) -> dict:
    from dpst.serve.runtime.look_export import ciede2000, export_lut

    output = stylizer.stylize(content, style)
    start = time.perf_counter()
    export = export_lut(content, output, cube, config)
    fit_s = time.perf_counter() - start
    independent = ciede2000(output, pillow_apply(cube, content))
    unchanged = ciede2000(output, content)
    return {
        "pillow_de2000": float(independent.mean()),
        "fit_de2000": export.mean_de2000,
        "fit_p95_de2000": export.p95_de2000,
        "content_de2000": float(unchanged.mean()),
        "fit_s": fit_s,
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    from dpst.imageio import read_image, resize_long_side
    from dpst.serve.runtime.lut_fit import LutFitConfig
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

    fit = LutFitConfig(size=args.lut_size)
    if args.smoothness is not None:
        fit = LutFitConfig(size=args.lut_size, smoothness=args.smoothness)
    stylizer = FastStylizer(args.model or BUNDLED_MODEL, threads=args.threads)
    results, skipped = {}, {}
    numbers = args.pairs or range(1, EXAMPLE_COUNT + 1)
    with tempfile.TemporaryDirectory(prefix="dpst-bench-lut-") as folder:
        for n in numbers:
            name = f"ex{n}"
            try:
                content = read_image(args.examples / "input" / f"in{n}.png")
                style = read_image(args.examples / "style" / f"tar{n}.png")
            except InputError as err:
                skipped[name] = str(err)
                print(f"{name}: skipped ({err})", flush=True)
                continue
            content = resize_long_side(content, args.size)
            style = resize_long_side(style, args.size)
            row = measure_pair(stylizer, content, style, Path(folder) / f"{name}.cube", fit)
            results[name] = row
            print(
                f"{name}: pillow {row['pillow_de2000']:.2f}  fit {row['fit_de2000']:.2f}  "
                f"(p95 {row['fit_p95_de2000']:.2f}, content {row['content_de2000']:.2f})  "
                f"fit {row['fit_s']:.1f} s",
                flush=True,
            )
    if not results:
        print(f"no readable example pairs under {args.examples}")
        return 1
    means = {
        key: statistics.mean(row[key] for row in results.values())
        for key in ("pillow_de2000", "fit_de2000", "content_de2000", "fit_s")
    }
    worst = max(results, key=lambda k: results[k]["pillow_de2000"])
    passed = means["pillow_de2000"] <= TARGET_DE2000
    print(
        f"mean over {len(results)} pairs: pillow {means['pillow_de2000']:.2f} (target <= "
        f"{TARGET_DE2000}: {'met' if passed else 'NOT met'}), fit {means['fit_de2000']:.2f}, "
        f"content {means['content_de2000']:.2f}, fit {means['fit_s']:.1f} s; worst {worst} "
        f"{results[worst]['pillow_de2000']:.2f}; {len(skipped)} skipped"
    )
    if args.json:
        report = {
            "size": args.size,
            "lut_size": args.lut_size,
            "fit": dataclasses.asdict(fit),
            "pairs": results,
            "mean": means,
            "skipped": skipped,
            "target_de2000": TARGET_DE2000,
        }
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
