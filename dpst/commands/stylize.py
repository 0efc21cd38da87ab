"""``dpst stylize CONTENT STYLE -o OUT``: the reference optimiser on one pair.

Masks come from files (``--content-mask``/``--style-mask``) or, without them, as every front
end finds them (``--masks auto``, :mod:`dpst.labels.finder`): the segmenter's groups, else
the weight-free regions (sky and rest), else one region, each fallback said in one line.
Writes the image and ``OUT.json``: the resolved config (give it back with ``--config`` to run
the same again), the backbone's identity, per-stage losses, timings, the label mapping, the
regions used and their source. The output is checked
before any work (:mod:`dpst.commands.outputs`); Ctrl-C, SIGTERM and SIGHUP stop the
optimisation and write the result so far, marked interrupted.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from dpst.commands import options
from dpst.errors import InputError
from dpst.labels.regions import FROM_MASK_FILES, ONE_REGION, Regions, one_region

# flag dest -> StylizeConfig field; shared with dpst targets.
OPTIMISER_FLAGS = {
    "size": "size",
    "iters": "iters",
    "stages": "stages",
    "multiscale": "multiscale",
    "postfilter": "postfilter",
    "device": "device",
    "seed": "seed",
    "postfilter_mode": "post.mode",
    "photorealism": "weights.photorealism",
    "content_weight": "weights.content",
    "style_weight": "weights.style",
    "tv_weight": "weights.tv",
    "min_region": "labels.min_fraction",
    "snapshot_every": "snapshot_every",
}


def add_optimiser_options(p: options.Parser) -> None:
    """The optimiser's settings, as ``dpst stylize`` and ``dpst targets`` take them."""
    options.add_config(p, "StylizeConfig")
    p.add_argument(
        "--size", type=int, metavar="PX", help="long side of the working resolution (700)"
    )
    p.add_argument(
        "--iters", type=options.positive_int, metavar="N",
        help="L-BFGS iterations per stage, at least 1 (1000)",
    )  # fmt: skip
    p.add_argument("--stages", type=int, choices=(1, 2), help="2: add the photorealism stage")
    p.add_argument(
        "--multiscale",
        action="store_true",
        default=None,
        help="optimise small, upsample, refine (much faster)",
    )
    p.add_argument(
        "--no-postfilter",
        dest="postfilter",
        action="store_false",
        default=None,
        help="skip the smooth-local-affine post-filter (output at working size)",
    )
    p.add_argument("--postfilter-mode", choices=("exact", "fast"), help="post-filter variant")
    weight = {"type": float, "metavar": "WEIGHT"}
    p.add_argument("--lambda", dest="photorealism", help="photorealism weight (1e4)", **weight)
    p.add_argument("--content-weight", help="content weight (5)", **weight)
    p.add_argument("--style-weight", help="style weight (100)", **weight)
    p.add_argument("--tv-weight", help="total variation weight (1e-3)", **weight)
    options.add_min_region(p)
    options.add_backbone(p)
    options.add_device(p)
    p.add_argument("--seed", type=int, help="random seed of the run (0)")


def optimiser_configs(args: argparse.Namespace):
    """The resolved, validated ``(StylizeConfig, BackboneConfig)``; the backbone is the
    ``backbone`` entry of a ``--config`` file, as the report writes it."""
    from dpst.commands.resolve import backbone_values, resolve
    from dpst.config import validated
    from dpst.optim_reference.stylize import StylizeConfig
    from dpst.optim_reference.vgg import BackboneConfig

    backbone = resolve(BackboneConfig(), args, given=backbone_values(args), section="backbone")
    config = validated(resolve(StylizeConfig(), args, OPTIMISER_FLAGS, sections=("backbone",)))
    if config.iters < 1:  # --iters refuses it when parsing; a --config file can still say it
        raise InputError(f"iters must be at least 1, got {config.iters} (from {args.config})")
    return config, backbone


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", metavar="CONTENT", help="content photo")
    p.add_argument("style", metavar="STYLE", help="reference (style) photo")
    options.add_output(p)
    options.add_mask_files(p)
    add_optimiser_options(p)
    p.add_argument(
        "--snapshot-every", type=int, metavar="N", help="save the iterate every N iterations"
    )
    p.add_argument("--tensorboard", metavar="DIR", help="log losses and images to DIR")
    options.add_quiet(p)
    options.add_automatic_masks(
        p, options.MASKS_DEFAULT, options.MASKS_HELP, "masks when no mask files are given"
    )


def _regions(args, content, style, config, files: bool):
    """The pair's regions (label maps at the photos' sizes, before the label policy, which the
    optimiser runs) and what the report says of them: the mask files, else ``--masks auto``'s
    order (:mod:`dpst.labels.finder`, as dpst fast: the segmenter at the working size, else
    the weight-free regions, else one region, each fallback said in one line)."""
    from dpst.labels.finder import choose_finder, pair_finder, stderr_say
    from dpst.labels.mask_files import read_mask

    if files:
        content_labels = read_mask(args.content_mask, content.shape[:2])
        style_labels = read_mask(args.style_mask, style.shape[:2])
        return Regions(content_labels, style_labels, FROM_MASK_FILES), {"source": FROM_MASK_FILES}
    # Segmented at the working size, where the optimiser uses them.
    auto = options.auto_masks(args, device=config.device, long_side=config.size)
    if auto is None:
        return one_region(), {"source": ONE_REGION}
    say = stderr_say("stylize")
    finder = choose_finder("stylize", auto, say)
    regions, note = pair_finder(finder, style)(content)
    if note:
        say(note)
    info = {"source": regions.source, "finder": finder.source}
    if note:
        info["note"] = note
    if finder.describe is not None:
        info["segmenter"] = finder.describe
    return regions, info


