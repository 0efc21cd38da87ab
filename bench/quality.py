"""How close each method comes to the paper's own results, on the paper's example pairs.

Run from the repository root::

    python -m bench.quality                              # pairs 1-40 at 256 px
    OMP_NUM_THREADS=1 python -m bench.quality --pairs 1-4 --threads 1
    python -m bench.quality --model ~/.cache/dpst/model.onnx --optimiser --optimiser-iters 300

It reads ``../shared/data/dpst-examples`` (or ``$DPST_EXAMPLES``, or ``--examples``): pair N
is ``input/inN.png``, ``style/tarN.png``, their colour masks ``segmentation/inN.png`` and
``segmentation/tarN.png``, and the paper's result ``paper_results/bestN.png``. A pair whose
files are missing or unreadable (``style/tar23.png`` there is a broken 23-byte file) is
reported and skipped. Content and style are resized to ``--size`` px on the long side
(Lanczos), masks read with the project's mask reader and resized (nearest neighbour), and
both label maps go through the project's label policy once per pair (content labels absent
from the style remapped, as the optimiser does by default; no region is merged).

Methods (rows), in one run:

1. ``identity``: the content unchanged (the floor every method should beat);
2. ``reinhard``: global Reinhard colour transfer in CIELAB (mean and std per channel);
3. ``mkl``: global linear Monge-Kantorovich transfer in RGB (Pitie & Kokaram 2007);
4. ``mkl-segments+smooth``: MKL per content label from the style pixels of the same label,
   then the paper's smooth-local-affine post-filter fitted from the content to that;
5. ``generator+masks`` and 6. ``generator``: the exported one-pass generator through
   :class:`dpst.serve.runtime.stylizer.FastStylizer`, with and without the masks (``--model``;
   default: what :func:`dpst.serve.runtime.stylizer.default_model_path` finds; the rows are skipped,
   with the reason printed, when there is no model); ``generator+masks-unprotected`` and
   ``generator-unprotected`` (extra rows, not run by default) are the same without the
   highlight protection (:mod:`dpst.serve.runtime.highlights`), for its effect in one run;
   ``generator+masks-unfiltered`` and ``generator-unfiltered`` without the post-filter
   (:mod:`dpst.serve.runtime.post_filter`; the default rows end with it, as ``dpst fast`` does);
7. ``optimiser`` (``--optimiser``, off by default: minutes per pair): the reference optimiser
   (:func:`dpst.optim_reference.stylize.stylize`, ``--optimiser-iters`` per stage,
   multi-scale) with VGG-19 when its weights are found; ``--optimiser-backbone random`` runs
   the seeded random stand-in instead, and the row says it is not the method.

``--methods`` picks rows; ``mkl-segments`` (per-segment MKL without the smoothing) is an
extra row for the smoothing's effect, not run by default. The classical methods live in
:mod:`dpst.models.classical`.

Metrics, each output compared with the paper's result resized to the output's size:

- ``de00``: mean CIEDE2000 over pixels (``skimage.color.deltaE_ciede2000`` on both images'
  CIELAB), lower is closer;
- ``psnr``, ``ssim``: PSNR and SSIM (colour, data range 1) to the paper's result, as
  ``dpst eval`` computes them;
- ``region_de00``: for each content label (the mask as read, before the label policy;
  unlabelled pixels left out), CIEDE2000 between the mean Lab colour of the output and that
  of the paper's result over the region, averaged weighted by the region's area: did each
  region get the right overall colour, whatever the texture;
- ``luma_ssim``: SSIM of the output's luma (Rec. 601 Y) to the content's, as ``dpst eval``
  computes it: structure kept, though SSIM also counts the change of brightness and contrast
  a restyling makes on purpose (the identity scores 1; the paper's own results' score is
  printed under the table for scale);
- ``seconds``: wall time of the method on the pair (one call; the label policy's time is
  added to the rows that use the masks; the generator is warmed up once per run).

It prints the mean of each metric per method (over the pairs the method ran on) and writes
``quality.csv`` (one row per pair and method) and ``quality.json`` (environment: threads,
size, date, versions; settings, with the model and backbone; means; rows; per pair the label
policy's changes and the paper's luma SSIM; skipped pairs and methods with reasons) to
``--out`` (default ``outputs/quality/``); ``--save-images`` also writes every output.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import EXAMPLE_COUNT, EXAMPLES, REPO_ROOT
from dpst.errors import DpstError, WeightsNotFoundError

METRICS = ("de00", "psnr", "ssim", "region_de00", "luma_ssim", "seconds")
METRIC_HEADERS = {
    "de00": "dE00 (low)",
    "psnr": "PSNR dB",
    "ssim": "SSIM",
    "region_de00": "region dE00",
    "luma_ssim": "luma SSIM",
    "seconds": "s/pair",
}
# name -> label in the table; the order is the table's.
METHOD_LABELS = {
    "identity": "identity (content unchanged)",
    "reinhard": "Reinhard, global, Lab",
    "mkl": "MKL, global",
    "mkl-segments": "MKL per segment, unsmoothed",
    "mkl-segments+smooth": "MKL per segment + smoothing",
    "generator+masks": "generator, with masks",
    "generator": "generator, no masks",
    "generator+masks-unprotected": "generator, masks, no highlight protection",
    "generator-unprotected": "generator, no masks, no highlight protection",
    "generator+masks-unfiltered": "generator, masks, no post-filter",
    "generator-unfiltered": "generator, no masks, no post-filter",
    "optimiser": "optimiser",
}
GENERATOR_METHODS = tuple(k for k in METHOD_LABELS if k.startswith("generator"))
DEFAULT_METHODS = (
    "identity",
    "reinhard",
    "mkl",
    "mkl-segments+smooth",
    "generator+masks",
    "generator",
)
OPTIMISER_BACKBONES = ("auto", "vgg19", "random")


def parse_pairs(text: str) -> list[int]:
    """``"1-4,7,10-12"`` -> ``[1, 2, 3, 4, 7, 10, 11, 12]`` (each in 1..EXAMPLE_COUNT)."""
    numbers: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            numbers.extend(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"pairs must look like 1-4,7; got {text!r}") from None
    bad = [n for n in numbers if not 1 <= n <= EXAMPLE_COUNT]
    if bad or not numbers:
        raise argparse.ArgumentTypeError(f"pairs must be in 1..{EXAMPLE_COUNT}; got {text!r}")
    return sorted(set(numbers))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--examples", type=Path, default=EXAMPLES)
    p.add_argument("--pairs", type=parse_pairs, default=list(range(1, EXAMPLE_COUNT + 1)))
    p.add_argument("--size", type=int, default=256, help="long side, px (256)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "quality")
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1),
        help="torch and ONNX Runtime threads (default: $OMP_NUM_THREADS, else the cores)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=tuple(METHOD_LABELS),
        default=None,
        help=f"rows to run (default: {' '.join(DEFAULT_METHODS)}, + optimiser with --optimiser)",
    )
    p.add_argument("--eps", type=float, default=None, help="MKL covariance floor")
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="stylizer .onnx for the generator rows (default: $DPST_MODEL, else "
        "~/.cache/dpst/model.onnx; rows skipped when there is none)",
    )
    p.add_argument("--optimiser", action="store_true", help="add the optimiser row (slow)")
    p.add_argument(
        "--optimiser-backbone",
        choices=OPTIMISER_BACKBONES,
        default=None,
        help="auto (default): VGG-19 when its weights are found, else the row is skipped; "
        "random: the seeded stand-in (labelled as such). Implies --optimiser",
    )
    p.add_argument("--vgg-weights", default=None, help="VGG-19 weights file for the optimiser")
    p.add_argument("--optimiser-iters", type=int, default=300, help="L-BFGS iterations/stage")
    p.add_argument("--save-images", action="store_true", help="write every output as PNG")
    return p


# -- pairs ---------------------------------------------------------------------------------


@dataclass
class Pair:
    """One example at the benchmark size: images float32 ``(H, W, 3)`` in [0, 1]; label maps
    int64 ``(H, W)``, ``-1`` unlabelled; ``*_labels`` after the label policy, ``raw_*`` as
    read; the paper's result resized to the content."""

    id: str
    content: np.ndarray
    style: np.ndarray
    paper: np.ndarray
    raw_content_labels: np.ndarray
    raw_style_labels: np.ndarray
    content_labels: np.ndarray
    style_labels: np.ndarray
    label_seconds: float
    label_report: dict
    notes: list[str] = field(default_factory=list)


