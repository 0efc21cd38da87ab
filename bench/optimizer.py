"""Reference optimiser benchmark: iteration cost against bare VGG-19, multi-scale against single.

Run from the repository root: ``python -m bench.optimizer`` (``--help`` for options). It
prints, in one run on this machine:

1. per size (default 256 and 512 px long side): the median time of a bare VGG-19
   forward+backward to relu5_1 (torchvision's layers, random weights: the cost does not
   depend on the weights), the median time of one full iteration of our stage 2 (objective
   with masks, matting product, L-BFGS update), and their ratio (target <= 1.2 at 512 px);
2. the multi-scale schedule's final objective and wall time against the single-scale
   two-stage schedule's, on a shared example pair when ``../shared/data/dpst-examples``
   exists (with its masks), else on a bundled scikit-image pair. Both are evaluated with the
   same backbone at the working size (target: the multi-scale objective no higher, in at
   most 30% of the time). ``--iters`` sets the single-scale iterations per stage (the
   paper's 1000 by default; a smaller value gives a quicker, stated, comparison).

The random backbone is used unless ``--backbone vgg19`` is given; the report says which.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from bench.common import EXAMPLES, median_time
from dpst.imageio import read_image, resize_long_side, to_tensor
from dpst.labels.mask_files import read_mask, resize_labels
from dpst.labels.policy import LabelPolicy
from dpst.optim_reference.losses import LossWeights, Objective
from dpst.optim_reference.masks import one_hot_masks
from dpst.optim_reference.matting import MattingLaplacian
from dpst.optim_reference.optimize import mean_init, run_lbfgs
from dpst.optim_reference.stylize import StylizeConfig, consistent_labels, stylize
from dpst.optim_reference.vgg import BackboneConfig, load_backbone

RELU5_1_INDEX = 29  # torchvision vgg19().features index of relu5_1
TARGET_ITERATION_RATIO = 1.2
TARGET_TIME_SHARE = 0.30


def load_pair(size: int, example: int):
    """A content/style pair with label maps at ``size`` long side, and where it came from."""
    if EXAMPLES.is_dir():
        c = read_image(EXAMPLES / "input" / f"in{example}.png")
        s = read_image(EXAMPLES / "style" / f"tar{example}.png")
        cl = read_mask(EXAMPLES / "segmentation" / f"in{example}.png", c.shape[:2])
        sl = read_mask(EXAMPLES / "segmentation" / f"tar{example}.png", s.shape[:2])
        c, s = resize_long_side(c, size), resize_long_side(s, size)
        cl, sl = resize_labels(cl, c.shape[:2]), resize_labels(sl, s.shape[:2])
        return c, s, cl, sl, f"shared example {example}"
    from dpst.data.samples import brightness_labels, sample_image

    c, s = sample_image("rocket", size), sample_image("coffee", size)
    return c, s, brightness_labels(c), brightness_labels(s), "bundled rocket/coffee"


def bare_vgg_seconds(shape, repeats: int) -> float:
    import torchvision

    net = torchvision.models.vgg19(weights=None).features[: RELU5_1_INDEX + 1].eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.rand(shape, requires_grad=True)

    def step():
        x.grad = None
        net(x).sum().backward()

    return median_time(step, repeats)


def iteration_seconds(pair, backbone, iters: int) -> tuple[float, str, int]:
    c, s, cl, sl, _ = pair
    cl, sl, info = consistent_labels(cl, sl, c, s, LabelPolicy())
    ids = info["label_ids"]
    ct, st = to_tensor(c), to_tensor(s)
    cm = one_hot_masks(torch.from_numpy(cl)[None], ids)
    sm = one_hot_masks(torch.from_numpy(sl)[None], ids)
    matting = MattingLaplacian.build(ct)
    obj = Objective(backbone, ct, st, cm, sm, LossWeights(), matting)
    init = mean_init(tuple(ct.shape), 0, "cpu")
    run_lbfgs(obj, init, 2, LossWeights())  # warm-up (first L-BFGS import, allocations)
    times = []
    run_lbfgs(
        obj, init, iters, LossWeights(), on_iteration=lambda *a: times.append(time.perf_counter())
    )
    per_iteration = statistics.median(np.diff(times)) if len(times) > 2 else float("nan")
    return float(per_iteration), matting.method, len(ids)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of the bare VGG pass")
    p.add_argument("--iteration-samples", type=int, default=8, help="timed L-BFGS iterations")
    p.add_argument("--schedule-size", type=int, default=256, help="long side for part 2")
    p.add_argument("--iters", type=int, default=1000, help="single-scale iterations per stage")
    p.add_argument(
        "--multiscale-iters",
        type=int,
        default=None,
        help="multi-scale --iters (default: the same as --iters)",
    )
    p.add_argument("--example", type=int, default=1, help="shared example number")
    p.add_argument("--backbone", choices=("random", "vgg19"), default="random")
    p.add_argument("--skip-iterations", action="store_true")
    p.add_argument("--skip-schedule", action="store_true")
    args = p.parse_args(argv)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, backbone {args.backbone}")
    backbone_cfg = BackboneConfig(name=args.backbone)
    net, identity = load_backbone(backbone_cfg)
    if not args.skip_iterations:
        print("\n1. one iteration against a bare VGG-19 forward+backward (median seconds)")
        print(f"{'size':>10} {'bare VGG':>10} {'iteration':>10} {'ratio':>7}  matting, labels")
        for size in args.sizes:
            pair = load_pair(size, args.example)
            shape = (1, 3, *pair[0].shape[:2])
            bare = bare_vgg_seconds(shape, args.repeats)
            it, method, k = iteration_seconds(pair, net, args.iteration_samples)
            hw = f"{shape[3]}x{shape[2]}"
            ok = "ok" if it / bare <= TARGET_ITERATION_RATIO else "ABOVE TARGET"
            print(
                f"{hw:>10} {bare:>10.3f} {it:>10.3f} {it / bare:>7.2f}  {method}, K={k}  "
                f"[target <= {TARGET_ITERATION_RATIO}: {ok}]"
            )

    if not args.skip_schedule:
        c, s, cl, sl, source = load_pair(args.schedule_size, args.example)
        print(
            f"\n2. multi-scale against single-scale, {source}, {args.schedule_size} px, "
            f"{args.iters} iterations per stage"
        )
        results = {}
        for name, multiscale, iters in (
            ("single", False, args.iters),
            ("multiscale", True, args.multiscale_iters or args.iters),
        ):
            cfg = StylizeConfig(
                size=args.schedule_size, iters=iters, multiscale=multiscale, postfilter=False
            )
            t = time.perf_counter()
            r = stylize(c, s, cl, sl, cfg, backbone_cfg)
            seconds = time.perf_counter() - t
            final = r.report["stages"][-1]["end"]
            results[name] = (final["total"], seconds)
            plan = ", ".join(
                f"L{st['level']}s{st['stage']}x{st['iterations']}" for st in r.report["stages"]
            )
            print(f"{name:>11}: objective {final['total']:.4g} in {seconds:.1f} s  ({plan})")
        (f1, t1), (f2, t2) = results["single"], results["multiscale"]
        verdict = "ok" if f2 <= f1 and t2 <= TARGET_TIME_SHARE * t1 else "NOT MET"
        print(
            f"ratios: objective {f2 / f1:.3f}x, time {t2 / t1:.3f}x  "
            f"[target: objective <= 1, time <= {TARGET_TIME_SHARE}: {verdict}]"
        )
    print(f"\nbackbone identity: {identity}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
