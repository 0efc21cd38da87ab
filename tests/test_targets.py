"""``dpst targets``: resume after a kill, two gloo processes, failures recorded, bad lines.

Random backbone, 32 px, 2 iterations: the machinery is under test, not the optimiser.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.commands.exit_codes import EXIT_PROBLEMS
from dpst.train.targets import LOGS_DIR, SUMMARY_FILE, TARGETS_DIR

FAST = ["--backbone", "random", "--size", "32", "--iters", "2", "--no-postfilter", "--quiet"]
SUBPROCESS_TIMEOUT = 300


# `pairs` (the sample manifest) comes from conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    # One thread per process: the CI machine is small and shared.
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _run(args, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


# `python -m dpst ARGS` that, about to start its third pair, says so and waits: two pairs are
# then finished and logged and nothing else is begun, and the test kills it there.
_PAUSE_BEFORE_THIRD_PAIR = textwrap.dedent(
    """
    import sys, time
    from dpst.train import targets
    real, calls = targets.make_target, []
    def make_target(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            print("paused", flush=True)
            time.sleep(SUBPROCESS_TIMEOUT)
        return real(*args, **kwargs)
    targets.make_target = make_target
    from dpst.cli import main
    sys.exit(main(sys.argv[1:]))
    """
).replace("SUBPROCESS_TIMEOUT", str(SUBPROCESS_TIMEOUT))


def _kill_when_paused(args, log: Path) -> int:
    """Run ``dpst ARGS`` under the pausing driver, SIGKILL it once paused: its return code."""
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", _PAUSE_BEFORE_THIRD_PAIR, *args],
            env=_env(), stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        guard = threading.Timer(SUBPROCESS_TIMEOUT, proc.kill)  # never hang the suite
        guard.start()
        try:
            for line in proc.stdout:
                if line.strip() == "paused":
                    proc.send_signal(signal.SIGKILL)
                    break
            return proc.wait()
        finally:
            guard.cancel()
            proc.stdout.close()


def _folder(out: Path) -> Path:
    """The folder of the config the last run in ``out`` used (its config.json is written
    before the first pair)."""
    return out / json.loads((out / "config.json").read_text())["config_hash"]


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / TARGETS_DIR).iterdir())
    }


def _log_lines(out: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((out / LOGS_DIR).glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _ids(manifest: Path) -> list[str]:
    return [json.loads(line)["id"] for line in manifest.read_text().splitlines() if line]


@pytest.mark.slow  # 6 s: a killed subprocess run, then its resume
def test_resume_after_kill_does_nothing_twice(pairs, tmp_path):
    out = tmp_path / "out"
    args = ["targets", str(pairs), "--out", str(out), *FAST]
    returncode = _kill_when_paused(args, tmp_path / "killed.stderr")
    assert returncode == -signal.SIGKILL, (tmp_path / "killed.stderr").read_text()
    folder = _folder(out)
    first = _digests(folder)
    assert len(first) == 4  # two pairs: image and report each
    assert not (out / SUMMARY_FILE).exists()

    assert main(["targets", str(pairs), "--out", str(out), *FAST]) == 0
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (2, 2, 0)
    assert summary["config_hash"] == folder.name
    assert json.loads((folder / SUMMARY_FILE).read_text()) == summary
    after = _digests(folder)
    assert {k: after[k] for k in first} == first  # the finished pairs untouched
    ids = _ids(pairs)
    assert sorted(after) == sorted(f"{i}.{ext}" for i in ids for ext in ("json", "png"))
    assert Counter(line["id"] for line in _log_lines(out)) == Counter(ids)  # once each

    report = json.loads((folder / TARGETS_DIR / f"{ids[0]}.json").read_text())
    assert report["config_hash"] == summary["config_hash"]
    assert report["backbone"]["random"] is True
    assert report["stages"] and all(stage["end"] for stage in report["stages"])
    output_manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [e["id"] for e in output_manifest] == ids
    assert all((out / e["target"]).parent == folder / TARGETS_DIR for e in output_manifest)
    assert (folder / "manifest.jsonl").is_file()

    # Another setting is another config: its targets are made beside, the first untouched.
    assert main(["targets", str(pairs), "--out", str(out), *FAST, "--iters", "1"]) == 0
    redo = json.loads((out / SUMMARY_FILE).read_text())
    assert (redo["done"], redo["skipped"]) == (4, 0)
    assert redo["config_hash"] != folder.name
    assert _digests(out / redo["config_hash"]).keys() == after.keys()
    assert _digests(folder) == after
    # The first settings again: nothing to do, and the output manifest is theirs again.
    assert main(["targets", str(pairs), "--out", str(out), *FAST]) == 0
    again = json.loads((out / SUMMARY_FILE).read_text())
    assert (again["done"], again["skipped"], again["config_hash"]) == (0, 4, folder.name)
    targets = [json.loads(x)["target"] for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(t.startswith(f"{folder.name}/{TARGETS_DIR}/") for t in targets)


def test_targets_of_the_one_folder_layout_are_taken_over_not_made_again(pairs, tmp_path):
    out = tmp_path / "out"
    assert main(["targets", str(pairs), "--out", str(out), *FAST]) == 0
    folder = _folder(out)
    made = _digests(folder)
    (folder / TARGETS_DIR).rename(out / TARGETS_DIR)  # as earlier versions left it
    assert main(["targets", str(pairs), "--out", str(out), *FAST]) == 0
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["done"], summary["skipped"]) == (0, 4)
    assert _digests(folder) == made and not any((out / TARGETS_DIR).iterdir())


@pytest.mark.slow  # 7 s: two DDP processes
def test_two_gloo_processes_make_every_target_exactly_once(pairs, tmp_path):
    out = tmp_path / "out"
    run = _run(
        ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "dpst", "targets", str(pairs), "--out", str(out), *FAST],
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = _log_lines(out)
    ids = _ids(pairs)
    assert Counter(line["id"] for line in lines) == Counter(ids)
    assert {line["rank"] for line in lines} == {0, 1}
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["done"], summary["world_size"], summary["failed"]) == (4, 2, 0)
    folder = _folder(out)
    ranks = {json.loads((folder / TARGETS_DIR / f"{i}.json").read_text())["rank"] for i in ids}
    assert ranks == {0, 1}
    assert "4 done" in run.stdout


def test_corrupt_image_and_bad_lines_are_recorded_and_the_rest_done(pairs, tmp_path, capsys):
    photos = pairs.parent / "photos"
    broken = tmp_path / "broken.png"
    broken.write_bytes((photos / "chelsea.png").read_bytes()[:60])  # truncated PNG
    lines = [
        {
            "id": "good1",
            "content": str(photos / "chelsea.png"),
            "style": str(photos / "rocket.png"),
        },
        {"id": "corrupt", "content": str(broken), "style": str(photos / "coffee.png")},
        '{"id": "half", "content": ',
        {"id": "missing", "content": str(tmp_path / "gone.png"), "style": str(broken)},
        {"id": "good2", "content": str(photos / "coffee.png"), "style": str(photos / "rocket.png")},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    out = tmp_path / "out"

    assert main(["targets", str(manifest), "--out", str(out), *FAST]) == EXIT_PROBLEMS
    err = capsys.readouterr().err
    assert "skipped line 3: not valid JSON" in err
    assert "skipped line 4 (missing): content:" in err and "no such file" in err
    assert "failed corrupt (line 2)" in err
    folder = _folder(out)
    last = err.strip().splitlines()[-1]
    assert last.startswith("dpst targets: finished with failures: 1 pair(s) failed and 2 ")
    assert f"{folder}/summary.json" in last
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["done"], summary["failed"], summary["invalid"]) == (2, 1, 2)
    assert [p["line"] for p in summary["invalid_lines"]] == [3, 4]
    failure = json.loads((folder / "failures" / "corrupt.json").read_text())
    assert failure["line"] == 2 and "not a readable image" in failure["error"]
    assert sorted(p.stem for p in (folder / TARGETS_DIR).glob("*.png")) == ["good1", "good2"]

    # Left alone, the failed pair still counts: the output is not complete.
    args = ["targets", str(manifest), "--out", str(out), *FAST, "--no-retry-failed"]
    assert main(args) == EXIT_PROBLEMS
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["done"], summary["failed"], summary["left_failed"]) == (0, 0, 1)
    assert "1 pair(s) failed" in capsys.readouterr().err

    # Repaired, the failed pair is retried and its failure record goes away; the invalid
    # lines still keep the exit status at 1, and without them it is 0.
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(broken)
    assert main(["targets", str(manifest), "--out", str(out), *FAST]) == EXIT_PROBLEMS
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 2, 0)
    assert not (folder / "failures" / "corrupt.json").exists()
    valid = [x for x in manifest.read_text().splitlines() if '"half"' not in x and "gone" not in x]
    manifest.write_text("\n".join(valid))
    assert main(["targets", str(manifest), "--out", str(out), *FAST]) == 0


def test_config_hash_ignores_the_device_but_not_the_weights():
    from dpst.optim_reference.stylize import StylizeConfig
    from dpst.train.targets import config_hash

    ident = {"name": "vgg19", "sha256": "abc", "path": "/a/vgg.pth", "preprocessing": "caffe"}
    base = config_hash(StylizeConfig(), ident)
    assert config_hash(StylizeConfig(device="cuda:3"), {**ident, "path": "/b/x.pth"}) == base
    assert config_hash(StylizeConfig(), {**ident, "sha256": "abd"}) != base
    assert config_hash(StylizeConfig(iters=999), ident) != base


def test_bad_optimiser_settings_are_one_line_errors(pairs, tmp_path, capsys):
    assert main(["targets", str(pairs), "--out", str(tmp_path), *FAST, "--size", "4"]) == 2
    assert "size must be at least" in capsys.readouterr().err
    assert main(["targets", str(tmp_path / "none.jsonl"), "--out", str(tmp_path), *FAST]) == 2
    assert "no such manifest" in capsys.readouterr().err


def test_sighup_stops_the_run_and_writes_the_summary(pairs, tmp_path):
    """A closed terminal (or SIGTERM) stops dpst targets as Ctrl-C does: summary, 129."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpst", "targets", str(pairs), "--out", str(out),
         "--backbone", "random", "--size", "32", "--iters", "100000", "--no-postfilter",
         "--quiet"],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while not (out / "config.json").exists():  # written just before the first pair
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # well into the first pair's 100000 iterations
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 129, err[-2000:]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["interrupted"] and summary["done"] == 0
