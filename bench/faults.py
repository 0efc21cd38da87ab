"""Every fault case of issues 18 and 25 (items numbered 25.N), rerun in one go: no traceback,
no lost file, the exit code documented.

    python -m bench.faults                 # every case (a few minutes: training, targets)
    python -m bench.faults --quick         # without the cases marked slow
    python -m bench.faults --only train --keep --json faults.json

Each case runs ``python -m dpst ...`` as a user would, in a temporary folder of tiny generated
images (no shared data, no network: ``DPST_OFFLINE=1``, empty weight caches, its own HOME and
TMPDIR), and prints one row: the case, the command, the exit code expected (from
:mod:`dpst.commands.exit_codes`, the codes the README's "Exit codes" table states) and the
one seen, whether a traceback was printed, whether a file was lost (an input replaced or
removed, a result not written or not rescued) and the verdict. A case that cannot be set up
here is skipped with its reason (a full disk is a tmpfs this script mounts, as root; a user
who cannot read every folder is root without that capability, through ``setpriv``). The
script exits 1 when any case fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import REPO_ROOT
from dpst.commands.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEMS, EXIT_USER_ERROR
from dpst.train.tiny import tiny_train_settings

TRACEBACK = "Traceback (most recent call last)"
TIMEOUT = 300
SIGTERM_CODE, SIGHUP_CODE = 128 + signal.SIGTERM, 128 + signal.SIGHUP
# A command that would download must say so at once: the old behaviour was ~25 s of retries.
QUICK_EXIT_SECONDS = 60
GUARD_MARK = "faults-socket-guard: connection attempted"
# Run dpst with every outgoing connection (and name lookup) refused and reported.
SOCKET_GUARD = f"""
import runpy, socket, sys
def _refuse(*args, **kwargs):
    sys.stderr.write({GUARD_MARK!r} + chr(10))
    raise OSError("bench.faults: no connection allowed")
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = _refuse
sys.argv = ["dpst", *sys.argv[1:]]
runpy.run_module("dpst", run_name="__main__", alter_sys=True)
"""
TINY_TRAIN = {**tiny_train_settings(), "steps": 4}  # the tests' tiny run, 4 steps
TINY_OPTIMISER = ["--backbone", "random", "--size", "32", "--no-postfilter", "--quiet"]
TINY_TARGETS = ["--backbone", "random", "--size", "32", "--iters", "1", "--no-postfilter"]


@dataclass
class Run:
    args: list[str]
    code: int | None  # None: killed at the timeout
    out: str
    err: str
    seconds: float
    label: str | None = None  # shown instead of the dpst command

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.err or TRACEBACK in self.out

    @property
    def command(self) -> str:
        return self.label or "dpst " + " ".join(self.args)


@dataclass
class Row:
    item: int
    case: str
    command: str
    expected: int | str
    actual: int | str
    traceback: bool
    lost: bool
    verdict: str  # pass, FAIL, skip
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Skip(Exception):
    """The case cannot be set up on this machine; the message says why."""


class Workspace:
    """The temporary folder the cases run in, its generated files and the child's env."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("home", "torch", "hf", "tmp"):
            (root / sub).mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DPST_", "RANK"))}
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "WORLD_SIZE", "LOCAL_RANK"):
            env.pop(key, None)
        env.update(
            DPST_OFFLINE="1",  # every case must hold without a network
            HOME=str(root / "home"),
            XDG_CACHE_HOME=str(root / "home" / ".cache"),
            TORCH_HOME=str(root / "torch"),  # no VGG-19 weights
            HF_HOME=str(root / "hf"),  # no SegFormer weights
            TMPDIR=str(root / "tmp"),  # where a failed write's rescue goes
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        )
        self.env = env
        self._trained = False

    def path(self, name: str) -> Path:
        return self.root / name

    def dpst(self, *args: str, timeout: float = TIMEOUT, guard: bool = False) -> Run:
        """``python -m dpst ARGS`` in the workspace (with the socket guard: every connection
        attempt refused and marked on stderr)."""
        start = time.perf_counter()
        try:
            done = subprocess.run(
                _python(guard, args), cwd=self.root, env=self.env, capture_output=True,
                text=True, errors="replace", timeout=timeout,
            )  # fmt: skip
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired as late:
            code, out, err = None, _text(late.stdout), _text(late.stderr)
        return Run(list(args), code, out, err, time.perf_counter() - start)

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen, Path, Path]:
        """``python -m dpst ARGS`` in the background, its stdout and stderr in files."""
        out, err = self.path(f"{name}.stdout"), self.path(f"{name}.stderr")
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen(
                _python(False, args), cwd=self.root, env=self.env, stdout=fo, stderr=fe,
                start_new_session=True,  # a signal for it alone, not for this script
            )  # fmt: skip
        return proc, out, err

    def finish(self, proc, args, out: Path, err: Path, started: float, timeout=TIMEOUT) -> Run:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        return Run(list(args), code, out.read_text(errors="replace"),
                   err.read_text(errors="replace"), time.perf_counter() - started)  # fmt: skip

    def digests(self, *names: str) -> dict[str, str | None]:
        """What the files are now, to tell afterwards whether one was lost or replaced."""
        return {n: _sha256(self.path(n)) for n in names}

    def lost(self, before: dict[str, str | None]) -> list[str]:
        return [n for n, digest in before.items() if _sha256(self.path(n)) != digest]

    # -- generated inputs --------------------------------------------------------------------

    def make_inputs(self) -> None:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:48, 0:64] / 64.0
        for name, tint in (("c.png", (1.0, 0.6, 0.3)), ("s.png", (0.3, 0.5, 1.0))):
            base = np.stack([xx * t + yy * (1 - t) for t in tint], axis=2)
            noisy = np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1)
            Image.fromarray((noisy * 255).astype(np.uint8)).save(self.path(name))
        # Colour masks: blue (sky) on top, green (vegetation) below.
        mask = np.zeros((48, 64, 3), np.uint8)
        mask[:24, :, 2], mask[24:, :, 1] = 255, 255
        for name in ("cm.png", "sm.png"):
            Image.fromarray(mask).save(self.path(name))
        rgba = np.dstack([np.asarray(Image.open(self.path("c.png"))), np.full((48, 64), 255)])
        rgba[:, :32, 3] = 0  # half transparent, with colours under it
        Image.fromarray(rgba.astype(np.uint8), "RGBA").save(self.path("rgba.png"))
        frames = [Image.new("RGB", (64, 48), c) for c in ("red", "blue")]
        frames[0].save(self.path("anim.gif"), save_all=True, append_images=frames[1:])
        self.path("bomb.png").write_bytes(bomb_png(30000, 30000))
        photos = self.path("photos")
        photos.mkdir()
        for i in range(3):
            img = np.clip(rng.normal(0.5, 0.2, (64, 64, 3)), 0, 1)
            Image.fromarray((img * 255).astype(np.uint8)).save(photos / f"p{i}.png")
        lines = [{"id": f"pair{i}", "content": f"photos/p{i}.png",
                  "style": f"photos/p{(i + 1) % 3}.png"} for i in range(2)]  # fmt: skip
        _jsonl(self.path("pairs.jsonl"), lines)
        self.path("tiny.json").write_text(json.dumps(TINY_TRAIN))

    def trained_run(self) -> Path:
        """``run/`` after two steps of the tiny training (``last.pt`` and ``prev.pt``)."""
        run_dir = self.path("run")
        if not self._trained:
            for stop in ("1", "2"):
                r = self.dpst("train", "pairs.jsonl", "--run-dir", "run", "--config", "tiny.json",
                              "--stop-at", stop, "--quiet")  # fmt: skip
                if r.code != 0:
                    raise Skip(f"the tiny training failed to set up ({_last_line(r.err)})")
            self._trained = True
        return run_dir


