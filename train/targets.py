"""Optimiser targets for every pair of a manifest: sharded, resumable, failure-tolerant.

Layout of the output folder, one sub-folder per config (the first 16 hex digits of a hash of
the settings that decide a target's pixels, :func:`config_hash`), so that a run with other
settings writes beside the earlier targets and never over them::

    OUT/<hash>/targets/<id>.png   the optimiser's output
    OUT/<hash>/targets/<id>.json  its report: per-term losses, config hash, backbone identity
    OUT/<hash>/failures/<id>.json why a pair failed (removed once it succeeds)
    OUT/<hash>/manifest.jsonl     the input manifest's pairs with targets, ``target`` filled in
    OUT/<hash>/config.json        the resolved config, its hash and the backbone's identity
    OUT/<hash>/summary.json       that config's last run: done, skipped, failed, invalid, time
    OUT/logs/<run>.rank<r>.jsonl  one line per pair each rank finished, in order
    OUT/manifest.jsonl, OUT/config.json, OUT/summary.json   copies of the last run's

A pair is done when its report says so for the same config hash and the same inputs; the
report is written after the image, both atomically, so a killed run leaves either a finished
pair or nothing that counts. Under ``torchrun`` rank 0 plans (which pairs are pending) and
every rank takes every ``world``-th pending pair; several nodes need a shared ``OUT``.
Pairs finished in the earlier layout (``OUT/targets/<id>.*``) with the same config are moved
into their config's folder, not made again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from dpst.data.manifest import PATH_KEYS, Entry, Problem, read_manifest, write_manifest
from dpst.hashing import file_sha256
from dpst.imageio import write_json

TARGETS_DIR = "targets"
FAILURES_DIR = "failures"
LOGS_DIR = "logs"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
OUTPUT_MANIFEST = "manifest.jsonl"
# Config fields that do not change the result and so stay out of the config hash.
UNHASHED_FIELDS = ("device", "snapshot_every")
# Backbone identity fields that say which weights were used (not where they were found).
HASHED_BACKBONE_FIELDS = ("name", "sha256", "seed", "preprocessing", "format")
STATUS_DONE = "done"
STATUS_FAILED = "failed"


@dataclass
class RunStats:
    """What one rank did in one run."""

    done: int = 0
    failed: int = 0
    seconds: float = 0.0  # time spent in pairs
    failures: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False


def config_hash(config, backbone_identity: dict[str, Any]) -> str:
    """First 16 hex digits of SHA-256 over the settings that decide a target's pixels.

    ``config`` is a StylizeConfig; the device and snapshot settings are left out, and the
    backbone counts by its weights' hash (or random seed), not by where its file lives.
    """
    settings = asdict(config)
    for key in UNHASHED_FIELDS:
        settings.pop(key, None)
    ident = {k: backbone_identity.get(k) for k in HASHED_BACKBONE_FIELDS}
    blob = json.dumps({"config": settings, "backbone": ident}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    return file_sha256(path)[:16]


def pair_record(entry: Entry, base: Path) -> dict[str, str]:
    """The pair's inputs as the manifest names them (relative paths; target left out)."""
    rec = entry.to_json(base)
    return {k: rec[k] for k in ("id", *PATH_KEYS) if k in rec and k != "target"}


def config_dir(out: Path, cfg_hash: str) -> Path:
    """Where one config's targets, failures, manifest and summary live."""
    return out / cfg_hash


def report_path(folder: Path, pair_id: str) -> Path:
    """``folder`` is a config's folder (:func:`config_dir`), as in the functions below."""
    return folder / TARGETS_DIR / f"{pair_id}.json"


def image_path(folder: Path, pair_id: str) -> Path:
    return folder / TARGETS_DIR / f"{pair_id}.png"


def failure_path(folder: Path, pair_id: str) -> Path:
    return folder / FAILURES_DIR / f"{pair_id}.json"


def is_done(folder: Path, entry: Entry, base: Path, cfg_hash: str) -> bool:
    """The pair has a finished target in ``folder`` for this config hash and these inputs."""
    try:
        report = json.loads(report_path(folder, entry.id).read_text())
    except (OSError, ValueError):
        return False
    return (
        report.get("status") == STATUS_DONE
        and report.get("config_hash") == cfg_hash
        and report.get("pair") == pair_record(entry, base)
        and image_path(folder, entry.id).is_file()
    )


def adopt_earlier_layout(out: Path, entry: Entry, base: Path, cfg_hash: str) -> bool:
    """Move a pair finished for this config in the one-folder layout of earlier versions
    (``OUT/targets/<id>.*``) into its config's folder; whether it did."""
    if not is_done(out, entry, base, cfg_hash):
        return False
    folder = config_dir(out, cfg_hash)
    (folder / TARGETS_DIR).mkdir(parents=True, exist_ok=True)
    # The image first: the report is what makes a pair count as done.
    os.replace(image_path(out, entry.id), image_path(folder, entry.id))
    os.replace(report_path(out, entry.id), report_path(folder, entry.id))
    return True


