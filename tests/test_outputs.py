"""Outputs: checked before any work, never an input, kept when the write fails; SIGTERM and
SIGHUP stop ``dpst stylize`` as Ctrl-C does (issue 18, items 1-3)."""

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dpst.cli import main
from dpst.imageio import read_image, write_image
from tests.conftest import sample_photo

FAST = ["--size", "24", "--iters", "1", "--backbone", "random", "--no-postfilter", "--quiet"]
FAST += ["--masks", "none"]
SUBPROCESS_TIMEOUT = 240


def _pair(tmp_path: Path) -> list[str]:
    write_image(tmp_path / "c.png", sample_photo("chelsea", 24))
    write_image(tmp_path / "s.png", sample_photo("coffee", 24))
    return [str(tmp_path / "c.png"), str(tmp_path / "s.png")]


def _refused(capsys, code: int, *words: str) -> str:
    """Exit 2 with one line on stderr containing ``words``."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if dpst stylize gets as far as reading images."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the output was not checked before the work")

    monkeypatch.setattr("dpst.commands.stylize._stylize", forbidden)


def test_stylize_refuses_an_output_that_is_an_input(tmp_path, capsys, monkeypatch, no_work):
    content, style = _pair(tmp_path)
    before = Path(content).read_bytes()
    monkeypatch.chdir(tmp_path)
    # Spelled differently: ./ and a symlink both resolve to the content photo.
    (tmp_path / "link.png").symlink_to(content)
    for out in ("./c.png", "link.png", str(tmp_path / "sub" / ".." / "c.png")):
        code = main(["stylize", "c.png", style, "-o", out, *FAST])
        _refused(capsys, code, "would replace the content photo (c.png)")
    code = main(["stylize", content, style, "-o", "s.png", *FAST])
    _refused(capsys, code, "style photo")
    assert Path(content).read_bytes() == before


def test_stylize_refuses_an_output_over_a_mask_or_the_config(tmp_path, capsys, no_work):
    content, style = _pair(tmp_path)
    write_image(tmp_path / "cm.png", sample_photo("chelsea", 24))
    write_image(tmp_path / "sm.png", sample_photo("coffee", 24))
    masks = ["--content-mask", str(tmp_path / "cm.png"), "--style-mask", str(tmp_path / "sm.png")]
    code = main(["stylize", content, style, "-o", str(tmp_path / "sm.png"), *masks, *FAST])
    _refused(capsys, code, "--style-mask")
    # The report, o.png.json, would replace the --config it came from.
    (tmp_path / "o.png.json").write_text("{}")
    config = ["--config", str(tmp_path / "o.png.json")]
    code = main(["stylize", content, style, "-o", str(tmp_path / "o.png"), *config, *FAST])
    _refused(capsys, code, "--config", "o.png.json")


def test_stylize_refuses_a_hard_link_to_an_input(tmp_path, capsys, no_work):
    content, style = _pair(tmp_path)
    os.link(content, tmp_path / "hard.png")
    code = main(["stylize", content, style, "-o", str(tmp_path / "hard.png"), *FAST])
    _refused(capsys, code, "content photo")


def test_fast_refuses_an_output_that_is_an_input(tmp_path, capsys):
    content, style = _pair(tmp_path)
    before = Path(style).read_bytes()
    code = main(["fast", content, style, "-o", style])
    _refused(capsys, code, "style photo")
    assert Path(style).read_bytes() == before


def test_export_refuses_to_write_over_the_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "model.onnx"
    checkpoint.write_bytes(b"a checkpoint under an odd name")
    code = main(["export", str(checkpoint), "-o", str(tmp_path / "." / "model.onnx")])
    _refused(capsys, code, "checkpoint")
    # The style encoder written beside the stylizer counts too.
    encoder = tmp_path / "m.style.onnx"
    encoder.write_bytes(b"x")
    code = main(["export", str(encoder), "-o", str(tmp_path / "m.onnx")])
    _refused(capsys, code, "checkpoint")
    assert checkpoint.read_bytes() == b"a checkpoint under an odd name"
    # And so does a graph's checksum file (issue 25, item 1).
    sidecar = tmp_path / "m.render.onnx.sha256"
    sidecar.write_bytes(b"x")
    code = main(["export", str(sidecar), "-o", str(tmp_path / "m.onnx")])
    _refused(capsys, code, "checkpoint")


@pytest.mark.parametrize(
    "output, words",
    [
        ("o", ["no file extension", ".png", ".jpg"]),
        ("o.gif", ["unknown image format '.gif'", ".png"]),
        ("folder", ["is a folder"]),
        ("new/", ["is a folder"]),
        ("file.txt/o.png", ["cannot create the folder", "is a file"]),
        ("file.txt/deeper/o.png", ["cannot create the folder", "is a file"]),
    ],
)
def test_bad_outputs_are_refused_before_any_work(
    tmp_path, capsys, monkeypatch, no_work, output, words
):
    content, style = _pair(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("a regular file")
    monkeypatch.chdir(tmp_path)
    code = main(["stylize", content, style, "-o", output, *FAST])
    _refused(capsys, code, *words)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_any_work(tmp_path, capsys, no_work):
    content, style = _pair(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["stylize", content, style, "-o", str(locked / "o.png"), *FAST])
        _refused(capsys, code, "cannot write in", "locked")
        code = main(["demo", "-o", str(locked / "sub" / "demo.png")])
        _refused(capsys, code, "cannot write in")
    finally:
        locked.chmod(0o700)


def test_every_image_command_checks_its_output(tmp_path, capsys):
    content, style = _pair(tmp_path)
    (tmp_path / "file.txt").write_text("a regular file")
    for command in (["fast", content, style], ["demo"]):
        code = main([*command, "-o", str(tmp_path / "file.txt" / "o.png")])
        _refused(capsys, code, "is a file")
        code = main([*command, "-o", str(tmp_path / "o.psd")])
        _refused(capsys, code, "unknown image format")
    code = main(["export", "ckpt.pt", "-o", str(tmp_path / "file.txt" / "m.onnx")])
    _refused(capsys, code, "is a file")
    code = main(["export", "ckpt.pt", "--bundle", str(tmp_path / "file.txt")])
    _refused(capsys, code, "is a file")


def test_missing_output_folders_are_created(tmp_path):
    out = tmp_path / "new" / "deeper" / "o.png"
    assert main(["stylize", *_pair(tmp_path), "-o", str(out), *FAST]) == 0
    assert read_image(out).shape == sample_photo("chelsea", 24).shape


def test_a_failed_final_write_keeps_the_result_elsewhere(tmp_path, capsys, monkeypatch):
    """A full disk at the end: the image and its report are saved in the temp folder."""

    import dpst.imageio as imageio

    real = imageio.atomic_write
    full = tmp_path / "full"

    def disk_full(path, write):
        if Path(path).parent == full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, write)

    monkeypatch.setattr(imageio, "atomic_write", disk_full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code = main(["stylize", *_pair(tmp_path), "-o", str(full / "o.png"), *FAST])
    err = _refused(capsys, code, "could not write", "No space left on device", "saved as")
    saved = Path(err.split("saved as ")[1].split()[0])
    assert saved.parent == tmp_path / "tmp" and saved.suffix == ".png"
    assert read_image(saved).shape == sample_photo("chelsea", 24).shape
    assert json.loads(Path(f"{saved}.json").read_text())["interrupted"] is False
    assert not (full / "o.png").exists()


def test_termination_signals_raise_keyboard_interrupt_and_are_restored():
    from dpst.commands.signals import termination_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGHUP, 129)):
        with termination_as_interrupt() as received:
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the handler runs at once; never reached
        assert received.exit_code() == code
    assert signal.getsignal(signal.SIGTERM) is before


def test_training_stops_on_sighup_too():
    from dpst.train.stop_signal import StopSignal

    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.1)
        assert stop.requested


@pytest.mark.slow  # 10 s: signals to running optimisers, in subprocesses
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_write_the_result_so_far(tmp_path, sig, code):
    out = tmp_path / "o.png"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpst", "stylize", *_pair(tmp_path), "-o", str(out),
         "--backbone", "random", "--size", "24", "--iters", "100000", "--stages", "1",
         "--masks", "none", "--snapshot-every", "1", "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    snapshots = tmp_path / "o.snapshots"
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        # Iterating once a snapshot is there: the signal then stops the optimisation.
        while not (snapshots.is_dir() and any(snapshots.glob("*.png"))):
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(sig)
        stdout, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-2000:]
    report = json.loads(out.with_name("o.png.json").read_text())
    assert report["interrupted"] is True
    assert report["stages"][0]["status"] == "interrupted"
    assert read_image(out).shape == sample_photo("chelsea", 24).shape
    assert "interrupted (" in stdout and "Traceback" not in err


def _help(command: str) -> str:
    from dpst.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    return " ".join(sub.format_help().split())  # argparse wraps lines anywhere


def test_every_o_help_lists_exactly_the_writable_formats():
    from dpst.image_formats import IMAGE_FORMATS, listed

    assert listed() == ".png, .jpg, .jpeg, .tif, .tiff, .webp or .bmp"
    assert all(suffix in listed() for suffix in IMAGE_FORMATS)
    for command in ("stylize", "fast", "demo"):
        assert listed() in _help(command), command


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".TIFF"])
def test_a_tiff_output_is_accepted_and_written_as_tiff(tmp_path, suffix):
    from PIL import Image

    out = tmp_path / f"o{suffix}"
    assert main(["stylize", *_pair(tmp_path), "-o", str(out), *FAST]) == 0
    with Image.open(out) as img:
        assert (img.format, img.mode, img.size) == ("TIFF", "RGB", (24, 16))
    assert json.loads(out.with_name(out.name + ".json").read_text())["inputs"]
