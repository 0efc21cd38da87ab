"""The optimiser's command-line options and the mask-file half of ``dpst stylize``.

``serve/stylize_cli.py`` registers ``dpst stylize``: it adds automatic masks (which need
``models``) on top of :func:`run`, since this package imports nothing above it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_INTERRUPTED = 130


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", help="content photo")
    p.add_argument("style", help="reference (style) photo")
    p.add_argument("-o", "--output", required=True, help="output image (.png or .jpg)")
    p.add_argument("--content-mask", help="colour-coded mask or integer label map")
    p.add_argument("--style-mask", help="colour-coded mask or integer label map")
    p.add_argument("--config", help="JSON config (or a previous run's report) to start from")
    p.add_argument("--size", type=int, help="long side of the working resolution (700)")
    p.add_argument("--iters", type=int, help="L-BFGS iterations per stage (1000)")
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
    p.add_argument("--lambda", dest="photorealism", type=float, help="photorealism weight (1e4)")
    p.add_argument("--content-weight", type=float, help="content weight (5)")
    p.add_argument("--style-weight", type=float, help="style weight (100)")
    p.add_argument("--tv-weight", type=float, help="total variation weight (1e-3)")
    p.add_argument(
        "--min-region",
        type=float,
        metavar="FRACTION",
        help="merge regions under this fraction of either image into a neighbour, in both "
        "alike (default 0: none, as the published code)",
    )
    p.add_argument(
        "--backbone",
        choices=("vgg19", "random"),
        help="vgg19 (the Caffe weights, downloaded on first use) or a random stand-in",
    )
    p.add_argument(
        "--vgg-weights",
        help="VGG-19 weights file (or env DPST_VGG_WEIGHTS), or 'torchvision' for "
        "torchvision's weights (loss weights not calibrated for them)",
    )
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int)
    p.add_argument("--snapshot-every", type=int, help="save the iterate every N iterations")
    p.add_argument("--tensorboard", metavar="DIR", help="log losses and images to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_configs(args: argparse.Namespace):
    """Defaults, then ``--config``, then flags: the resolved (StylizeConfig, BackboneConfig)."""
    from dpst.config import load_config_file, update_dataclass
    from dpst.optim_reference.stylize import StylizeConfig
    from dpst.optim_reference.vgg import BackboneConfig

    cfg, backbone = StylizeConfig(), BackboneConfig()
    if args.config:
        data = load_config_file(args.config)
        backbone = update_dataclass(backbone, data.pop("backbone", {}) or {}, "backbone")
        cfg = update_dataclass(cfg, data)
    flags = {
        k: getattr(args, k)
        for k in (
            "size",
            "iters",
            "stages",
            "multiscale",
            "postfilter",
            "device",
            "seed",
            "snapshot_every",
        )
        if getattr(args, k) is not None
    }
    cfg = update_dataclass(cfg, flags)
    weights = {
        "content": args.content_weight,
        "style": args.style_weight,
        "tv": args.tv_weight,
        "photorealism": args.photorealism,
    }
    cfg = update_dataclass(cfg, {"weights": {k: v for k, v in weights.items() if v is not None}})
    if args.postfilter_mode:
        cfg = update_dataclass(cfg, {"post": {"mode": args.postfilter_mode}})
    if args.min_region is not None:
        cfg = update_dataclass(cfg, {"labels": {"min_fraction": args.min_region}})
    backbone_flags = {"name": args.backbone, "weights": args.vgg_weights}
    backbone = update_dataclass(
        backbone, {k: v for k, v in backbone_flags.items() if v is not None}, "backbone"
    )
    return cfg, backbone


def run(args: argparse.Namespace, auto_masks=None) -> int:
    """Run ``dpst stylize`` with mask files, or with ``auto_masks(content, style, cfg)``.

    ``auto_masks`` is called when no mask file is given; it returns ``(content_labels,
    style_labels, report)`` or ``None`` for one region.
    """
    from dataclasses import asdict

    from tqdm import tqdm

    from dpst.errors import InputError
    from dpst.imageio import read_image, write_image, write_json
    from dpst.optim_reference.masks import read_mask
    from dpst.optim_reference.stylize import multiscale_schedule, stylize

    out = Path(args.output)
    cfg, backbone = build_configs(args)
    try:
        cfg.validate()
    except ValueError as err:
        raise InputError(str(err)) from None
    content = read_image(args.content)
    style = read_image(args.style)
    content_labels = style_labels = None
    masks_info: dict = {"source": "none"}
    if bool(args.content_mask) != bool(args.style_mask):
        raise InputError("give --content-mask and --style-mask together, or neither")
    from dpst.optim_reference.stylize import resolve_device
    from dpst.optim_reference.vgg import load_backbone

    try:
        device = resolve_device(cfg.device)
    except ValueError as err:
        raise InputError(str(err)) from None
    # Loaded (the Caffe file fetched on first use) before anything slow, segmentation and
    # optimisation: missing weights then cost one line and nothing else.
    network = load_backbone(backbone, device)
    if args.content_mask:
        content_labels = read_mask(args.content_mask, content.shape[:2])
        style_labels = read_mask(args.style_mask, style.shape[:2])
        masks_info = {"source": "files"}
    elif auto_masks is not None:
        found = auto_masks(content, style, cfg)
        if found is not None:
            content_labels, style_labels, auto_report = found
            masks_info = {"source": "automatic", **auto_report}
    if not args.quiet:
        print(f"masks: {masks_info['source']}")

    snapshot_dir = out.with_name(out.stem + ".snapshots")
    from dpst.optim_reference.stylize import _fit_long_side

    plan = multiscale_schedule(cfg, _fit_long_side(content.shape[:2], cfg.size))
    bar = tqdm(total=sum(n for _, _, n in plan), disable=args.quiet, unit="it", dynamic_ncols=True)

    def callback(event) -> None:
        bar.update(1)
        bar.set_description(f"level {event.level} stage {event.stage}")
        bar.set_postfix({k: f"{v:.3g}" for k, v in event.terms.items()}, refresh=False)
        if cfg.snapshot_every and event.iteration % cfg.snapshot_every == 0:
            from dpst.imageio import from_tensor

            name = f"level{event.level}_stage{event.stage}_{event.iteration:05d}.png"
            write_image(snapshot_dir / name, from_tensor(event.image()))

    try:
        result = stylize(
            content,
            style,
            content_labels,
            style_labels,
            cfg,
            backbone,
            callback=callback,
            tensorboard_dir=args.tensorboard,
            network=network,
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
    write_image(out, result.image)
    write_json(out.with_name(out.name + ".json"), report)
    ident = report["backbone"]
    note = " (RANDOM backbone: not VGG-19's trained weights)" if ident.get("random") else ""
    print(f"wrote {out} and {out.name}.json in {report['seconds']:.1f} s{note}")
    if report["interrupted"]:
        print("interrupted: the result so far was written, marked interrupted")
        return EXIT_INTERRUPTED
    return 0