def pair_files(examples: Path, n: int) -> dict[str, Path]:
    """The five files of example ``n`` (names as in :func:`bench.common.examples_manifest`)."""
    return {
        "content": examples / "input" / f"in{n}.png",
        "style": examples / "style" / f"tar{n}.png",
        "content_mask": examples / "segmentation" / f"in{n}.png",
        "style_mask": examples / "segmentation" / f"tar{n}.png",
        "paper": examples / "paper_results" / f"best{n}.png",
    }


def resize_to(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize a float32 ``(H, W, 3)`` image to exactly ``hw`` (Lanczos per channel, as
    :func:`dpst.imageio.resize_long_side` does), clipped to [0, 1]."""
    from PIL import Image

    if image.shape[:2] == tuple(hw):
        return image
    size = (hw[1], hw[0])
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F").resize(
                size, Image.Resampling.LANCZOS
            )
        )
        for c in range(3)
    ]
    return np.clip(np.stack(chans, axis=2), 0.0, 1.0).astype(np.float32)


def load_pair(examples: Path, n: int, size: int) -> Pair:
    """Example ``n`` at ``size`` px, labels through the policy.

    Raises:
        dpst.errors.InputError: a file is missing or unreadable.
    """
    from dpst.imageio import read_image, resize_long_side
    from dpst.labels.mask_files import read_mask, resize_labels
    from dpst.labels.policy import LabelPolicy
    from dpst.optim_reference.stylize import consistent_labels

    files = pair_files(examples, n)
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = {k: read_image(files[k]) for k in ("content", "style", "paper")}
        cl = read_mask(files["content_mask"], images["content"].shape[:2])
        sl = read_mask(files["style_mask"], images["style"].shape[:2])
    notes += [str(w.message) for w in caught]
    content = resize_long_side(images["content"], size)
    style = resize_long_side(images["style"], size)
    paper = resize_to(images["paper"], content.shape[:2])
    cl, sl = resize_labels(cl, content.shape[:2]), resize_labels(sl, style.shape[:2])
    start = time.perf_counter()
    try:
        ccl, csl, report = consistent_labels(cl, sl, content, style, LabelPolicy())
        ccl, csl = np.asarray(ccl, dtype=np.int64), np.asarray(csl, dtype=np.int64)
    except ValueError as err:  # a mask that labels no pixel
        notes.append(f"masks unusable ({err}); one region")
        ccl = np.zeros(content.shape[:2], dtype=np.int64)
        csl = np.zeros(style.shape[:2], dtype=np.int64)
        report = {"label_ids": [0], "one_region": True}
    seconds = time.perf_counter() - start
    return Pair(f"ex{n}", content, style, paper, cl, sl, ccl, csl, seconds, report, notes)


def readable_pairs(examples: Path, numbers, size: int):
    """``(n, pair)`` for every example of ``numbers`` that loads (:func:`load_pair`); the others
    are printed as skipped (the shared examples hold one unreadable style photo)."""

    for n in numbers:
        try:
            yield n, load_pair(examples, n, size)
        except (DpstError, OSError) as err:
            print(f"skipped ex{n}: {err}", flush=True)


# -- metrics -------------------------------------------------------------------------------


def region_delta_e(out_lab: np.ndarray, ref_lab: np.ndarray, labels: np.ndarray):
    """Area-weighted CIEDE2000 between per-region mean Lab colours (float); None with no region.

    ``out_lab``, ``ref_lab``: ``(H, W, 3)`` CIELAB; ``labels``: ``(H, W)`` int, ``-1`` left out.
    """
    from skimage.color import deltaE_ciede2000

    ids, areas = np.unique(labels[labels >= 0], return_counts=True)
    if not len(ids):
        return None
    means_out = np.stack([out_lab[labels == k].mean(0) for k in ids])
    means_ref = np.stack([ref_lab[labels == k].mean(0) for k in ids])
    distances = deltaE_ciede2000(means_out, means_ref, channel_axis=-1)
    return float(np.sum(distances * areas) / np.sum(areas))


def image_metrics(output: np.ndarray, pair: Pair, paper_cache: dict) -> dict[str, float]:
    """Every metric of the module docstring but ``seconds`` (see there)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    from dpst.labels.mask_files import resize_labels
    from dpst.train.evaluate import image_metrics as eval_metrics

    hw = output.shape[:2]
    if hw not in paper_cache:
        content = resize_to(pair.content, hw)
        paper = resize_to(pair.paper, hw)
        labels = resize_labels(pair.raw_content_labels, hw)
        paper_cache[hw] = (content, paper, rgb2lab(paper), labels)
    content, paper, paper_lab, labels = paper_cache[hw]
    output = np.clip(output, 0.0, 1.0).astype(np.float32)
    out_lab = rgb2lab(output)
    base = eval_metrics(output, paper, content)
    return {
        "de00": float(deltaE_ciede2000(out_lab, paper_lab, channel_axis=-1).mean()),
        "psnr": base["psnr"],
        "ssim": base["ssim"],
        "region_de00": region_delta_e(out_lab, paper_lab, labels),
        "luma_ssim": base["ssim_content_luma"],
    }


# -- methods -------------------------------------------------------------------------------


@dataclass
class Method:
    """A row: ``run(pair)`` gives the output ``(H, W, 3)`` in [0, 1]."""

    name: str
    label: str
    run: Callable[[Pair], np.ndarray]
    uses_labels: bool = False
    note: str = ""


def classical_methods(eps: float) -> list[Method]:
    from dpst.models import classical

    def segments(p: Pair) -> np.ndarray:
        return classical.mkl_per_segment(p.content, p.style, p.content_labels, p.style_labels, eps)

    return [
        Method("identity", METHOD_LABELS["identity"], lambda p: p.content),
        Method("reinhard", METHOD_LABELS["reinhard"], lambda p: classical.reinhard_lab(*_cs(p))),
        Method("mkl", METHOD_LABELS["mkl"], lambda p: classical.mkl_global(*_cs(p), eps)),
        Method("mkl-segments", METHOD_LABELS["mkl-segments"], segments, uses_labels=True),
        Method(
            "mkl-segments+smooth",
            METHOD_LABELS["mkl-segments+smooth"],
            lambda p: classical.smooth(p.content, segments(p)),
            uses_labels=True,
            note="post-filter: radius 15, edge 0.01 (the paper's)",
        ),
    ]


def _cs(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    return pair.content, pair.style


def generator_methods(model: Path | None, threads: int, size: int) -> tuple[list[Method], str]:
    """The two generator rows, or ``([], reason)``."""
    from dpst.labels.one_pass import prepare_one_pass
    from dpst.serve.runtime.stylizer import (
        DEFAULT_MODEL_PATH,
        MODEL_ENV,
        FastStylizer,
        RuntimeModelError,
        default_model_path,
    )

    path = model or default_model_path()
    if path is None:
        return [], (
            f"no fast model (pass --model, set {MODEL_ENV}, or export one to {DEFAULT_MODEL_PATH})"
        )
    if not Path(path).is_file():
        return [], f"no fast model at {path}"
    try:
        stylizer = FastStylizer(path, threads=threads)
    except RuntimeModelError as err:
        return [], str(err)
    stylizer.warm_up(size, size)
    meta = stylizer.metadata
    note = f"model {path} (id {meta.get('model_id')}, dpst {meta.get('version')})"

    # The same model rendering its grid alone (dpst.serve.runtime.highlights off), for comparison.
    unprotected = FastStylizer(path, threads=threads, protect_highlights=False)
    # ... and without the post-filter (dpst.serve.runtime.post_filter).
    unfiltered = FastStylizer(path, threads=threads, post_filter=None)

    def rows_of(model, suffix: str) -> list[Method]:
        def with_masks(p: Pair) -> np.ndarray:
            cl, sl, _ = prepare_one_pass(
                p.content_labels, p.style_labels, p.content, p.style, model.max_labels
            )
            return model.stylize(p.content, p.style, cl, sl)

        def without(p: Pair) -> np.ndarray:
            return model.stylize(p.content, p.style)

        masked, plain = "generator+masks" + suffix, "generator" + suffix
        return [
            Method(masked, METHOD_LABELS[masked], with_masks, True, note),
            Method(plain, METHOD_LABELS[plain], without, note=note),
        ]

    rows = rows_of(stylizer, "") + rows_of(unprotected, "-unprotected")
    return rows + rows_of(unfiltered, "-unfiltered"), ""


def optimiser_method(args: argparse.Namespace) -> tuple[list[Method], str]:
    """The optimiser row, or ``([], reason)``."""
    from dpst.optim_reference.stylize import StylizeConfig, stylize
    from dpst.optim_reference.vgg import BackboneConfig, load_backbone

    choice = args.optimiser_backbone or "auto"
    if choice == "random":
        config = BackboneConfig(name="random")
    else:
        config = BackboneConfig(name="vgg19", weights=args.vgg_weights, download=False)
    try:
        network = load_backbone(config, "cpu")
    except WeightsNotFoundError as err:
        if args.vgg_weights:
            return [], str(err)
        return [], (
            "no VGG-19 weights found (README, 'Weights': --vgg-weights PATH, "
            "$DPST_VGG_WEIGHTS or torch hub's checkpoints folder); "
            "--optimiser-backbone random runs the stand-in"
        )
    identity = network[1]
    settings = StylizeConfig(
        size=args.size, iters=args.optimiser_iters, multiscale=True, device="cpu"
    )
    if identity["random"]:
        label = "optimiser (random stand-in, not the method)"
    else:
        label = f"optimiser (VGG-19, {identity.get('format')} weights)"
    note = f"{args.optimiser_iters} iterations/stage, multi-scale; backbone {identity}"

    def run(p: Pair) -> np.ndarray:
        result = stylize(
            p.content, p.style, p.raw_content_labels, p.raw_style_labels, settings, network=network
        )
        return result.image

    # stylize applies the label policy itself, so its time is in the call already.
    return [Method("optimiser", label, run, uses_labels=False, note=note)], ""


# -- reporting -----------------------------------------------------------------------------


def environment(args: argparse.Namespace) -> dict:
    import skimage
    import torch

    from dpst import __version__

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "size": args.size,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "dpst": __version__,
            "numpy": np.__version__,
            "torch": torch.__version__,
            "scikit-image": skimage.__version__,
            "onnxruntime": ort_version,
        },
        "git": commit or None,
        "examples": str(args.examples),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.quality", *sys.argv[1:]]),
    }


