"""``dpst train`` and ``dpst eval``: learning, exact resume, DDP on gloo, SIGTERM, bad input.

The tiny run of :mod:`dpst.train.tiny` (a 32 px generator, 32 px crops, the random backbone;
``bench.faults`` drills the same one): the machinery is under test, not the model's quality.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dpst.cli import main
from dpst.config import update_dataclass
from dpst.data.manifest import read_manifest, write_manifest
from dpst.data.pairs import write_label_map
from dpst.errors import InputError
from dpst.imageio import read_image, write_image
from dpst.models.checkpoint import save_checkpoint
from dpst.models.generator import Generator
from dpst.train.config import TrainConfig, lr_factor
from dpst.train.evaluate import image_metrics
from dpst.train.loop import train
from dpst.train.resume_settings import FREE_ON_RESUME, changed_settings
from dpst.train.run_checkpoints import PREVIOUS
from dpst.train.sampler import epoch_batches
from dpst.train.skeleton import METRICS_FILE, SUMMARY_FILE
from dpst.train.state import (
    LAST_CHECKPOINT,
    TrainState,
    capture_rng,
    load_train_checkpoint,
    restore_rng,
    save_train_checkpoint,
)
from dpst.train.tiny import tiny_train_settings

SUBPROCESS_TIMEOUT = 240
TINY = tiny_train_settings()
# One fixed sample every step: no crop, no flip, no colour jitter.
FIXED = {"augment": {"size": [32, 32], "crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0],
                     "hflip": 0.0, "photometric": 0.0}}  # fmt: skip


def tiny_config(**changes) -> TrainConfig:
    return update_dataclass(update_dataclass(TrainConfig(), TINY), changes)


# `pairs` (the sample manifest) comes from conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def _subset(manifest: Path, out: Path, count: int, **changes) -> Path:
    entries, _ = read_manifest(manifest)
    write_manifest(out, [replace(e, **changes) for e in entries[:count]])
    return out


def _with_target(entry, path: Path):
    """The entry with a stand-in target: its content, darkened (the content's shape)."""
    write_image(path, read_image(entry.content) * 0.8)
    return replace(entry, target=path)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _config_file(path: Path, **changes) -> Path:
    path.write_text(json.dumps({**TINY, **changes}))
    return path


def _one_line_error(capsys, code: int, *needles: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    assert all(n in err[-1] for n in needles), err[-1]


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = update_dataclass(TrainConfig(), {"steps": 100, "warmup_steps": 10, "min_lr_ratio": 0.1})
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(100, cfg) == pytest.approx(0.1)
    values = [lr_factor(s, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_every_rank_gets_as_many_batches_and_every_pair_is_seen():
    for n, batch, world in ((5, 2, 2), (1, 4, 2), (8, 3, 3)):
        shards = [epoch_batches(n, batch, 0, 1, r, world) for r in range(world)]
        assert len({len(s) for s in shards}) == 1
        seen = {i for s in shards for b in s for i in b}
        assert seen == set(range(n))
    assert epoch_batches(6, 2, 0, 0) != epoch_batches(6, 2, 0, 1)  # reshuffled per epoch
    assert epoch_batches(6, 2, 3, 2) == epoch_batches(6, 2, 3, 2)


@pytest.mark.parametrize("log_ratio", [False, True])
def test_twenty_steps_on_one_pair_lower_the_objective(pairs, tmp_path, log_ratio):
    manifest = _subset(pairs, tmp_path / "one.jsonl", 1)
    logs: dict[int, dict] = {}
    cfg = tiny_config(steps=20, lr=5e-3, schedule="constant", distill_weight=0.0,
                      log_ratio=log_ratio, range_penalty=0.0, **FIXED)  # fmt: skip
    summary = train(cfg, manifest, tmp_path / "run", progress=False,
                    on_step=lambda s, logged: logs.__setitem__(s, logged))  # fmt: skip
    assert summary["finished"] and summary["steps"] == 20
    first, last = logs[1]["objective/total"], logs[20]["objective/total"]
    assert last < 0.9 * first, (first, last)
    ratio = logs[20]["objective_ratio"]  # one pair, no distillation: the loss is its ratio
    assert logs[20]["loss"] == pytest.approx(np.log(ratio) if log_ratio else ratio, rel=1e-5)
    assert all(np.isfinite(v["loss"]) for v in logs.values())
    lines = (tmp_path / "run" / METRICS_FILE).read_text().splitlines()
    assert len(lines) == 20
    assert (tmp_path / "run" / "tensorboard").is_dir()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["backbone"]["random"]


def test_the_loss_adds_the_weighted_grid_roughness_and_range_overshoot(pairs, tmp_path):
    manifest = _subset(pairs, tmp_path / "one.jsonl", 1)
    logs: dict[int, dict] = {}
    # lr 0.5 throws the output far out of [0, 1] within a step: the overshoot term is live.
    cfg = tiny_config(steps=3, lr=0.5, distill_weight=0.0, grid_smoothness=5.0,
                      range_penalty=7.0, **FIXED)  # fmt: skip
    train(cfg, manifest, tmp_path / "run", progress=False,
          on_step=lambda s, logged: logs.__setitem__(s, logged))  # fmt: skip
    last = logs[3]
    assert last["grid_roughness"] > 0  # the first steps moved the grid off the identity
    assert last["range_overshoot"] > 0
    expected = (last["objective_ratio"] + 5.0 * last["grid_roughness"]
                + 7.0 * last["range_overshoot"])  # fmt: skip
    assert last["loss"] == pytest.approx(expected, rel=1e-5)


def test_init_from_starts_a_new_run_from_another_runs_weights(pairs, tmp_path):
    manifest = _subset(pairs, tmp_path / "one.jsonl", 1)
    straight: dict[int, float] = {}
    cfg = tiny_config(steps=4, lr=5e-3, schedule="constant", **FIXED)
    train(cfg, manifest, tmp_path / "a", progress=False,
          on_step=lambda s, logged: straight.__setitem__(s, logged["loss"]))  # fmt: skip
    train(update_dataclass(cfg, {"steps": 3}), manifest, tmp_path / "b", progress=False)
    tuned: dict[int, float] = {}
    start = str(tmp_path / "b" / LAST_CHECKPOINT)
    summary = train(update_dataclass(cfg, {"steps": 1, "init_from": start}), manifest,
                    tmp_path / "c", progress=False,
                    on_step=lambda s, logged: tuned.__setitem__(s, logged["loss"]))  # fmt: skip
    # One fixed sample: the new run's first loss is the loss after the old run's 3 steps.
    assert summary["resumed_from_step"] == 0
    assert tuned[1] == pytest.approx(straight[4], rel=1e-6)
    assert tuned[1] != pytest.approx(straight[1], rel=1e-3)
    other = update_dataclass(cfg, {"init_from": start, "model": {"head_width": 16}})
    with pytest.raises(InputError, match="another config"):
        train(other, manifest, tmp_path / "d", progress=False)


def test_resume_after_step_10_gives_the_same_step_11_loss(pairs, tmp_path):
    # Two pairs with targets: both loss terms, shuffled epochs and augmentation all count.
    manifest = _subset(pairs, tmp_path / "two.jsonl", 2)
    entries, _ = read_manifest(manifest)
    write_manifest(manifest, [_with_target(entries[0], tmp_path / "t.png"), entries[1]])
    cfg = tiny_config(steps=12, lr=1e-2)
    straight: dict[int, float] = {}
    train(cfg, manifest, tmp_path / "a", progress=False,
          on_step=lambda s, logged: straight.__setitem__(s, logged["loss"]))  # fmt: skip
    resumed: dict[int, float] = {}
    first = train(cfg, manifest, tmp_path / "b", stop_at=10, progress=False,
                  on_step=lambda s, logged: resumed.__setitem__(s, logged["loss"]))  # fmt: skip
    assert first["steps"] == 10 and not first["finished"]
    _, state = load_train_checkpoint(tmp_path / "b" / LAST_CHECKPOINT)
    assert state.step == 10 and state.interrupted
    second = train(cfg, manifest, tmp_path / "b", progress=False,
                   on_step=lambda s, logged: resumed.__setitem__(s, logged["loss"]))  # fmt: skip
    assert second["resumed_from_step"] == 10 and second["finished"]
    assert resumed[11] == straight[11]  # exact: same data, same state
    assert resumed[12] == straight[12]
    lines = (tmp_path / "b" / METRICS_FILE).read_text().splitlines()
    logged = [json.loads(line)["step"] for line in lines]
    assert logged == list(range(1, 13))


@pytest.mark.slow  # 12 s: two DDP processes
def test_two_gloo_processes_train_together(pairs, tmp_path):
    config = _config_file(tmp_path / "tiny.json")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "dpst", "train", str(pairs), "--run-dir", str(tmp_path / "run"),
         "--config", str(config), "--steps", "3", "--quiet"],
        env=_env(), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / SUMMARY_FILE).read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3 and summary["finished"]
    _, state = load_train_checkpoint(tmp_path / "run" / LAST_CHECKPOINT)
    assert state.step == 3


@pytest.mark.slow  # 7 s: a signal to a training subprocess
def test_sigterm_writes_a_checkpoint_and_exits_interrupted(pairs, tmp_path):
    config = _config_file(tmp_path / "tiny.json")
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpst", "train", str(pairs), "--run-dir", str(run_dir),
         "--config", str(config), "--steps", "100000", "--quiet"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while not (run_dir / METRICS_FILE).exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert summary["interrupted"] and not summary["finished"]
    _, state = load_train_checkpoint(run_dir / LAST_CHECKPOINT)
    assert state.step == summary["steps"] >= 1 and state.interrupted


class _Opaque:
    """Stands for any pickled object a checkpoint might carry besides tensors."""


def test_corrupt_checkpoint_is_one_whole_line_that_never_advises_unsafe_loading(
    pairs, tmp_path, capsys
):
    bad, pickled = tmp_path / "bad.pt", tmp_path / "pickled.pt"
    bad.write_bytes(b"not a checkpoint at all")
    torch.save({"format": "dpst-generator", "extra": _Opaque()}, pickled)
    for path, why in ((bad, "not a PyTorch checkpoint"), (pickled, "could run code")):
        code = main(["eval", str(path), str(pairs)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "weights_only" not in err, err
        assert str(path) in err and why in err
        assert err.rstrip().endswith("use another checkpoint, or write this one again"), err
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LAST_CHECKPOINT).write_bytes(b"\x80\x02truncated")
    config = _config_file(tmp_path / "tiny.json")
    code = main(["train", str(pairs), "--run-dir", str(run_dir), "--config", str(config),
                 "--steps", "2", "--quiet"])  # fmt: skip
    _one_line_error(capsys, code, LAST_CHECKPOINT, "truncated or damaged", "another --run-dir")


def test_a_damaged_last_checkpoint_resumes_exactly_from_the_one_before(pairs, tmp_path, capsys):
    manifest = _subset(pairs, tmp_path / "two.jsonl", 2)
    cfg = tiny_config(steps=4, lr=1e-2, checkpoint_every=1)
    first: dict[int, float] = {}
    train(cfg, manifest, tmp_path / "run", stop_at=3, progress=False,
          on_step=lambda s, logged: first.__setitem__(s, logged["loss"]))  # fmt: skip
    run_dir = tmp_path / "run"
    assert load_train_checkpoint(run_dir / PREVIOUS)[1].step == 2  # the last two are kept
    data = (run_dir / LAST_CHECKPOINT).read_bytes()
    (run_dir / LAST_CHECKPOINT).write_bytes(data[: len(data) // 2])  # a full disk, say
    capsys.readouterr()
    again: dict[int, float] = {}
    summary = train(cfg, manifest, run_dir, progress=False,
                    on_step=lambda s, logged: again.__setitem__(s, logged["loss"]))  # fmt: skip
    warning = capsys.readouterr().err.strip()
    assert warning.count("\n") == 0 and "weights_only" not in warning
    assert f"{run_dir / LAST_CHECKPOINT} is not a readable checkpoint" in warning
    assert f"resuming from {run_dir / PREVIOUS}" in warning
    assert summary["resumed_from_step"] == 2 and summary["finished"]
    assert again[3] == first[3]  # exact: the state of step 2, and step 3 done again
    # The damaged file was overwritten, not kept over the good one: both load now.
    assert load_train_checkpoint(run_dir / PREVIOUS)[1].step == 3
    assert load_train_checkpoint(run_dir / LAST_CHECKPOINT)[1].step == 4

    for name in (LAST_CHECKPOINT, PREVIOUS):
        (run_dir / name).write_bytes(b"")
    with pytest.raises(InputError) as error:
        train(cfg, manifest, run_dir, progress=False)
    message = str(error.value)
    assert str(run_dir / LAST_CHECKPOINT) in message and str(run_dir / PREVIOUS) in message
    assert "another --run-dir" in message and "\n" not in message


def _train_cli(manifest: Path, run_dir: Path, *flags: str) -> list[str]:
    return ["train", str(manifest), "--run-dir", str(run_dir), "--quiet", *flags]


def test_a_changed_setting_on_resume_is_refused_unless_reconfigured_and_recorded(
    pairs, tmp_path, capsys
):
    manifest = _subset(pairs, tmp_path / "one.jsonl", 1)
    run_dir = tmp_path / "run"
    config = _config_file(tmp_path / "tiny.json", steps=4)
    assert main(_train_cli(manifest, run_dir, "--config", str(config), "--stop-at", "1")) == 0
    capsys.readouterr()

    code = main(_train_cli(manifest, run_dir, "--lr", "0.05", "--steps", "6"))
    _one_line_error(capsys, code, "lr 0.0002 -> 0.05", "steps 4 -> 6", "--reconfigure")
    assert load_train_checkpoint(run_dir / LAST_CHECKPOINT)[1].step == 1  # nothing run

    # Without flags the run takes its own settings (the tiny model, 4 steps); how often it
    # logs and how many threads it uses may change freely.
    code = main(_train_cli(manifest, run_dir, "--stop-at", "2", "--log-every", "2",
                           "--threads", "1"))  # fmt: skip
    assert code == 0, capsys.readouterr().err
    state = load_train_checkpoint(run_dir / LAST_CHECKPOINT)[1]
    assert state.step == 2 and state.config["steps"] == 4 and state.config["log_every"] == 2
    assert state.config["model"]["working_size"] == 32

    code = main(_train_cli(manifest, run_dir, "--lr", "0.05", "--reconfigure"))
    assert code == 0
    printed = capsys.readouterr().out
    assert "reconfigured at step 2: lr 0.0002 -> 0.05" in printed
    state = load_train_checkpoint(run_dir / LAST_CHECKPOINT)[1]
    assert state.step == 4 and state.config["lr"] == 0.05
    history = [json.loads(x) for x in (run_dir / "config_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [0, 1, 2]
    assert [h["reconfigured"] for h in history] == [{}, {}, {"lr": {"old": 2e-4, "new": 0.05}}]
    assert history[0]["config"]["lr"] == 2e-4 and history[2]["config"]["lr"] == 0.05
    header = json.loads((run_dir / "config.json").read_text())
    assert header["config"]["lr"] == 0.05 and header["reconfigured"] == {"lr": [2e-4, 0.05]}


def test_only_settings_that_do_not_change_what_is_learnt_are_free_on_resume():
    old = TrainConfig().to_dict()
    free = {"threads": 3, "num_workers": 2, "device": "cpu", "log_every": 50, "val_every": 7,
            "image_every": 0, "checkpoint_every": 9, "check_files": False}  # fmt: skip
    assert set(free) | {"backbone.download"} == FREE_ON_RESUME
    assert changed_settings(old, {**old, **free}) == {}
    new = update_dataclass(TrainConfig(), {"steps": 9, "model": {"head_width": 8}})
    assert changed_settings(old, new.to_dict()) == {
        "steps": [20000, 9],
        "model.head_width": [TrainConfig().model.head_width, 8],
    }
    # A setting newer than the checkpoint cannot have been chosen by it.
    assert changed_settings({"lr": 1e-3}, {**old, "lr": 1e-3}) == {}


def _bad_mask_manifest(pairs: Path, tmp_path: Path, labels: np.ndarray, style=None) -> Path:
    mask = tmp_path / "mask.png"
    write_label_map(mask, labels)
    changes = {"content_mask": mask}
    if style is not None:
        write_label_map(tmp_path / "style_mask.png", style)
        changes["style_mask"] = tmp_path / "style_mask.png"
    return _subset(pairs, tmp_path / "bad.jsonl", 1, **changes)


def test_mismatched_label_map_is_one_line(pairs, tmp_path, capsys):
    manifest = _bad_mask_manifest(pairs, tmp_path, np.zeros((40, 10), dtype=np.int64))
    config = _config_file(tmp_path / "tiny.json")
    code = main(["train", str(manifest), "--run-dir", str(tmp_path / "run"),
                 "--config", str(config), "--steps", "2", "--quiet"])  # fmt: skip
    _one_line_error(capsys, code, "content_mask", "aspect ratio")


def test_labels_outside_the_trained_range_are_one_line(pairs, tmp_path, capsys):
    # Label 7 covers both photos, so the label policy keeps it (an orphan content label
    # would be remapped to a style label, and a tiny region merged, both into range).
    entry = read_manifest(pairs)[0][0]
    sizes = [Image.open(p).size[::-1] for p in (entry.content, entry.style)]
    labels = [np.full(size, 7, dtype=np.int64) for size in sizes]
    manifest = _bad_mask_manifest(pairs, tmp_path, *labels)
    config = _config_file(tmp_path / "tiny.json")  # max_labels 4
    code = main(["train", str(manifest), "--run-dir", str(tmp_path / "run"),
                 "--config", str(config), "--steps", "2", "--quiet"])  # fmt: skip
    _one_line_error(capsys, code, "label 7", "trained range")

    checkpoint = tmp_path / "g.pt"
    save_checkpoint(checkpoint, Generator(tiny_config().model))
    code = main(["eval", str(checkpoint), str(manifest), "--backbone", "random", "--size", "32"])
    _one_line_error(capsys, code, "label 7", "trained range")


def test_eval_writes_table_csv_and_plot(pairs, tmp_path, capsys):
    cfg = tiny_config(steps=2)
    train(cfg, pairs, tmp_path / "run", progress=False)
    entries, _ = read_manifest(pairs)
    # One pair with a stored target (a stand-in), one optimised on the spot.
    manifest = tmp_path / "eval.jsonl"
    write_manifest(manifest, [_with_target(entries[0], tmp_path / "t.png"), entries[1]])
    out = tmp_path / "eval"
    code = main(["eval", str(tmp_path / "run" / LAST_CHECKPOINT), str(manifest), "--out",
                 str(out), "--size", "32", "--iters", "2", "--repeats", "1"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "J(G)/J(opt)" in printed and "mean" in printed and "backbone: random" in printed
    with open(out / "eval.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [entries[0].id, entries[1].id, "mean"]
    assert [r["opt_source"] for r in rows[:2]] == ["target", "optimiser"]
    for row in rows[:2]:
        ratio = float(row["objective_ratio"])
        assert ratio == pytest.approx(float(row["gen_total"]) / float(row["opt_total"]))
        assert 0 < float(row["ssim"]) <= 1 and float(row["gen_seconds"]) > 0
    report = json.loads((out / "eval.json").read_text())
    assert report["backbone"]["random"] and report["trained_steps"] == 2
    with Image.open(out / "eval.png") as image:
        assert image.size[0] > 200 and image.size[1] > 50


def test_eval_held_out_takes_only_the_pairs_training_held_out(pairs, tmp_path, capsys):
    cfg = tiny_config(steps=1, val_pairs=1)
    train(cfg, pairs, tmp_path / "run", progress=False)
    held = json.loads((tmp_path / "run" / "config.json").read_text())["validation_ids"]
    assert len(held) == 1
    out = tmp_path / "eval"
    code = main(["eval", str(tmp_path / "run" / LAST_CHECKPOINT), str(pairs), "--held-out",
                 "--out", str(out), "--size", "32", "--iters", "2", "--repeats", "1"])  # fmt: skip
    assert code == 0
    with open(out / "eval.csv", newline="") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == [*held, "mean"]

    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, Generator(cfg.model))
    code = main(["eval", str(plain), str(pairs), "--held-out", "--size", "32"])
    _one_line_error(capsys, code, "records no held-out pairs")


def test_image_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    a = rng.random((16, 16, 3), dtype=np.float32)
    b = np.clip(a + 0.1, 0, 1)
    same = image_metrics(a, a, a)
    assert same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0)
    mse = float(np.mean((a - b) ** 2))
    assert image_metrics(a, b, a)["psnr"] == pytest.approx(10 * np.log10(1 / mse), rel=1e-5)


def test_random_states_round_trip_through_a_checkpoint(tmp_path):
    state = TrainState(step=3, rng=capture_rng())
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    save_train_checkpoint(tmp_path / "c.pt", Generator(tiny_config().model), state)
    _, loaded = load_train_checkpoint(tmp_path / "c.pt")
    restore_rng(loaded.rng)
    again = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2] and loaded.step == 3
