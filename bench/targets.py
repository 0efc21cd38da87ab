"""Target-generation throughput: pairs per hour on CPU with 1 and 2 processes, and the ratio.

Run from the repository root: ``python -m bench.targets`` (``--pairs 8 --iters 20`` for a
longer, steadier run). Builds ``--pairs`` pairs from scikit-image's sample photos at
``--size`` px (long side), then runs ``dpst targets`` under ``torchrun --standalone`` once per
process count, each in a fresh output folder, with the machine's cores split evenly between
the processes (OMP_NUM_THREADS, or ``--threads``). Pairs per hour are computed from the wall
time of the whole run, start-up included, and for a steady state from the median time of one
pair (the ranks' logs) times the number of processes; the scaling ratio is given for both.
The optimiser runs ``--iters`` iterations per stage (the paper uses 1000): the rates scale
roughly inversely with it, and an extrapolation to 2 x 1000 iterations is printed from the
per-iteration cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import permutations
from pathlib import Path

from dpst.data.manifest import Entry, write_manifest
from dpst.data.samples import SAMPLE_PHOTOS, sample_image

PAPER_ITERATIONS = 1000
STAGES = 2


def build_pairs(folder: Path, n: int, size: int) -> Path:
    """``n`` pairs cycling over the ordered pairs of the sample photos, at ``size`` px."""
    from dpst.imageio import write_image

    for name in SAMPLE_PHOTOS:
        write_image(folder / f"{name}.png", sample_image(name, size))
    combos = list(permutations(SAMPLE_PHOTOS, 2))
    entries = [
        Entry(f"pair{k:03d}", folder / f"{c}.png", folder / f"{s}.png")
        for k, (c, s) in zip(range(n), combos * (n // len(combos) + 1), strict=False)
    ]
    manifest = folder / "manifest.jsonl"
    write_manifest(manifest, entries)
    return manifest


def run_once(manifest: Path, out: Path, procs: int, args: argparse.Namespace) -> dict:
    threads = args.threads or max(1, (os.cpu_count() or 1) // procs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(procs),
        "-m",
        "dpst",
        "targets",
        str(manifest),
        "--out",
        str(out),
        "--size",
        str(args.size),
        "--iters",
        str(args.iters),
        "--backbone",
        args.backbone,
        "--quiet",
    ]
    if not args.postfilter:
        cmd.append("--no-postfilter")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: some pairs failed; the summary counts those done
        raise SystemExit(f"dpst targets failed with {procs} process(es):\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    logs = [
        json.loads(line)
        for path in (out / "logs").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    # The median, not the mean: each process's first pair also pays one-off imports (torch's
    # optimiser pulls in torch._dynamo, seconds), which a long run amortises.
    per_pair = statistics.median(line["seconds"] for line in logs)
    done = summary["done"]
    return {
        "processes": procs,
        "threads_per_process": threads,
        "pairs": done,
        "failed": summary["failed"],
        "wall_seconds": round(wall, 2),
        "seconds_per_pair_median": round(per_pair, 2),
        "pairs_per_hour_wall": round(done * 3600 / wall, 1),
        # Every process busy all the time, each pair taking the median time.
        "pairs_per_hour_steady": round(procs * 3600 / per_pair, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=4, help="pairs per run (4)")
    p.add_argument("--iters", type=int, default=10, help="L-BFGS iterations per stage (10)")
    p.add_argument("--size", type=int, default=256, help="working size, long side (256)")
    p.add_argument("--procs", default="1,2", help="process counts to compare (1,2)")
    p.add_argument(
        "--backbone",
        choices=("random", "vgg19"),
        default="random",
        help="random: same cost as VGG-19, no weights needed (random)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads per process (default: the cores split between processes)",
    )
    p.add_argument("--no-postfilter", dest="postfilter", action="store_false")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.procs.split(",")]

    with tempfile.TemporaryDirectory(prefix="dpst-bench-targets-") as tmp:
        manifest = build_pairs(Path(tmp) / "photos", args.pairs, args.size)
        rows = [run_once(manifest, Path(tmp) / f"out{n}", n, args) for n in counts]

    print(
        f"dpst targets at {args.size} px, {args.iters} iterations x {STAGES} stages, "
        f"{args.pairs} pairs, backbone {args.backbone}, {os.cpu_count()} CPU cores"
    )
    print(
        f"{'procs':>5} {'thr/proc':>8} {'wall s':>8} {'s/pair':>8} {'pairs/h wall':>13} "
        f"{'pairs/h steady':>15}"
    )
    for r in rows:
        print(
            f"{r['processes']:>5} {r['threads_per_process']:>8} {r['wall_seconds']:>8} "
            f"{r['seconds_per_pair_median']:>8} {r['pairs_per_hour_wall']:>13} "
            f"{r['pairs_per_hour_steady']:>15}"
        )
    result = {"settings": vars(args), "cpu_count": os.cpu_count(), "runs": rows}
    if len(rows) >= 2:
        base, last = rows[0], rows[-1]
        result["scaling_wall"] = round(last["pairs_per_hour_wall"] / base["pairs_per_hour_wall"], 3)
        result["scaling_steady"] = round(
            last["pairs_per_hour_steady"] / base["pairs_per_hour_steady"], 3
        )
        print(
            f"scaling {base['processes']} -> {last['processes']} processes: "
            f"{result['scaling_wall']}x wall clock, {result['scaling_steady']}x steady state"
        )
    # Per-pair time is start-up-free; dividing by the iterations gives an upper bound on the
    # cost of one iteration (it includes reading, the matting build and the post-filter).
    best = max(rows, key=lambda r: r["pairs_per_hour_steady"])
    per_iter = best["seconds_per_pair_median"] / (STAGES * args.iters) / best["processes"]
    paper_rate = 3600 / (per_iter * STAGES * PAPER_ITERATIONS)
    result["pairs_per_hour_at_paper_iterations_estimate"] = round(paper_rate, 2)
    print(
        f"extrapolated to {STAGES} x {PAPER_ITERATIONS} iterations: about {paper_rate:.2f} "
        f"pairs/hour on this machine ({best['processes']} processes)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