def _python(guard: bool, args) -> list[str]:
    if guard:
        return [sys.executable, "-c", SOCKET_GUARD, *args]
    return [sys.executable, "-m", "dpst", *args]


def _text(data) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonl(path: Path, lines: list) -> None:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def _last_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1][-200:] if lines else ""


def bomb_png(width: int, height: int) -> bytes:
    """A small PNG file whose header claims ``width`` x ``height`` pixels (a decompression
    bomb as Pillow sees one: it refuses such a size before decoding)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (1 + 3 * width) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


# -- judging ---------------------------------------------------------------------------------


def one_line_error(run: Run, *needles: str) -> list[str]:
    """Problems with an error that should be one ``dpst ...: error:`` line naming ``needles``."""
    errors = [x for x in run.err.splitlines() if ": error:" in x]
    if len(errors) != 1:
        return [f"{len(errors)} error lines, not 1"]
    missing = [n for n in needles if n.lower() not in errors[0].lower()]
    return [f"the error line does not name {missing}: {errors[0][:160]}"] if missing else []


def offline_problems(run: Run) -> list[str]:
    problems = []
    if GUARD_MARK in run.err:
        problems.append("a connection was attempted")
    if run.seconds > QUICK_EXIT_SECONDS:
        problems.append(f"took {run.seconds:.0f} s")
    return problems


def row(item: int, case: str, run: Run, expected: int, lost: list[str], problems: list[str]):
    notes = list(problems) + [f"lost or changed: {', '.join(lost)}"] * bool(lost)
    ok = run.code == expected and not run.traceback and not lost and not problems
    if run.code != expected and run.code is not None:
        notes.append(f"stderr: {_last_line(run.err)}")
    return Row(item, case, run.command, expected, "timeout" if run.code is None else run.code,
               run.traceback, bool(lost), "pass" if ok else "FAIL", notes, run.seconds)  # fmt: skip


# -- the cases -------------------------------------------------------------------------------

CaseFn = Callable[[Workspace], Row]
CASES: list[tuple[int, str, bool, CaseFn]] = []


def case(item: int, name: str, slow: bool = False):
    def register(fn: CaseFn) -> CaseFn:
        CASES.append((item, name, slow, fn))
        return fn

    return register


def _refused(ws: Workspace, item: int, name: str, args: tuple, *needles: str, guard=False):
    """A command that must stop at once with one line, exit 2, touching no input."""
    before = ws.digests("c.png", "s.png", "cm.png", "sm.png", "prev.png.json")
    run = ws.dpst(*args, guard=guard)
    problems = one_line_error(run, *needles) + (offline_problems(run) if guard else [])
    return row(item, name, run, EXIT_USER_ERROR, ws.lost(before), problems)


# Item 1: an output that is an input.
@case(1, "stylize -o = content")
def _(ws):
    args = ("stylize", "c.png", "s.png", "-o", "./c.png", *TINY_OPTIMISER, "--iters", "1")
    return _refused(ws, 1, "stylize -o = content", args, "would replace the content photo")


@case(1, "fast -o = style")
def _(ws):
    args = ("fast", "c.png", "s.png", "-o", "s.png", "--masks", "none")
    return _refused(ws, 1, "fast -o = style", args, "would replace the style photo")


@case(1, "stylize -o = mask")
def _(ws):
    args = ("stylize", "c.png", "s.png", "--content-mask", "cm.png", "--style-mask", "sm.png",
            "-o", "cm.png", *TINY_OPTIMISER, "--iters", "1")  # fmt: skip
    return _refused(ws, 1, "stylize -o = mask", args, "--content-mask")


@case(1, "fast -o = mask")
def _(ws):
    args = ("fast", "c.png", "s.png", "--content-mask", "cm.png", "--style-mask", "sm.png",
            "-o", "sm.png")  # fmt: skip
    return _refused(ws, 1, "fast -o = mask", args, "--style-mask")


@case(1, "stylize report = --config")
def _(ws):
    ws.path("prev.png.json").write_text("{}")
    args = ("stylize", "c.png", "s.png", "--config", "prev.png.json", "-o", "prev.png",
            *TINY_OPTIMISER, "--iters", "1")  # fmt: skip
    return _refused(ws, 1, "stylize report = --config", args, "--config")


@case(1, "fast folder --out-dir = the photos' folder")
def _(ws):
    before = ws.digests(*(f"photos/p{i}.png" for i in range(3)))
    run = ws.dpst("fast", "photos", "s.png", "--out-dir", "photos", "--masks", "none")
    return row(1, "", run, EXIT_USER_ERROR, ws.lost(before), one_line_error(run, "replace"))


# Item 2: the output checked before any work (100000 iterations would outlast the timeout).
LONG = (*TINY_OPTIMISER, "--iters", "100000")


@case(2, "stylize -o in read-only folder")
def _(ws):
    if os.geteuid() == 0:
        # root writes through a folder's permissions; a read-only mount still refuses it.
        folder = next((f for f in ("/sys", "/proc") if not os.access(f, os.W_OK) or _no_write(f)),
                      None)  # fmt: skip
        if folder is None:
            raise Skip("running as root and no read-only folder found")
        out = f"{folder}/out.png"
    else:
        ro = ws.path("readonly")
        ro.mkdir()
        ro.chmod(0o555)
        out = "readonly/out.png"
    args = ("stylize", "c.png", "s.png", "-o", out, *LONG)
    return _refused(ws, 2, "stylize -o in read-only folder", args, "cannot write in")


def _no_write(folder: str) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.unlink(name)
    return False


@case(2, "stylize -o without extension")
def _(ws):
    args = ("stylize", "c.png", "s.png", "-o", "result", *LONG)
    return _refused(ws, 2, "stylize -o without extension", args, "result")


@case(2, "stylize -o a folder")
def _(ws):
    ws.path("outdir").mkdir(exist_ok=True)
    args = ("stylize", "c.png", "s.png", "-o", "outdir", *LONG)
    return _refused(ws, 2, "stylize -o a folder", args, "is a folder")


@case(2, "fast -o without extension")
def _(ws):
    args = ("fast", "c.png", "s.png", "-o", "result", "--masks", "none")
    return _refused(ws, 2, "fast -o without extension", args, "result")


@case(2, "stylize: final write fails, result rescued")
def _(ws):
    # The output's folder is replaced by a file once the work has begun: the final write
    # fails (as on a full disk) and the result must be saved elsewhere, and said where.
    args = ("stylize", "c.png", "s.png", "-o", "late/o.png", "--backbone", "random",
            "--size", "32", "--no-postfilter", "--masks", "none", "--iters", "100",
            "--stages", "1")  # fmt: skip
    ws.path("late").mkdir()
    started = time.perf_counter()
    proc, out, err = ws.start("rescue", *args)
    # Once the progress bar shows a finished iteration.
    if not _wait_for(proc, err, ITERATION_DONE):
        ws.finish(proc, args, out, err, started)
        raise Skip("the run ended before its output folder could be replaced")
    shutil.rmtree(ws.path("late"))
    ws.path("late").write_text("not a folder any more")
    run = ws.finish(proc, args, out, err, started)
    problems = one_line_error(run, "saved as")
    found = re.search(r"saved as (\S+) instead", run.err)
    lost = []
    if not found or not Path(found.group(1)).is_file():
        lost.append("the rescued result")
    elif _sha256(Path(found.group(1) + ".json")) is None:
        lost.append("the rescued report")
    return row(2, "stylize: final write fails, result rescued", run, EXIT_USER_ERROR, lost,
               problems)  # fmt: skip


# tqdm's bar once an iteration is done: "  1/300 [".
ITERATION_DONE = re.compile(r"\b[1-9]\d*/\d+ \[")


def _wait_for(proc, path: Path, pattern: re.Pattern, timeout: float = TIMEOUT) -> bool:
    """Until ``pattern`` appears in the file ``path`` (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern.search(path.read_text(errors="replace")):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


# Item 3: SIGTERM and SIGHUP keep the result so far.
def _signalled(ws: Workspace, sig: signal.Signals, expected: int) -> Row:
    name = f"stylize, {sig.name} mid-run"
    out_name = f"{sig.name.lower()}.png"
    args = ("stylize", "c.png", "s.png", "-o", out_name, "--backbone", "random", "--size", "32",
            "--iters", "100000")  # fmt: skip
    started = time.perf_counter()
    proc, out, err = ws.start(sig.name, *args)
    if _wait_for(proc, err, ITERATION_DONE):
        os.killpg(proc.pid, sig)
    run = ws.finish(proc, args, out, err, started, timeout=120)
    problems = []
    report = ws.path(out_name + ".json")
    lost = [] if _sha256(ws.path(out_name)) else [out_name]
    if not report.is_file():
        lost.append(report.name)
    elif not json.loads(report.read_text()).get("interrupted"):
        problems.append("the report is not marked interrupted")
    return row(3, name, run, expected, lost, problems)


@case(3, "stylize, SIGTERM mid-run")
def _(ws):
    return _signalled(ws, signal.SIGTERM, SIGTERM_CODE)


@case(3, "stylize, SIGHUP mid-run")
def _(ws):
    return _signalled(ws, signal.SIGHUP, SIGHUP_CODE)


def _wait_file(proc, path: Path, timeout: float = TIMEOUT) -> bool:
    """Until the file ``path`` holds something (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.stat().st_size > 0:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


@case(3, "targets, SIGTERM mid-run", slow=True)
def _(ws):
    args = ("targets", "pairs.jsonl", "--out", "tsig", "--backbone", "random", "--size", "32",
            "--iters", "100000", "--no-postfilter", "--quiet")  # fmt: skip
    started = time.perf_counter()
    proc, out, err = ws.start("targets_sigterm", *args)
    if _wait_file(proc, ws.path("tsig/config.json")):  # written just before the first pair
        time.sleep(2.0)  # into the first pair's iterations
        os.killpg(proc.pid, signal.SIGTERM)
    run = ws.finish(proc, args, out, err, started, timeout=120)
    summary = ws.path("tsig/summary.json")
    lost = [] if summary.is_file() else ["tsig/summary.json"]
    problems = []
    if summary.is_file() and not json.loads(summary.read_text()).get("interrupted"):
        problems.append("the summary is not marked interrupted")
    return row(3, "", run, SIGTERM_CODE, lost, problems)


@case(3, "train, SIGTERM mid-run", slow=True)
def _(ws):
    args = ("train", "pairs.jsonl", "--run-dir", "run_sig", "--config", "tiny.json",
            "--steps", "100000", "--quiet")  # fmt: skip
    started = time.perf_counter()
    proc, out, err = ws.start("train_sigterm", *args)
    if _wait_file(proc, ws.path("run_sig/metrics.jsonl")):  # a step is done
        os.killpg(proc.pid, signal.SIGTERM)
    run = ws.finish(proc, args, out, err, started, timeout=120)
    lost = [] if _sha256(ws.path("run_sig/last.pt")) else ["run_sig/last.pt"]
    return row(3, "", run, EXIT_INTERRUPTED, lost, [])


# Item 4: offline, nothing is attempted and the user is told in one line.
@case(4, "offline segment")
def _(ws):
    args = ("segment", "c.png", "s.png", "--out-dir", "seg")
    return _refused(ws, 4, "offline segment", args, "DPST_OFFLINE", guard=True)


@case(4, "offline stylize, no VGG-19")
def _(ws):
    args = ("stylize", "c.png", "s.png", "-o", "o.png", "--masks", "none", "--size", "32",
            "--iters", "1")  # fmt: skip
    return _refused(ws, 4, "offline stylize, no VGG-19", args, "vgg19", guard=True)


@case(4, "offline fast --masks auto")
def _(ws):
    run = ws.dpst("fast", "c.png", "s.png", "-o", "auto.png", guard=True)
    problems = offline_problems(run)
    if run.out.count("\n") + run.err.count("\n") > 3:
        problems.append("more than a line of notes")
    lost = [] if _sha256(ws.path("auto.png")) else ["auto.png"]
    return row(4, "offline fast --masks auto", run, EXIT_OK, lost, problems)


@case(4, "offline data pairs --segmenter")
def _(ws):
    args = ("data", "pairs", "photos", "-o", "auto_pairs.jsonl", "--segmenter", "segformer")
    return _refused(ws, 4, "offline data pairs --segmenter", args, "DPST_OFFLINE", guard=True)


@case(5, "memory (item 5)")
def _(ws):
    raise Skip("measured by python -m bench.memory")


# Item 6: decompression bombs.
@case(6, "stylize bomb")
def _(ws):
    args = ("stylize", "bomb.png", "s.png", "-o", "o.png", *TINY_OPTIMISER, "--iters", "1")
    return _refused(ws, 6, "stylize bomb", args, "too large")


@case(6, "fast bomb")
def _(ws):
    return _refused(ws, 6, "fast bomb", ("fast", "c.png", "bomb.png", "-o", "o.png"), "too large")


@case(6, "train bomb")
def _(ws):
    _jsonl(ws.path("bomb.jsonl"), [{"id": "bomb", "content": "bomb.png", "style": "s.png"}])
    args = ("train", "bomb.jsonl", "--run-dir", "bomb_run", "--config", "tiny.json", "--quiet")
    return _refused(ws, 6, "train bomb", args, "too large")


@case(6, "data check bomb, and goes on")
def _(ws):
    _jsonl(ws.path("check.jsonl"), [
        {"id": "bomb", "content": "bomb.png", "style": "s.png"},
        {"id": "gone", "content": "missing.png", "style": "s.png"},
        {"id": "fine", "content": "c.png", "style": "s.png"},
    ])  # fmt: skip
    run = ws.dpst("data", "check", "check.jsonl")
    said = run.out + run.err
    problems = [f"does not report {x}" for x in ("too large", "missing.png") if x not in said]
    if "1 entries ok" not in said:
        problems.append("does not count the good line")
    return row(6, "data check bomb, and goes on", run, EXIT_PROBLEMS, [], problems)


# Item 7: the demo server.
@case(7, "serve --host elsewhere warns")
def _(ws):
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning must come, and the
    # bind must fail in one line, so that nothing is ever reachable from outside.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    run = ws.dpst("serve", "--host", "192.0.2.1", "--port", port, "--backbone", "random",
                  "--masks", "none")  # fmt: skip
    problems = [] if "warning: listening on 192.0.2.1" in run.err else ["no warning line"]
    problems += one_line_error(run, "192.0.2.1")
    return row(7, "serve --host elsewhere warns", run, EXIT_USER_ERROR, [], problems)


# Item 8: resumable jobs.
@case(8, "train resume, changed setting refused", slow=True)
def _(ws):
    run_dir = ws.trained_run()
    before = ws.digests("run/last.pt", "run/prev.pt", "run/config.json")
    run = ws.dpst("train", "pairs.jsonl", "--run-dir", str(run_dir.name), "--lr", "0.05",
                  "--quiet")  # fmt: skip
    problems = one_line_error(run, "lr", "--reconfigure")
    return row(8, "train resume, changed setting refused", run, EXIT_USER_ERROR,
               ws.lost(before), problems)  # fmt: skip


@case(8, "train resume --reconfigure, recorded", slow=True)
def _(ws):
    ws.trained_run()
    run = ws.dpst("train", "pairs.jsonl", "--run-dir", "run", "--lr", "0.05", "--reconfigure",
                  "--stop-at", "3", "--quiet")  # fmt: skip
    history = ws.path("run/config_history.jsonl")
    lines = history.read_text().splitlines() if history.is_file() else []
    recorded = lines and json.loads(lines[-1]).get("reconfigured", {}).get("lr")
    problems = [] if recorded else ["not recorded in config_history.jsonl"]
    lost = [n for n in ("run/last.pt", "run/prev.pt") if _sha256(ws.path(n)) is None]
    return row(8, "train resume --reconfigure, recorded", run, EXIT_OK, lost, problems)


@case(8, "train, corrupt last.pt -> prev.pt", slow=True)
def _(ws):
    ws.trained_run()
    last = ws.path("run/last.pt")
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    run = ws.dpst("train", "pairs.jsonl", "--run-dir", "run", "--stop-at", "4", "--quiet")
    problems = [] if "prev.pt" in run.err else ["no warning naming prev.pt"]
    lost = [n for n in ("run/last.pt", "run/prev.pt") if _sha256(ws.path(n)) is None]
    return row(8, "train, corrupt last.pt -> prev.pt", run, EXIT_OK, lost, problems)


@case(8, "targets, changed flag writes beside", slow=True)
def _(ws):
    first = ws.dpst("targets", "pairs.jsonl", "--out", "tg", *TINY_TARGETS, "--quiet")
    if first.code != 0:
        raise Skip(f"the first targets run failed ({_last_line(first.err)})")
    done = sorted(str(p.relative_to(ws.root)) for p in ws.path("tg").rglob("*.png"))
    before = ws.digests(*done)
    run = ws.dpst("targets", "pairs.jsonl", "--out", "tg", *TINY_TARGETS, "--seed", "7",
                  "--quiet")  # fmt: skip
    folders = [p for p in ws.path("tg").iterdir() if (p / "targets").is_dir()]
    problems = [] if len(folders) == 2 else [f"{len(folders)} config folders, not 2"]
    problems += [] if done else ["the first run wrote no targets"]
    return row(8, "targets, changed flag writes beside", run, EXIT_OK, ws.lost(before), problems)


@case(8, "targets with a failed pair exits 1", slow=True)
def _(ws):
    ws.path("broken.png").write_bytes(ws.path("c.png").read_bytes()[:60])
    _jsonl(ws.path("failing.jsonl"), [
        {"id": "good", "content": "c.png", "style": "s.png"},
        {"id": "broken", "content": "broken.png", "style": "s.png"},
    ])  # fmt: skip
    run = ws.dpst("targets", "failing.jsonl", "--out", "tf", *TINY_TARGETS, "--quiet")
    problems = [] if "failed" in _last_line(run.err) else ["no summary line naming failures"]
    return row(8, "targets with a failed pair exits 1", run, EXIT_PROBLEMS, [], problems)


# Item 9: models.
def _model_copy(ws: Workspace, folder: str, stem: str) -> Path:
    from dpst import serve

    bundled = Path(serve.__file__).parent / "bundled"
    target = ws.path(folder)
    target.mkdir()
    for f in bundled.glob("model.*"):
        shutil.copy(f, target / f.name.replace("model.", f"{stem}.", 1))
    return target / f"{stem}.onnx"


@case(9, "fast, 64 flipped bytes in the model")
def _(ws):
    model = _model_copy(ws, "damaged", "model")
    data = bytearray(model.read_bytes())
    middle = len(data) // 2  # inside the weights: the initialisers are most of the file
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    model.write_bytes(bytes(data))
    args = ("fast", "c.png", "s.png", "-o", "o.png", "--model", "damaged/model.onnx",
            "--masks", "none")  # fmt: skip
    return _refused(ws, 9, "fast, 64 flipped bytes in the model", args, "checksum")


@case(9, "fast, renamed model files load")
def _(ws):
    _model_copy(ws, "renamed", "look")
    run = ws.dpst("fast", "c.png", "s.png", "-o", "renamed.png", "--model", "renamed/look.onnx",
                  "--masks", "none")  # fmt: skip
    lost = [] if _sha256(ws.path("renamed.png")) else ["renamed.png"]
    return row(9, "fast, renamed model files load", run, EXIT_OK, lost, [])


# Item 10: inputs handled silently before.
@case(10, "fast, RGBA input warns")
def _(ws):
    run = ws.dpst("fast", "rgba.png", "s.png", "-o", "rgba_out.png", "--masks", "none")
    warned = [x for x in run.err.splitlines() if "transparent" in x]
    problems = [] if len(warned) == 1 else [f"{len(warned)} transparency warnings, not 1"]
    lost = [] if _sha256(ws.path("rgba_out.png")) else ["rgba_out.png"]
    return row(10, "fast, RGBA input warns", run, EXIT_OK, lost, problems)


@case(10, "fast, animated GIF refused")
def _(ws):
    args = ("fast", "anim.gif", "s.png", "-o", "o.png", "--masks", "none")
    return _refused(ws, 10, "fast, animated GIF refused", args, "animation")


@case(10, "stylize, animated GIF refused")
def _(ws):
    args = ("stylize", "c.png", "anim.gif", "-o", "o.png", *TINY_OPTIMISER, "--iters", "1")
    return _refused(ws, 10, "stylize, animated GIF refused", args, "animation")


@case(10, "stylize --iters 0 refused")
def _(ws):
    args = ("stylize", "c.png", "s.png", "-o", "o.png", *TINY_OPTIMISER, "--iters", "0")
    return _refused(ws, 10, "stylize --iters 0 refused", args, "--iters")


@case(10, "fast -o x.tiff")
def _(ws):
    run = ws.dpst("fast", "c.png", "s.png", "-o", "x.tiff", "--masks", "none")
    problems, lost = [], []
    if _sha256(ws.path("x.tiff")) is None:
        lost.append("x.tiff")
    else:
        with Image.open(ws.path("x.tiff")) as img:
            if img.format != "TIFF":
                problems.append(f"wrote {img.format}, not TIFF")
    return row(10, "fast -o x.tiff", run, EXIT_OK, lost, problems)


# Item 11: the README.
def _readme() -> str:
    readme = REPO_ROOT / "README.md"
    if not readme.is_file():
        raise Skip("no README.md beside the package (an installed copy)")
    return readme.read_text()


@case(11, "README: exit codes stated")
def _(ws):
    text = _readme()
    section = text.split("## Exit codes", 1)
    problems = [] if len(section) == 2 else ["no '## Exit codes' section"]
    for code in (
        EXIT_OK,
        EXIT_PROBLEMS,
        EXIT_USER_ERROR,
        EXIT_INTERRUPTED,
        SIGTERM_CODE,
        SIGHUP_CODE,
    ):
        if len(section) == 2 and f"| {code} |" not in section[1].split("\n## ", 1)[0]:
            problems.append(f"exit code {code} not in the table")
    run = Run([], 0, "", "", 0.0, label="(reads README.md)")
    return row(11, "README: exit codes stated", run, EXIT_OK, [], problems)


@case(11, "README: dpst export RUN/last.pt", slow=True)
def _(ws):
    names = re.findall(r"dpst export (\S+\.pt)", _readme())
    problems = [f"README exports {n}" for n in names if not n.endswith("/last.pt")]
    ws.trained_run()
    run = ws.dpst("export", "run/last.pt", "-o", "exported/model.onnx")
    want = ("model.onnx", "model.style.onnx", "model.render.onnx", "model.onnx.sha256")
    lost = [f"exported/{n}" for n in want if _sha256(ws.path(f"exported/{n}")) is None]
    return row(11, "README: dpst export RUN/last.pt", run, EXIT_OK, lost, problems)


@case(11, "README: the Python snippet runs", slow=True)
def _(ws):
    found = re.search(r"```python\n(.*?)```", _readme(), re.S)
    if not found:
        raise Skip("no Python snippet in README.md")
    # As printed, but on the generated photos, the random backbone and one iteration (no
    # weights here).
    code = (found.group(1)
            .replace("content.jpg", "c.png").replace("style.jpg", "s.png")
            .replace("BackboneConfig()", "BackboneConfig(name='random')")
            .replace("multiscale=True", "multiscale=True, size=32, iters=1"))  # fmt: skip
    code += "\nassert result.image.shape == (48, 64, 3), result.image.shape\n"
    ws.path("snippet.py").write_text(code)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "snippet.py"], cwd=ws.root, env=ws.env,
                          capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    run = Run([], done.returncode, done.stdout, done.stderr, time.perf_counter() - start,
              label="python snippet.py (README's, random backbone)")  # fmt: skip
    return row(11, "README: the Python snippet runs", run, EXIT_OK, [], [])


# -- issue 25 (round three): items numbered 25.N -----------------------------------------


@contextmanager
def small_disk(ws: Workspace, name: str, kib: int, leave: int = 0):
    """A folder on a tmpfs of ``kib`` KiB, full but for ``leave`` bytes (so a write there
    fails as on a full disk), or Skip where no filesystem can be mounted (not root)."""
    folder = ws.path(name)
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise Skip(f"no small filesystem can be mounted here ({_last_line(done.stderr)})")
    try:
        # Filled to the last byte: every write fails, as on a full disk (an empty file, the
        # output checks' probe, still can be made).
        fd = os.open(folder / FILLER, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
            os.close(fd)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


FILLER = ".filler"


def _left(disk: Path) -> list[str]:
    return sorted(p.name for p in disk.iterdir() if p.name != FILLER)


def _unprivileged() -> list[str]:
    """The prefix that runs a command as a user who cannot read every folder."""
    if os.geteuid() != 0:
        return []
    probe = subprocess.run([*DROP_READ_ALL, "true"], capture_output=True)
    if probe.returncode != 0:
        raise Skip("running as root, and setpriv cannot drop root's reading of every folder")
    return DROP_READ_ALL


DROP_READ_ALL = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _clip(ws: Workspace, name: str = "clip.mp4", codec: str = "libx264", rate: int = 10,
          pix_fmt: str = "yuv420p") -> str:  # fmt: skip
    """A 10-frame 64x48 clip in the workspace."""
    import av

    path = ws.path(name)
    if not path.exists():
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
            for i in range(10):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), "rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    return name


def _folder_of(ws: Workspace, name: str, count: int, side: int) -> str:
    folder = ws.path(name)
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(count):
        pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i:02d}.png")
    return name


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] if folder.is_dir() else []


@case("25.1", "stylize: restyling a snapshot keeps it")
def _(ws):
    ws.path("p.snapshots").mkdir()
    shutil.copy(ws.path("c.png"), ws.path("p.snapshots/level0_stage1_00002.png"))
    before = ws.digests("p.snapshots/level0_stage1_00002.png")
    snapshot = "p.snapshots/level0_stage1_00002.png"
    args = ("stylize", snapshot, "s.png", "-o", "p.png", "--snapshot-every", "2",
            *TINY_OPTIMISER, "--iters", "4", "--masks", "none")  # fmt: skip
    run = ws.dpst(*args)
    problems = one_line_error(run, "would replace the content photo")
    return row("25.1", "", run, EXIT_USER_ERROR, ws.lost(before), problems)


@case("25.2", "stylize: snapshot folder a file, refused")
def _(ws):
    ws.path("sf.snapshots").write_text("a file")
    args = ("stylize", "c.png", "s.png", "-o", "sf.png", "--snapshot-every", "1", *LONG)
    return _refused(ws, "25.2", "", args, "sf.snapshots", "is a file")


@case("25.2", "stylize: snapshots fail mid-run, result kept")
def _(ws):
    args = ("stylize", "c.png", "s.png", "-o", "sm.png", "--backbone", "random", "--size", "32",
            "--no-postfilter", "--masks", "none", "--iters", "100000", "--stages", "1",
            "--snapshot-every", "1")  # fmt: skip
    started = time.perf_counter()
    proc, out, err = ws.start("snapfail", *args)
    snapshots = ws.path("sm.snapshots")
    deadline = time.monotonic() + TIMEOUT
    while not (snapshots.is_dir() and any(snapshots.glob("*.png"))):
        if proc.poll() is not None or time.monotonic() > deadline:
            ws.finish(proc, args, out, err, started)
            raise Skip("the run ended before its first snapshot")
        time.sleep(0.05)
    shutil.rmtree(snapshots)
    snapshots.write_text("no folder any more: every later snapshot fails")
    # Once the run has said so and gone on, it is stopped; the result so far must be there.
    if _wait_for(proc, err, re.compile("could not write")):
        os.killpg(proc.pid, signal.SIGTERM)
    run = ws.finish(proc, args, out, err, started)
    warned = [x for x in run.err.splitlines() if "could not write" in x]
    problems = [] if len(warned) == 1 else [f"{len(warned)} snapshot warnings, not 1"]
    lost = [n for n in ("sm.png", "sm.png.json") if _sha256(ws.path(n)) is None]
    return row("25.2", "", run, SIGTERM_CODE, lost, problems)


def _fast_signalled(ws: Workspace, sig: signal.Signals) -> Row:
    folder = _folder_of(ws, f"many_{sig.name}", 40, 384)
    out_dir = ws.path(f"graded_{sig.name}")
    args = ("fast", folder, "s.png", "--out-dir", out_dir.name, "--masks", "none",
            "--threads", "1")  # fmt: skip
    started = time.perf_counter()
    proc, out, err = ws.start(f"fast_{sig.name}", *args)
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        if out_dir.is_dir() and any(out_dir.glob("p*.png")):
            os.killpg(proc.pid, sig)
            break
        time.sleep(0.05)
    run = ws.finish(proc, args, out, err, started, timeout=120)
    problems = [f"left {t}" for t in _temporaries(out_dir)]
    if (out_dir / "dpst-fast.lock").exists():
        problems.append("left its lock file")
    for result in out_dir.glob("p*.png"):
        try:
            with Image.open(result) as img:
                img.load()
        except OSError:
            problems.append(f"{result.name} is not whole")
    return row("25.3", "", run, 128 + sig, [], problems)


@case("25.3", "fast folder, SIGTERM mid-run")
def _(ws):
    return _fast_signalled(ws, signal.SIGTERM)


@case("25.3", "fast folder, SIGHUP mid-run")
def _(ws):
    return _fast_signalled(ws, signal.SIGHUP)


@case("25.3", "fast folder: a killed run's .tmp removed")
def _(ws):
    folder = _folder_of(ws, "killed_in", 2, 32)
    out_dir = ws.path("killed_out")
    out_dir.mkdir()
    (out_dir / ".p00.png.a1b2c3.tmp").write_bytes(b"half a photo")
    run = ws.dpst("fast", folder, "s.png", "--out-dir", out_dir.name, "--masks", "none")
    problems = [f"left {t}" for t in _temporaries(out_dir)]
    return row("25.3", "", run, EXIT_OK, [], problems)


@case("25.4", "fast folder: two runs at once, one strength")
def _(ws):
    folder = _folder_of(ws, "race_in", 6, 256)
    runs = []
    for strength in ("0.2", "1.8"):
        args = ("fast", folder, "s.png", "--out-dir", "race_out", "--masks", "none",
                "--strength", strength, "--threads", "1")  # fmt: skip
        runs.append((strength, args, time.perf_counter(), *ws.start(f"race{strength}", *args)))
    finished = [(s, ws.finish(p, a, o, e, t)) for s, a, t, p, o, e in runs]
    codes = sorted(r.code if r.code is not None else -1 for _, r in finished)
    record = ws.path("race_out/dpst-fast.json")
    recorded = json.loads(record.read_text())["settings"]["strength"] if record.is_file() else None
    winner = [s for s, r in finished if r.code == EXIT_OK]
    problems = [] if codes == [EXIT_OK, EXIT_USER_ERROR] else [f"exit codes {codes}, not [0, 2]"]
    if winner and recorded != float(winner[0]):
        problems.append(f"the record says {recorded}, the run that wrote said {winner[0]}")
    # The row shows the run that was refused: one line, exit 2.
    refused = [r for _, r in finished if r.code != EXIT_OK] or [finished[-1][1]]
    problems += one_line_error(refused[0], "--out-dir") if not problems else []
    return row("25.4", "", refused[0], EXIT_USER_ERROR, [], problems)


@case("25.5", "look export --hald onto a full disk")
def _(ws):
    with small_disk(ws, "full_lut", 64) as disk:
        args = ("look", "export", "c.png", "s.png", "-o", f"{disk.name}/l.cube", "--hald",
                f"{disk.name}/h.png", "--lut-size", "17")  # fmt: skip
        run = ws.dpst(*args)
        problems = one_line_error(run, "could not write", "No space left")
        left = _left(disk)
    problems += [f"left {left}"] if left else []
    return row("25.5", "", run, EXIT_USER_ERROR, [], problems)


@case("25.5", "look onto a full disk")
def _(ws):
    with small_disk(ws, "full_look", 8) as disk:
        run = ws.dpst("look", "s.png", "-o", f"{disk.name}/l.dpst", "--masks", "none")
        problems = one_line_error(run, "could not write", "No space left")
        left = _left(disk)
    problems += [f"left {left}"] if left else []
    return row("25.5", "", run, EXIT_USER_ERROR, [], problems)


@case("25.5", "video onto a full disk")
def _(ws):
    clip = _clip(ws)
    with small_disk(ws, "full_video", 8) as disk:
        run = ws.dpst("video", clip, "s.png", "-o", f"{disk.name}/o.mp4", "--threads", "1")
        problems = one_line_error(run, "could not write", "No space left")
        left = _left(disk)
    problems += [f"left {left}"] if left else []
    return row("25.5", "", run, EXIT_USER_ERROR, [], problems)


@case("25.5", "video: a JPEG named .mp4")
def _(ws):
    shutil.copy(ws.path("c.png"), ws.path("photo.mp4"))
    args = ("video", "photo.mp4", "s.png", "-o", "o.mp4", "--threads", "1")
    return _refused(ws, "25.5", "", args, "still image")


@case("25.5", "video: an MJPEG .avi")
def _(ws):
    clip = _clip(ws, "mjpeg.avi", "mjpeg", pix_fmt="yuvj420p")
    run = ws.dpst("video", clip, "s.png", "-o", "mjpeg_out.avi", "--threads", "1")
    lost = [] if _sha256(ws.path("mjpeg_out.avi")) else ["mjpeg_out.avi"]
    return row("25.5", "", run, EXIT_OK, lost, [])


@case("25.5", "serve --port 70000")
def _(ws):
    return _refused(ws, "25.5", "", ("serve", "--port", "70000", "--backbone", "random"),
                    "--port must be 1 to 65535")  # fmt: skip


@case("25.5", "stylize --config iters 2.5, NaN")
def _(ws):
    ws.path("half.json").write_text('{"iters": 2.5}')
    ws.path("nan.json").write_text('{"weights": {"style": NaN}}')
    files = (("half.json", "whole number"), ("nan.json", "finite"))
    rows = [_refused(ws, "25.5", "", ("stylize", "c.png", "s.png", "-o", "cfg.png", "--config",
                                      name, *TINY_OPTIMISER), needle)
            for name, needle in files]  # fmt: skip
    return next((r for r in rows if r.verdict != "pass"), rows[-1])


@case("25.5", "fast: unreadable folder, unsearchable --out-dir")
def _(ws):
    prefix = _unprivileged()
    _folder_of(ws, "sealed_in", 1, 16)
    ws.path("sealed/sub").mkdir(parents=True)
    ws.path("sealed_in").chmod(0)
    ws.path("sealed").chmod(0)
    cases = (
        (("fast", "sealed_in", "s.png", "--out-dir", "o_sealed"), "cannot read the folder"),
        (("fast", "c.png", "s.png", "-o", "sealed/sub/o.png"), "cannot reach"),
    )
    try:
        for args, needle in cases:
            start = time.perf_counter()
            done = subprocess.run([*prefix, *_python(False, (*args, "--masks", "none"))],
                                  cwd=ws.root, env=ws.env, capture_output=True, text=True,
                                  timeout=TIMEOUT)  # fmt: skip
            run = Run(list(args), done.returncode, done.stdout, done.stderr,
                      time.perf_counter() - start)  # fmt: skip
            result = row("25.5", "", run, EXIT_USER_ERROR, [], one_line_error(run, needle))
            if result.verdict != "pass":
                return result
        return result
    finally:
        ws.path("sealed_in").chmod(0o755)
        ws.path("sealed").chmod(0o755)


@case("25.6", "fast --threads 100000, 0")
def _(ws):
    rows = [_refused(ws, "25.6", "", ("fast", "c.png", "s.png", "-o", "t.png", "--masks",
                                      "none", "--threads", n), "--threads must be 1 to")
            for n in ("100000", "0")]  # fmt: skip
    return next((r for r in rows if r.verdict != "pass"), rows[-1])


@case("25.6", "video --lut a 256-node .cube")
def _(ws):
    with open(ws.path("big.cube"), "w") as fh:
        fh.write("LUT_3D_SIZE 256\n" + "0.5 0.5 0.5\n" * 300_000)
    args = ("video", _clip(ws), "--lut", "big.cube", "-o", "big.mp4")
    result = _refused(ws, "25.6", "", args, "LUT_3D_SIZE 256")
    if result.seconds > QUICK_EXIT_SECONDS / 4:
        result.verdict, result.notes = "FAIL", [*result.notes, "parsed before refused"]
    return result


@case("25.7", "video -o .ts holds H.264")
def _(ws):
    import av

    run = ws.dpst("video", _clip(ws), "s.png", "-o", "o.ts", "--threads", "1")
    lost = [] if _sha256(ws.path("o.ts")) else ["o.ts"]
    problems = []
    if not lost:
        with av.open(str(ws.path("o.ts"))) as clip:
            codec = clip.streams.video[0].codec_context.name
        problems += [] if codec == "h264" else [f"wrote {codec}"]
    return row("25.7", "", run, EXIT_OK, lost, problems)


@case("25.7", "fast, DPST_MODEL=/missing named")
def _(ws):
    ws.env["DPST_MODEL"] = "/missing/model.onnx"
    try:
        args = ("fast", "c.png", "s.png", "-o", "m.png", "--masks", "none")
        return _refused(ws, "25.7", "", args, "/missing/model.onnx")
    finally:
        del ws.env["DPST_MODEL"]


@case("25.7", "fast folder onto a full disk stops")
def _(ws):
    folder = _folder_of(ws, "to_full", 4, 256)
    # Room for the folder's record and lock, not for a photo.
    with small_disk(ws, "full_folder", 200, leave=8192) as disk:
        run = ws.dpst("fast", folder, "s.png", "--out-dir", disk.name, "--masks", "none")
        problems = one_line_error(run, "No space left", "written and kept")
        problems += ["said 'skipped'"] * ("skipped" in run.err)
        problems += [f"left {t}" for t in _temporaries(disk)]
    return row("25.7", "", run, EXIT_USER_ERROR, [], problems)


@case("25.7", "fast folder: a folder named as an output")
def _(ws):
    folder = _folder_of(ws, "named_in", 2, 32)
    ws.path("named_out/p00.png").mkdir(parents=True)
    ws.path(folder).joinpath("gone.png").symlink_to(ws.path("nowhere.png"))
    run = ws.dpst("fast", folder, "s.png", "--out-dir", "named_out", "--masks", "none")
    problems = [] if "p00.png is a folder" in run.err else ["the folder not said"]
    problems += [] if "gone.png" in run.err else ["the broken symlink not listed"]
    problems += [] if "0 already there" in run.out else ["counted as already there"]
    return row("25.7", "", run, EXIT_PROBLEMS, [], problems)


@case("25.7", 'fast "" --out-dir')
def _(ws):
    return _refused(ws, "25.7", "", ("fast", "", "s.png", "--out-dir", "empty_out"), "empty")


@case("25.7", "fast: a model without its .sha256 said")
def _(ws):
    model = _model_copy(ws, "unsummed", "model")
    for sidecar in model.parent.glob("*.sha256"):
        sidecar.unlink()
    run = ws.dpst("fast", "c.png", "s.png", "-o", "u.png", "--masks", "none", "--model",
                  "unsummed/model.onnx")  # fmt: skip
    said = [x for x in run.err.splitlines() if "no .sha256" in x]
    problems = [] if len(said) == 1 else [f"{len(said)} lines about the checksum, not 1"]
    lost = [] if _sha256(ws.path("u.png")) else ["u.png"]
    return row("25.7", "", run, EXIT_OK, lost, problems)


@case("25.8", "fast folder -o over a photo: said once")
def _(ws):
    folder = _folder_of(ws, "g2", 1, 16)
    run = ws.dpst("fast", f"{folder}/*.png", "s.png", "--out-dir", folder, "--masks", "none")
    problems = one_line_error(run, f"replace the input {folder}/p00.png")
    return row("25.8", "", run, EXIT_USER_ERROR, [], problems)


@case("25.8", "stylize 2x1000: width x height")
def _(ws):
    Image.fromarray(np.zeros((1000, 2, 3), np.uint8)).save(ws.path("thin.png"))
    args = ("stylize", "thin.png", "s.png", "-o", "thin_out.png", *TINY_OPTIMISER, "--iters",
            "1", "--masks", "none")  # fmt: skip
    return _refused(ws, "25.8", "", args, "got 1x32 (width x height")


# -- running ---------------------------------------------------------------------------------


def run_cases(ws: Workspace, quick: bool, only: str | None, echo=print) -> list[Row]:
    rows = []
    for item, name, slow, fn in CASES:
        if only and only.lower() not in name.lower():
            continue
        if slow and quick:
            rows.append(Row(item, name, "", "", "", False, False, "skip", ["slow (--quick)"]))
            echo(format_row(rows[-1]))
            continue
        try:
            result = fn(ws)
        except Skip as why:
            result = Row(item, name, "", "", "", False, False, "skip", [str(why)])
        result.item, result.case = item, name
        rows.append(result)
        echo(format_row(result))
    return rows


COLUMNS = ("case", "command", "exp", "got", "traceback", "lost", "verdict")


def format_row(r: Row) -> str:
    command = r.command if len(r.command) <= 70 else r.command[:67] + "..."
    yes_no = ("-", "-") if r.verdict == "skip" else (
        "yes" if r.traceback else "no", "yes" if r.lost else "no")  # fmt: skip
    cells = (f"{r.item:>2} {r.case}", command, str(r.expected), str(r.actual), *yes_no,
             r.verdict)  # fmt: skip
    line = "{:<44} {:<70} {:>3} {:>7} {:>9} {:>4} {}".format(*cells)
    notes = "".join(f"\n      {n}" for n in r.notes)
    return line + (f" ({r.seconds:.1f} s)" if r.seconds else "") + notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="skip the cases marked slow")
    p.add_argument("--only", metavar="TEXT", help="only the cases whose name contains TEXT")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = p.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="dpst-faults-"))
    try:
        ws = Workspace(root)
        ws.make_inputs()
        print("{:<44} {:<70} {:>3} {:>7} {:>9} {:>4} {}".format(*COLUMNS), flush=True)
        rows = run_cases(ws, args.quick, args.only, echo=lambda s: print(s, flush=True))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            _make_writable(root)
            shutil.rmtree(root, ignore_errors=True)
    failed = [r for r in rows if r.verdict == "FAIL"]
    skipped = [r for r in rows if r.verdict == "skip"]
    print(f"{len(rows) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
          f"{len(skipped)} skipped")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 1 if failed else 0


def _make_writable(root: Path) -> None:
    for folder in [root, *root.rglob("*")]:
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(0o755)


if __name__ == "__main__":
    sys.exit(main())