def missing_files(entry: Entry) -> list[str]:
    """Inputs that do not exist (cheap: no decoding; corrupt files fail when processed)."""
    return [
        f"{key}: {path}: no such file"
        for key in PATH_KEYS
        if key != "target" and (path := getattr(entry, key)) is not None and not path.is_file()
    ]


@dataclass
class Plan:
    """Rank 0's view of the work, shared with every rank."""

    run_id: str
    pending: list[int]  # indices into the manifest's entries
    skipped: int  # already done with this config
    invalid: list[dict[str, Any]]  # manifest lines skipped, with their errors
    entries: int
    left_failed: int = 0  # failed in an earlier run and left alone (retry_failed off)


def make_plan(
    entries: list[Entry],
    problems: list[Problem],
    out: Path,
    base: Path,
    cfg_hash: str,
    retry_failed: bool = True,
) -> Plan:
    invalid = [p.to_json() for p in problems]
    pending: list[int] = []
    skipped = left_failed = 0
    folder = config_dir(out, cfg_hash)
    for index, entry in enumerate(entries):
        missing = missing_files(entry)
        if missing:
            invalid.append(Problem(entry.line, "; ".join(missing), entry.id).to_json())
        elif is_done(folder, entry, base, cfg_hash) or adopt_earlier_layout(
            out, entry, base, cfg_hash
        ):
            skipped += 1
        elif not retry_failed and failure_path(folder, entry.id).is_file():
            left_failed += 1
        else:
            pending.append(index)
    invalid.sort(key=lambda p: p["line"])
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    return Plan(run_id, pending, skipped, invalid, len(entries), left_failed)


def make_target(
    entry: Entry,
    base: Path,
    folder: Path,
    config,
    backbone,
    cfg_hash: str,
    context: dict,
    network=None,
) -> dict[str, Any]:
    """Run the optimiser on one pair, write ``<id>.png`` then ``<id>.json`` into the config's
    ``folder``; the report.

    Raises on any failure (the caller records it). An interrupted optimisation writes
    nothing and raises KeyboardInterrupt.
    """
    from dpst.imageio import read_image, write_image
    from dpst.labels.mask_files import read_mask
    from dpst.optim_reference.stylize import stylize

    t0 = time.perf_counter()
    content = read_image(entry.content)
    style = read_image(entry.style)
    content_labels = style_labels = None
    if entry.has_masks:
        content_labels = read_mask(entry.content_mask, content.shape[:2])
        style_labels = read_mask(entry.style_mask, style.shape[:2])
    result = stylize(
        content, style, content_labels, style_labels, config, backbone, network=network
    )
    report = result.report
    if report.get("interrupted") or report.get("cancelled"):
        raise KeyboardInterrupt
    report["config"]["backbone"] = asdict(backbone)
    inputs = {
        k: file_digest(getattr(entry, k))
        for k in PATH_KEYS
        if k != "target" and getattr(entry, k) is not None
    }
    report.update(
        {
            "status": STATUS_DONE,
            "id": entry.id,
            "config_hash": cfg_hash,
            "pair": pair_record(entry, base),
            "inputs_sha256": inputs,
            "target": image_path(folder, entry.id).name,
            "pair_seconds": round(time.perf_counter() - t0, 3),
            **context,
        }
    )
    write_image(image_path(folder, entry.id), result.image)
    write_json(report_path(folder, entry.id), report)
    failure_path(folder, entry.id).unlink(missing_ok=True)
    return report


def record_failure(
    folder: Path, entry: Entry, err: BaseException, cfg_hash: str, context: dict
):  # fmt: skip
    """Write ``failures/<id>.json`` into the config's ``folder``; returns the record."""
    record = {
        "id": entry.id,
        "line": entry.line,
        "error": f"{type(err).__name__}: {err}".strip(),
        "traceback": traceback.format_exc(limit=-8).splitlines()[-12:],
        "config_hash": cfg_hash,
        **context,
    }
    write_json(failure_path(folder, entry.id), record)
    return record


def run_shard(
    entries: list[Entry],
    indices: list[int],
    base: Path,
    folder: Path,
    config,
    backbone,
    cfg_hash: str,
    context: dict,
    log_path: Path,
    network=None,
) -> RunStats:
    """Process this rank's pairs in order into the config's ``folder``; failures are
    recorded and the loop goes on."""
    stats = RunStats()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        for index in indices:
            entry = entries[index]
            t0 = time.perf_counter()
            try:
                make_target(entry, base, folder, config, backbone, cfg_hash, context, network)
                status = STATUS_DONE
                stats.done += 1
            except KeyboardInterrupt:
                stats.interrupted = True
                break
            except Exception as err:  # any failure of one pair must not stop the others
                record = record_failure(folder, entry, err, cfg_hash, context)
                stats.failures.append({k: record[k] for k in ("id", "line", "error")})
                status = STATUS_FAILED
                stats.failed += 1
            seconds = time.perf_counter() - t0
            stats.seconds += seconds
            line = {
                "id": entry.id,
                "status": status,
                "seconds": round(seconds, 3),
                "rank": context["rank"],
                "time": time.time(),
            }
            log.write(json.dumps(line) + "\n")
            log.flush()
    return stats