def _region_names(labels: dict, regions: Regions) -> list[str]:
    """The names of the regions the optimiser used (segmenter groups and weight-free regions
    by name, mask labels by number; [] for one region), as every report lists them."""
    if labels.get("one_region"):
        return []
    return [regions.name_of(i) for i in labels["label_ids"]]


def _progress(args, config, content_shape, out: Path):
    """A progress bar and the per-iteration callback (bar, snapshots)."""

    from tqdm import tqdm

    from dpst.imageio import from_tensor, write_image
    from dpst.optim_reference.stylize import planned_iterations

    total = planned_iterations(config, content_shape)
    bar = tqdm(total=total, disable=args.quiet, unit="it", dynamic_ncols=True)
    snapshots = snapshot_folder(out)
    failed = []

    def callback(event) -> None:
        bar.update(1)
        bar.set_description(f"level {event.level} stage {event.stage}")
        bar.set_postfix({k: f"{v:.3g}" for k, v in event.terms.items()}, refresh=False)
        if config.snapshot_every and event.iteration % config.snapshot_every == 0 and not failed:
            name = f"level{event.level}_stage{event.stage}_{event.iteration:05d}.png"
            try:
                write_image(snapshots / name, from_tensor(event.image()))
            except OSError as err:
                # A snapshot is a by-product: a full disk must not cost the run its result.
                failed.append(name)
                bar.write(f"dpst stylize: warning: could not write {snapshots / name} "
                          f"({err.strerror or err}): no more snapshots; the run goes on",
                          file=sys.stderr)  # fmt: skip

    return bar, callback


def snapshot_folder(out: Path) -> Path:
    """Where ``--snapshot-every`` writes (``SNAPSHOT_PATTERN`` files) beside ``out``."""
    return out.with_name(out.stem + ".snapshots")


SNAPSHOT_PATTERN = "level*_stage*_*.png"


def _inputs(args: argparse.Namespace) -> dict:
    """The input files, by what the user would call them, for the output checks."""
    return {
        "content photo": args.content,
        "style photo": args.style,
        "--content-mask": args.content_mask,
        "--style-mask": args.style_mask,
        "--config": args.config,
    }


def run(args: argparse.Namespace) -> int:

    from dpst.commands.outputs import check_image_output
    from dpst.commands.signals import termination_as_interrupt

    # Before any work: a bad -o must cost one line, not the optimisation's hours.
    out = Path(args.output)
    check_image_output(args.output, _inputs(args), [out.with_name(out.name + ".json")])
    # A timeout, a kill or a closed terminal stop the run as Ctrl-C does: result kept.
    with termination_as_interrupt() as received:
        try:
            interrupted = _stylize(args, out)
        except KeyboardInterrupt:
            if received.signum is None:
                raise  # Ctrl-C outside the optimisation: the CLI's usual 130
            print(f"dpst stylize: interrupted ({received.name()})", file=sys.stderr)
            return received.exit_code()
    if interrupted:
        print(f"interrupted ({received.name()}): the result so far was written, marked interrupted")
        return received.exit_code()
    return 0


def _stylize(args: argparse.Namespace, out: Path) -> bool:
    """Run and write the output and its report; True when the run was interrupted."""

    from dpst.commands.outputs import check_output_folder, write_image_or_rescue
    from dpst.devices import resolve_device
    from dpst.imageio import read_image
    from dpst.optim_reference.stylize import stylize
    from dpst.optim_reference.vgg import load_backbone

    config, backbone = optimiser_configs(args)
    if config.snapshot_every:  # known once --config is read; checked before any work
        check_output_folder(snapshot_folder(out), SNAPSHOT_PATTERN, _inputs(args))
    content, style = read_image(args.content), read_image(args.style)
    files = options.mask_files_given(args)
    try:
        device = resolve_device(config.device)
    except ValueError as err:
        raise InputError(str(err)) from None
    # Loaded (the Caffe file fetched on first use) before anything slow, segmentation and
    # optimisation: missing weights then cost one line and nothing else.
    network = load_backbone(backbone, device)
    regions, masks_info = _regions(args, content, style, config, files)
    if not args.quiet:
        print(f"masks: {masks_info['source']}")
    bar, callback = _progress(args, config, content.shape, out)
    try:
        result = stylize(
            content,
            style,
            regions.content,
            regions.style,
            config,
            backbone,
            callback=callback,
            tensorboard_dir=args.tensorboard,
            network=network,
            relation=regions.relation,
        )
    finally:
        bar.close()
    report = result.report
    report["inputs"] = {
        "content": str(args.content),
        "style": str(args.style),
        "content_mask": args.content_mask,
        "style_mask": args.style_mask,
    }
    report["config"]["backbone"] = asdict(backbone)
    report["masks"] = masks_info
    report["regions"] = _region_names(result.report["labels"], regions)
    write_image_or_rescue(out, result.image, report)
    note = (
        " (RANDOM backbone: not VGG-19's trained weights)"
        if report["backbone"].get("random")
        else ""
    )
    print(f"wrote {out} and {out.name}.json in {report['seconds']:.1f} s{note}")
    return bool(report["interrupted"])
