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
