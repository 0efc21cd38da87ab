import json
import os
import subprocess
import sys
import textwrap

import pytest

from dpst import __version__
from dpst.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"dpst {__version__}"


def test_help_lists_usage(capsys):
    assert main([]) == 0
    assert "usage: dpst" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "dpst", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: dpst" in out.stdout


def test_resolve_layers_defaults_then_config_file_then_flags(tmp_path):

    from dpst.cli import build_parser
    from dpst.commands.stylize import optimiser_configs

    report = {"config": {"size": 300, "iters": 7, "weights": {"style": 50.0},
                         "backbone": {"name": "vgg19", "weights": "/some/vgg.pth"}}}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(report))
    argv = ["stylize", "c.png", "s.png", "-o", "o.png", "--config", str(tmp_path / "run.json")]
    args = build_parser().parse_args([*argv, "--iters", "3", "--tv-weight", "0.5"])
    config, backbone = optimiser_configs(args)
    assert (config.size, config.iters, config.stages) == (300, 3, 2)  # file, flag, default
    assert (config.weights.style, config.weights.tv) == (50.0, 0.5)
    assert (backbone.name, backbone.weights) == ("vgg19", "/some/vgg.pth")
    # The random stand-in takes no weights file, whatever a lower layer named.
    random = optimiser_configs(build_parser().parse_args([*argv, "--backbone", "random"]))[1]
    assert (random.name, random.weights) == ("random", None)


def _subparser(command: str):
    from dpst.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices[command]


@pytest.mark.parametrize("command", ["stylize", "targets", "demo"])
@pytest.mark.parametrize("value", ["0", "-3", "2.5"])
def test_non_positive_iteration_counts_are_refused_when_parsing(capsys, command, value):
    positional = {"stylize": ["c.png", "s.png", "-o", "o.png"], "targets": ["m.jsonl"]}
    argv = [command, *positional.get(command, []), "--iters", value]
    if command == "targets":
        argv += ["--out", "t"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"dpst {command}: error: argument --iters:"), err
    assert ("at least 1" if value != "2.5" else "whole number") in err


def test_a_config_file_with_zero_iterations_is_refused_in_one_line(tmp_path, capsys):

    from dpst.imageio import write_image
    from tests.conftest import sample_photo

    write_image(tmp_path / "c.png", sample_photo("chelsea", 16))
    (tmp_path / "cfg.json").write_text(json.dumps({"iters": 0}))
    argv = ["stylize", str(tmp_path / "c.png"), str(tmp_path / "c.png"), "-o"]
    argv += [str(tmp_path / "o.png"), "--config", str(tmp_path / "cfg.json")]
    assert main([*argv, "--backbone", "random", "--masks", "none", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "iters must be at least 1, got 0" in err
    assert not (tmp_path / "o.png").exists()


def test_stylize_and_fast_share_one_masks_default_and_its_help():
    from dpst.commands.options import MASKS_DEFAULT, MASKS_HELP

    argv = ["c.png", "s.png", "-o", "o.png"]
    # Both find regions in one order (dpst.labels.finder): one help says it.
    for command in ("stylize", "fast"):
        parser = _subparser(command)
        args = parser.parse_args(argv)
        assert (args.masks, args.segmenter) == (MASKS_DEFAULT, "segformer") == ("auto", "segformer")
        assert MASKS_HELP in " ".join(parser.format_help().split())


def test_the_torch_free_weight_files_match_the_segformer_loaders():
    from dpst.labels.automatic import WEIGHT_FILES
    from dpst.models.segformer import WEIGHT_FILES as LOADED

    assert WEIGHT_FILES == LOADED


def test_auto_masks_need_weights_on_disk_and_never_fetch(tmp_path, monkeypatch):
    from dpst.labels.automatic import local_segmenter_missing
    from dpst.models.segmenter_config import SegmenterConfig
    from tests.tiny_segformer import save_tiny_segformer

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    missing = local_segmenter_missing(SegmenterConfig())
    assert "not on this machine" in missing and "hf download" in missing
    assert "no SegFormer weights there" in local_segmenter_missing(
        SegmenterConfig(weights=str(tmp_path))
    )
    weights = save_tiny_segformer(tmp_path / "tiny")
    assert local_segmenter_missing(SegmenterConfig(weights=str(weights))) is None
    assert local_segmenter_missing(SegmenterConfig(backend="none")) is None


@pytest.mark.parametrize("torch_importable", [True, False])
def test_auto_masks_without_weights_fall_back_without_importing_torch(tmp_path, torch_importable):
    """What plain ``dpst fast`` does with no segmenter on disk (or no torch at all): one line,
    one region, and torch never imported."""

    script = textwrap.dedent(
        f"""
        import sys
        if not {torch_importable}:
            sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import numpy as np
        from dpst.labels.automatic import automatic_or_none
        from dpst.models.segmenter_config import SegmenterConfig
        image = np.zeros((8, 8, 3), np.float32)
        assert automatic_or_none("fast", image, image, SegmenterConfig(), 64) is None
        assert sys.modules.get("torch") is None, "torch was imported"
        """
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty")}
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    err = ran.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("dpst fast: no automatic masks (") and err.endswith("; using one region")
    assert ("not on this machine" if torch_importable else "needs torch") in err


def test_a_handled_interrupt_keeps_the_exit_code_the_command_chose(tmp_path):
    """CPython ends a ``python -m`` process by SIGINT at exit when a KeyboardInterrupt once
    escaped code run through PyRun_* (a library's), even if it was handled: dpst targets
    stopped by SIGHUP returned 129 and died by SIGINT (-2). The command here makes that
    escape itself, then fails with a user error: its exit code must be 2."""
    (tmp_path / "trigger.py").write_text(
        "import ctypes, sys\n"
        "import dpst.commands.fast as fast\n"
        "from dpst.errors import InputError\n"
        "def run(args):\n"
        "    ctypes.pythonapi.PyRun_SimpleStringFlags(b'raise KeyboardInterrupt', None)\n"
        "    raise InputError('stopped')\n"
        "fast.run = run\n"
        "from dpst.cli import main\n"
        "sys.exit(main(['fast', 'a.png', 'b.png', '-o', 'x.png']))\n"
    )
    ran = subprocess.run(
        [sys.executable, "-m", "trigger"], cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 2, ran.stderr[-2000:]  # not -2 (SIGINT)
    assert "dpst fast: error: stopped" in ran.stderr