def means(rows: list[dict], methods: list[Method]) -> dict[str, dict]:
    out = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m.name and not r.get("error")]
        entry: dict = {"label": m.label, "pairs": len(mine)}
        for key in METRICS:
            values = [r[key] for r in mine if r.get(key) is not None and math.isfinite(r[key])]
            entry[key] = float(np.mean(values)) if values else None
        out[m.name] = entry
    return out


def format_table(summary: dict[str, dict]) -> str:
    width = max(len(s["label"]) for s in summary.values())
    head = f"{'method':<{width}} {'pairs':>5} " + " ".join(
        f"{METRIC_HEADERS[k]:>11}" for k in METRICS
    )
    lines = [head, "-" * len(head)]
    for s in summary.values():
        cells = []
        for key in METRICS:
            v = s[key]
            digits = 2 if key in ("de00", "psnr", "region_de00") else 3
            cells.append(f"{'-':>11}" if v is None else f"{v:>11.{digits}f}")
        lines.append(f"{s['label']:<{width}} {s['pairs']:>5} " + " ".join(cells))
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    fields = ["pair", "method", *METRICS, "error"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})


# -- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.size < 16:
        raise SystemExit("--size must be at least 16")
    if not args.examples.is_dir():
        print(f"no shared examples at {args.examples}: nothing to measure (set DPST_EXAMPLES)")
        return 0

    import torch

    from dpst.imageio import write_image, write_json
    from dpst.models.classical import DEFAULT_EPS

    if args.threads < 1:
        raise SystemExit("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    eps = DEFAULT_EPS if args.eps is None else args.eps
    wanted = list(args.methods or DEFAULT_METHODS)
    if (args.optimiser or args.optimiser_backbone) and "optimiser" not in wanted:
        wanted.append("optimiser")

    methods: list[Method] = []
    skipped_methods: dict[str, str] = {}
    methods += classical_methods(eps)
    if set(GENERATOR_METHODS) & set(wanted):
        rows, reason = generator_methods(args.model, args.threads, args.size)
        methods += rows
        if reason:
            skipped_methods.update({k: reason for k in GENERATOR_METHODS})
    if "optimiser" in wanted:
        rows, reason = optimiser_method(args)
        methods += rows
        if reason:
            skipped_methods["optimiser"] = reason
    by_name = {m.name: m for m in methods}
    methods = [by_name[k] for k in METHOD_LABELS if k in wanted and k in by_name]
    for name, reason in skipped_methods.items():
        if name in wanted:
            print(f"skipping {name}: {reason}")

    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"{len(args.pairs)} pairs at {args.size} px, {args.threads} thread(s), "
        f"{len(methods)} methods; writing {args.out}",
        flush=True,
    )
    rows: list[dict] = []
    skipped_pairs: dict[str, str] = {}
    info: dict[str, dict] = {}
    for n in args.pairs:
        try:
            pair = load_pair(args.examples, n, args.size)
        except (DpstError, OSError) as err:
            skipped_pairs[f"ex{n}"] = str(err)
            print(f"ex{n}: skipped ({err})", flush=True)
            continue
        # The paper's own result against the content: the luma SSIM a faithful method gets.
        paper_luma = image_metrics(pair.paper, pair, {})["luma_ssim"]
        info[pair.id] = {
            "label_policy": pair.label_report,
            "notes": pair.notes,
            "paper_luma_ssim": paper_luma,
        }
        for note in pair.notes:
            print(f"{pair.id}: {note}")
        cache: dict = {}
        cells = []
        for m in methods:
            row: dict = {"pair": pair.id, "method": m.name}
            try:
                start = time.perf_counter()
                output = m.run(pair)
                seconds = time.perf_counter() - start
                row.update(image_metrics(np.asarray(output, dtype=np.float32), pair, cache))
                row["seconds"] = seconds + (pair.label_seconds if m.uses_labels else 0.0)
                cells.append(f"{m.name} {row['de00']:.1f}")
                if args.save_images:
                    write_image(args.out / "images" / f"{pair.id}_{m.name}.png", output)
            except (DpstError, ValueError, RuntimeError) as err:
                row["error"] = f"{type(err).__name__}: {err}"
                cells.append(f"{m.name} failed")
                print(f"{pair.id} {m.name}: {row['error']}")
            rows.append(row)
        print(f"{pair.id} dE00: " + ", ".join(cells), flush=True)

    summary = means(rows, methods)
    report = {
        "benchmark": "bench.quality",
        "environment": environment(args),
        "settings": {
            "pairs_requested": [f"ex{n}" for n in args.pairs],
            "pairs_measured": sorted({r["pair"] for r in rows}, key=lambda s: int(s[2:])),
            "size": args.size,
            "methods": {m.name: {"label": m.label, "note": m.note} for m in methods},
            "mkl_eps": eps,
            "optimiser_iters": args.optimiser_iters if "optimiser" in by_name else None,
        },
        "skipped_methods": {k: v for k, v in skipped_methods.items() if k in wanted},
        "skipped_pairs": skipped_pairs,
        "means": summary,
        "rows": rows,
        "pairs": info,
    }
    write_csv(args.out / "quality.csv", rows)
    write_json(args.out / "quality.json", report)
    done = len({r["pair"] for r in rows})
    print(
        f"\nmeans over {done} pairs at {args.size} px ({args.threads} thread(s)); "
        f"compared with the paper's results (dE00: CIEDE2000, lower is closer)"
    )
    print(format_table(summary))
    if info:
        paper_luma = np.mean([v["paper_luma_ssim"] for v in info.values()])
        print(f"(the paper's own results: luma SSIM {paper_luma:.3f} to the content)")
    if skipped_pairs:
        print("skipped pairs: " + "; ".join(f"{k}: {v}" for k, v in skipped_pairs.items()))
    print(f"wrote {args.out / 'quality.csv'} and {args.out / 'quality.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