def write_output_manifest(out: Path, entries: list[Entry], base: Path, cfg_hash: str) -> int:
    """``OUT/<hash>/manifest.jsonl`` and its copy ``OUT/manifest.jsonl``: every pair with a
    finished target of this config, ``target`` filled in."""
    folder = config_dir(out, cfg_hash)
    done = [
        replace(e, target=image_path(folder, e.id).resolve())
        for e in entries
        if is_done(folder, e, base, cfg_hash)
    ]
    for where in (folder, out):
        write_manifest(where / OUTPUT_MANIFEST, done)
    return len(done)


def load_manifest(path: Path) -> tuple[list[Entry], list[Problem], Path]:
    entries, problems = read_manifest(path)
    return entries, problems, path.resolve().parent


def summarise(plan: Plan, stats: list[RunStats], seconds: float, world: int) -> dict[str, Any]:
    done = sum(s.done for s in stats)
    return {
        "run_id": plan.run_id,
        "entries": plan.entries,
        "done": done,
        "skipped": plan.skipped,
        "failed": sum(s.failed for s in stats),
        "left_failed": plan.left_failed,
        "invalid": len(plan.invalid),
        "seconds": round(seconds, 3),
        "pairs_per_hour": round(done * 3600 / seconds, 2) if seconds > 0 and done else 0.0,
        "world_size": world,
        "interrupted": any(s.interrupted for s in stats),
        "failures": [f for s in stats for f in s.failures],
        "invalid_lines": plan.invalid,
        "host": socket.gethostname(),
    }


def run_targets(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    config,
    backbone,
    *,
    retry_failed: bool = True,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Make the target of every pending pair of ``manifest`` into ``out``'s folder for this
    config; see the module doc.

    Call it in every rank (under torchrun) or in one plain process. Returns the run summary
    on rank 0 (also written to ``OUT/<hash>/summary.json`` and ``OUT/summary.json``), None on
    other ranks.
    """
    from dpst.optim_reference.vgg import load_backbone
    from dpst.train import dist
    from dpst.train.progress import LogProgress

    out = Path(out)
    manifest = Path(manifest)
    config.validate()
    t0 = time.perf_counter()
    # Every rank reads the manifest and the backbone's identity before joining the group, so
    # a user error stops every rank alike instead of leaving the others waiting for rank 0.
    entries, problems, base = load_manifest(manifest)
    # Loaded once per rank and reused for every pair (real VGG-19 weights are ~550 MB).
    net, identity = load_backbone(backbone, "cpu")
    cfg_hash = config_hash(config, identity)
    folder = config_dir(out, cfg_hash)
    ctx = dist.setup(use_cuda=_wants_cuda(config))
    try:
        if ctx.device is not None:
            config = replace(config, device=ctx.device)
        plan = None
        if ctx.is_main:
            plan = make_plan(entries, problems, out, base, cfg_hash, retry_failed)
            header = {
                "config_hash": cfg_hash,
                "config": {**asdict(config), "backbone": asdict(backbone)},
                "backbone": identity,
                "manifest": str(manifest.resolve()),
            }
            for where in (folder, out):  # the config's own record, and the last run's
                write_json(where / CONFIG_FILE, header)
        plan = dist.broadcast(plan, ctx)
        mine = plan.pending[ctx.rank :: ctx.world]
        context = {
            "rank": ctx.rank,
            "world_size": ctx.world,
            "host": socket.gethostname(),
            "run_id": plan.run_id,
        }
        log_stem = out / LOGS_DIR / plan.run_id
        bar = LogProgress(log_stem, len(plan.pending), progress) if ctx.is_main else None
        try:
            stats = run_shard(
                entries,
                mine,
                base,
                folder,
                config,
                backbone,
                cfg_hash,
                context,
                log_stem.with_name(f"{plan.run_id}.rank{ctx.rank}.jsonl"),
                network=(net, identity),
            )
            all_stats = dist.all_gather(stats, ctx)
        finally:
            if bar is not None:
                bar.close()
        if not ctx.is_main:
            return None
        summary = summarise(plan, all_stats, time.perf_counter() - t0, ctx.world)
        summary["config_hash"] = cfg_hash
        summary["folder"] = str(folder)
        summary["with_targets"] = write_output_manifest(out, entries, base, cfg_hash)
        for where in (folder, out):
            write_json(where / SUMMARY_FILE, summary)
        return summary
    finally:
        dist.shutdown(ctx)


def _wants_cuda(config) -> bool:
    import torch

    return config.device in ("auto", "cuda") and torch.cuda.is_available()
