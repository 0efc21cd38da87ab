"""Post-filter benchmark: the exact and fast smooth-local-affine filter at given sizes.

Run from the repository root: ``python -m bench.postfilter`` (``--help`` for options; a
quick check: ``--sizes 700x466 --repeats 1``). Defaults: 700x466 and 2048x2048, both
modes, radius 15, edge 0.01, float32, CPU, torch's default thread count.

Every (size, mode) runs in its own subprocess, so that its peak memory can be read
honestly: "peak MiB" is the growth of the process's maximum resident set size
(``ru_maxrss``) over its resident size just before the measured work (after imports,
after allocating the inputs and after a warm-up on a 64x64 image), i.e. everything the
work touched; on CUDA it is ``torch.cuda.max_memory_allocated`` growth instead. Times are
wall clock, the median of ``--repeats`` runs, split into fit, smoothing and application;
"cpu s" is the process CPU time of a run (all threads): on a shared machine, a wall time
well above cpu / threads means the run waited for cores.
Inputs: scikit-image's "coffee" photo resized to the size, and as the "output" a colour
transform of it plus noise (the cost does not depend on content).
``--full-res WxH`` also times applying maps from the first size to that size (the
optimiser's 700 px result applied to, say, a 12-megapixel photo).
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

from bench.common import MIB, REPO_ROOT, parse_size

DEFAULT_SIZES = ("700x466", "2048x2048")
MODES = ("exact", "fast")
# Targets of issue 2 at 700x466 on 2 CPU cores.
TARGET_SECONDS_700 = {"exact": 3.0, "fast": 0.2}
TARGET_SIZE = (466, 700)


def _size_list(text: str) -> list[tuple[int, int]]:
    return [parse_size(part.strip()) for part in text.split(",") if part.strip()]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _inputs(height: int, width: int, device: str):
    """A real photo at the size, and a plausible stylised output of it."""
    import numpy as np
    import torch
    from PIL import Image
    from skimage.data import coffee

    photo = Image.fromarray(coffee()).resize((width, height), Image.Resampling.BICUBIC)
    content = torch.from_numpy(np.asarray(photo, dtype=np.float32) / 255.0)
    content = content.permute(2, 0, 1)[None].contiguous()
    mix = torch.tensor([[0.7, 0.2, 0.0], [0.1, 0.6, 0.1], [0.0, 0.3, 0.6]])
    generator = torch.Generator().manual_seed(0)
    noise = 0.02 * torch.randn(content.shape, generator=generator)
    output = (torch.einsum("kj,bjhw->bkhw", mix, content) + 0.1 + noise).clamp(0, 1)
    return content.to(device), output.to(device)


def _child(job: dict) -> dict:
    """Run one measurement in this process and return its numbers."""
    import torch

    from dpst.optim_reference.postfilter import (
        PostFilterConfig,
        apply_affine,
        fit_local_affine,
        smooth_coefficients,
        upsample_apply,
    )

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    device = job["device"]
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    config = PostFilterConfig(mode=job["mode"] if job["mode"] != "upsample" else "exact")
    height, width = job["size"]
    content, output = _inputs(height, width, device)
    full = None
    if job["mode"] == "upsample":
        full, _ = _inputs(*job["full_size"], device)

    def run(c, o, f=None) -> dict[str, float]:
        times = {}
        sync()
        cpu_start = time.process_time()
        start = time.perf_counter()
        coeffs = fit_local_affine(c, o, config.fit_radius, config.ridge)
        sync()
        times["fit"] = time.perf_counter() - start
        start = time.perf_counter()
        coeffs = smooth_coefficients(coeffs, c, config)
        sync()
        times["smooth"] = time.perf_counter() - start
        start = time.perf_counter()
        if f is None:
            apply_affine(coeffs, c).clamp_(0, 1)
        else:
            upsample_apply(coeffs, c, f).clamp_(0, 1)
        sync()
        times["apply"] = time.perf_counter() - start
        times["cpu"] = time.process_time() - cpu_start
        return times

    warm_c, warm_o = _inputs(64, 64, device)
    run(warm_c, warm_o)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    runs = [run(content, output, full) for _ in range(job["repeats"])]
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss_bytes() - base
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    medians["total"] = statistics.median(r["fit"] + r["smooth"] + r["apply"] for r in runs)
    return {"times": medians, "peak_bytes": max(0, peak), "threads": torch.get_num_threads()}


def _measure(job: dict, passive: bool) -> dict:
    env = dict(os.environ)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.postfilter", "--child", json.dumps(job)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _label(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.postfilter", description=__doc__)
    parser.add_argument("--sizes", type=_size_list, default=_size_list(",".join(DEFAULT_SIZES)))
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: exact,fast")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--full-res", type=parse_size, default=None, metavar="WxH")
    parser.add_argument(
        "--omp-passive",
        action="store_true",
        help="run with OMP_WAIT_POLICY=PASSIVE: on a machine shared with other jobs, "
        "spinning OpenMP threads made 2-thread runs up to 10x slower in wall time",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= set(MODES) or args.repeats < 1:
        parser.error(f"--modes must be drawn from {MODES} and --repeats >= 1")
    jobs = [(size, mode) for size in args.sizes for mode in modes]
    if args.full_res:
        jobs.append((args.sizes[0], "upsample"))
    base = {"repeats": args.repeats, "threads": args.threads, "device": args.device}
    policy = "PASSIVE" if args.omp_passive else os.environ.get("OMP_WAIT_POLICY", "default")
    print(
        f"post-filter benchmark, radius 15, edge 0.01, float32, {args.device}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, OMP_WAIT_POLICY {policy}"
    )
    header = f"{'size':>11} {'mode':>8} {'fit s':>7} {'smooth s':>9} {'apply s':>8}"
    print(f"{header} {'total s':>8} {'cpu s':>7} {'peak MiB':>9} {'threads':>7}  target")
    for size, mode in jobs:
        job = {**base, "size": size, "mode": mode, "full_size": args.full_res}
        result = _measure(job, args.omp_passive)
        label = _label(size) if mode != "upsample" else f"->{_label(args.full_res)}"
        if "error" in result:
            print(f"{label:>11} {mode:>8}  failed: {result['error']}")
            continue
        t = result["times"]
        target = ""
        if size == TARGET_SIZE and mode in TARGET_SECONDS_700:
            goal = TARGET_SECONDS_700[mode]
            target = f"< {goal:g} s: {'met' if t['total'] < goal else 'MISSED'}"
        print(
            f"{label:>11} {mode:>8} {t['fit']:7.3f} {t['smooth']:9.3f} {t['apply']:8.3f} "
            f"{t['total']:8.3f} {t['cpu']:7.3f} {result['peak_bytes'] / MIB:9.0f} "
            f"{result['threads']:7d}  {target}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
