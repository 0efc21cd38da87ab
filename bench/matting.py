"""Matting Laplacian benchmark: pymatting's cf_laplacian against our sparse and matrix-free paths.

Run from the repository root: ``python -m bench.matting`` (``--help`` for options; for a
quick check ``--sizes 256x256 --skip-vgg --skip-4k``; on a machine shared with other
jobs add ``--omp-passive`` or ``--threads 1``). Every measurement runs in its own
subprocess, so that its peak memory can be read honestly: "peak MiB" is the growth of the
process's maximum resident set size (``getrusage`` ``ru_maxrss``) over its resident size
just before the measured work (after imports and after allocating the image and ``v``), for
the build and one product together. It counts everything the work touched (NumPy, SciPy,
torch's allocator), not only live tensors. Times are wall clock, medians: of
``--build-repeats`` builds (after a warm-up on a tiny image, so pymatting's numba
compilation is excluded) and of ``--repeats`` products after one warm-up. Images are
uniform noise (the cost does not depend on content), float32 for our paths as the
optimiser uses them, float64 for pymatting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from bench.common import MIB, REPO_ROOT, median_time, parse_size

DEFAULT_SIZES = ("256x256", "512x512", "700x466", "1024x1024", "2048x2048")
VGG_SIZES = ("512x512", "700x466")
UHD_SIZE = "3840x2160"
# torchvision's vgg19().features index of relu5_1; features[: RELU5_1_INDEX + 1] ends there.
RELU5_1_INDEX = 29
# Targets of issue 2.
TARGET_SHARE_OF_VGG = 0.03
TARGET_BUILD_SECONDS_700 = 0.5
TARGET_UHD_PEAK_BYTES = 2 * 1024**3


def _omp_policy(args: argparse.Namespace) -> str:
    return "PASSIVE" if args.omp_passive else os.environ.get("OMP_WAIT_POLICY", "default")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _size_list(text: str) -> list[str]:
    sizes = [part.strip() for part in text.split(",") if part.strip()]
    for size in sizes:
        parse_size(size)
    return sizes


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _timed_builds(build, repeats: int):
    """Median wall time of ``repeats`` builds, each alone in memory; returns it and the last."""
    times, built = [], None
    for _ in range(max(1, repeats)):
        built = None  # free the previous build first, so the peak is one build's
        start = time.perf_counter()
        built = build()
        times.append(time.perf_counter() - start)
    return statistics.median(times), built


def _work(task: str, h: int, w: int, repeats: int, build_repeats: int) -> dict:
    """One measurement, run inside a fresh subprocess; returns seconds and peak bytes."""
    import numpy as np
    import torch

    from dpst.optim_reference.matting import MattingLaplacian

    rng = np.random.default_rng(0)
    result: dict = {}
    if task == "pymatting":
        image = rng.random((h, w, 3))
        from pymatting import cf_laplacian

        cf_laplacian(np.random.default_rng(1).random((8, 8, 3)), 1e-7, 1)  # numba warm-up
        v = rng.random((h * w, 3))
        base = _rss_bytes()
        result["build"], matrix = _timed_builds(lambda: cf_laplacian(image, 1e-7, 1), build_repeats)
        result["product"] = median_time(lambda: matrix @ v, repeats)
    elif task in ("sparse", "matrix_free", "auto"):
        generator = torch.Generator().manual_seed(0)
        content = torch.rand(1, 3, h, w, generator=generator)
        v = torch.rand(1, 3, h, w, generator=generator)
        MattingLaplacian.build(torch.rand(1, 3, 8, 8), method=task)  # warm-up
        base = _rss_bytes()
        result["build"], op = _timed_builds(
            lambda: MattingLaplacian.build(content, method=task), build_repeats
        )
        result["method"] = op.method
        result["product"] = median_time(lambda: op.apply_no_grad(v), repeats)
        if task == "auto":
            # What an optimiser step pays: the energy and its gradient (one product).
            def energy_step():
                x = v.clone().requires_grad_(True)
                op.energy(x).sum().backward()

            result["energy_step"] = median_time(energy_step, repeats)
    elif task == "vgg":
        import torchvision

        net = torchvision.models.vgg19(weights=None).features[: RELU5_1_INDEX + 1].eval()
        for p in net.parameters():
            p.requires_grad_(False)
        x = torch.rand(1, 3, h, w, requires_grad=True)
        base = _rss_bytes()

        def step():
            x.grad = None
            net(x).square().sum().backward()

        result["fwd_bwd"] = median_time(step, max(1, repeats // 2))
    else:
        raise ValueError(f"unknown task {task!r}")
    result["peak_bytes"] = max(0, _peak_rss_bytes() - base)
    result["peak_rss_bytes"] = _peak_rss_bytes()
    return result


def measure(
    task: str, h: int, w: int, args: argparse.Namespace, repeats: int | None = None
) -> dict:
    """Run :func:`_work` in a fresh interpreter (so ``ru_maxrss`` is this task's alone)."""
    cmd = [sys.executable, "-m", "bench.matting", "--worker", task, f"{w}x{h}"]
    cmd += ["--repeats", str(repeats or args.repeats), "--threads", str(args.threads or 0)]
    cmd += ["--build-repeats", str(args.build_repeats if repeats is None else 1)]
    env = dict(os.environ)
    if args.omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else (f"{x * 1e3:.1f} ms" if x < 1 else f"{x:.2f} s")


def _fmt_ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def _fmt_mib(r: dict) -> str:
    return "-" if "peak_bytes" not in r else f"{r['peak_bytes'] / MIB:.0f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"# Matting Laplacian benchmark (CPU, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, OMP_WAIT_POLICY {_omp_policy(args)}, "
        f"radius 1, eps 1e-7, product = 3 channels; "
        f"medians of {args.build_repeats} builds, {args.repeats} products)"
    )
    print("# ratios: pymatting time / ours (>1 means we are faster); peak MiB: growth of the")
    print("# subprocess's max RSS over its RSS just before building (builds + products)")
    print(f"# load average at start: {_load()} (2 cores; other load inflates every time)\n")
    header = [
        "size",
        "pm build",
        "pm product",
        "sparse build",
        "sparse product",
        "mf build",
        "mf product",
        "build pm/sparse",
        "product pm/sparse",
        "product pm/mf",
        "peak MiB pm / sparse / mf",
    ]
    print(_row(header))
    print(_row(["---"] * len(header)))
    for text in args.sizes:
        h, w = parse_size(text)
        skip_peer = args.pymatting_max_pixels is not None and h * w > args.pymatting_max_pixels
        pm = {} if skip_peer else measure("pymatting", h, w, args)
        sp = measure("sparse", h, w, args)
        mf = measure("matrix_free", h, w, args)
        for name, r in (("pymatting", pm), ("sparse", sp), ("matrix_free", mf)):
            if "error" in r:
                print(f"# {text} {name} failed: {r['error']}")
        cells = [
            text,
            _fmt_s(pm.get("build")),
            _fmt_s(pm.get("product")),
            _fmt_s(sp.get("build")),
            _fmt_s(sp.get("product")),
            _fmt_s(mf.get("build")),
            _fmt_s(mf.get("product")),
            _fmt_ratio(pm.get("build"), sp.get("build")),
            _fmt_ratio(pm.get("product"), sp.get("product")),
            _fmt_ratio(pm.get("product"), mf.get("product")),
            f"{_fmt_mib(pm)} / {_fmt_mib(sp)} / {_fmt_mib(mf)}",
        ]
        print(_row(cells), flush=True)
        if text == "700x466" and "build" in sp:
            ok = sp["build"] <= TARGET_BUILD_SECONDS_700
            print(
                f"# target: sparse build at 700x466 <= {TARGET_BUILD_SECONDS_700} s: "
                f"{_fmt_s(sp['build'])} {'met' if ok else 'NOT met'}"
            )
        if text == "1024x1024" and "build" in sp and "build" in pm:
            ok = sp["build"] <= pm["build"]
            print(
                f"# target: sparse build at 1024x1024 no slower than pymatting: "
                f"{_fmt_s(sp['build'])} vs {_fmt_s(pm['build'])} {'met' if ok else 'NOT met'}"
            )

    if not args.skip_vgg:
        print(
            "\n# Reference: VGG-19 forward+backward to relu5_1 (torchvision, random weights, "
            "gradient for the input only, as in the optimiser) "
            "and the auto path's share of it"
        )
        header = [
            "size",
            "vgg fwd+bwd",
            "auto method",
            "auto build",
            "auto product",
            "product share",
            "energy+grad",
            "energy share",
        ]
        print(_row(header))
        print(_row(["---"] * len(header)))
        for text in VGG_SIZES:
            h, w = parse_size(text)
            vgg = measure("vgg", h, w, args)
            auto = measure("auto", h, w, args)
            if "error" in vgg or "error" in auto:
                print(f"# {text} failed: {vgg.get('error') or auto.get('error')}")
                continue
            share = auto["product"] / vgg["fwd_bwd"]
            print(
                _row(
                    [
                        text,
                        _fmt_s(vgg["fwd_bwd"]),
                        auto["method"],
                        _fmt_s(auto["build"]),
                        _fmt_s(auto["product"]),
                        f"{share:.1%}",
                        _fmt_s(auto["energy_step"]),
                        f"{auto['energy_step'] / vgg['fwd_bwd']:.1%}",
                    ]
                ),
                flush=True,
            )
        print(f"# target: product share <= {TARGET_SHARE_OF_VGG:.0%}")

    if not args.skip_4k:
        h, w = parse_size(UHD_SIZE)
        mf = measure("matrix_free", h, w, args, repeats=1)
        if "error" in mf:
            print(f"\n# {UHD_SIZE} matrix-free failed: {mf['error']}")
        else:
            ok = mf["peak_rss_bytes"] <= TARGET_UHD_PEAK_BYTES
            print(
                f"\n# {UHD_SIZE} matrix-free float32: build {_fmt_s(mf['build'])}, product "
                f"{_fmt_s(mf['product'])}, peak RSS of the whole process "
                f"{mf['peak_rss_bytes'] / MIB:.0f} MiB (of which build+product "
                f"{mf['peak_bytes'] / MIB:.0f} MiB; image and v {2 * h * w * 3 * 4 / MIB:.0f}"
                f" MiB before); target <= {TARGET_UHD_PEAK_BYTES / MIB:.0f} MiB: "
                f"{'met' if ok else 'NOT met'}"
            )
    print(f"\n# load average at end: {_load()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.matting", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--sizes",
        type=_size_list,
        default=",".join(DEFAULT_SIZES),
        help="comma-separated WxH list (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed products per size")
    parser.add_argument(
        "--build-repeats", type=int, default=3, help="timed builds per size (median reported)"
    )
    parser.add_argument(
        "--pymatting-max-pixels",
        type=int,
        default=None,
        help="skip pymatting above this many pixels (its 2048x2048 build is slow)",
    )
    parser.add_argument("--skip-vgg", action="store_true", help="skip the VGG-19 reference")
    parser.add_argument("--skip-4k", action="store_true", help=f"skip the {UHD_SIZE} memory check")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads in every measurement (default: torch's own choice)",
    )
    parser.add_argument(
        "--omp-passive",
        action="store_true",
        help="run with OMP_WAIT_POLICY=PASSIVE: on a machine shared with other jobs, "
        "spinning OpenMP threads make many-small-op code 10x slower or worse",
    )
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "WxH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        h, w = parse_size(args.worker[1])
        print(json.dumps(_work(args.worker[0], h, w, args.repeats, args.build_repeats)))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
