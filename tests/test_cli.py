import subprocess
import sys

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
    import json

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
