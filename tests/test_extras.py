"""Install layers: a command whose extra is not installed says which one in a line, exit 2.

Each case runs ``dpst`` in a fresh interpreter where the extra's module cannot be imported
(``sys.modules[name] = None``), as the torch-free runtime's test does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpst.extras import COMMAND_EXTRAS, EXTRA_MODULES, extra_of, install_hint

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# The distribution of each module an extra adds (for the check that the core has none).
DISTRIBUTIONS = {"cv2": "albumentations", "huggingface_hub": "huggingface-hub"}


def _run(blocked: tuple[str, ...], argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # any import of it now raises ImportError
        from dpst.cli import main
        sys.exit(main({argv!r}))
        """
    )
    env = {**os.environ, "DPST_OFFLINE": "1", "HF_HUB_CACHE": str(cwd / "hf"),
           "PYTHONPATH": str(REPO)}  # fmt: skip
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        (("torch",), ["stylize", "c.png", "s.png", "-o", "o.png", "--backbone", "random"],
         "optimiser"),
        (("torch",), ["demo", "--quality", "-o", "o.png", "--backbone", "random"], "optimiser"),
        (("torch",), ["segment", "c.png", "s.png", "--out-dir", "seg"], "seg"),
        (("tensorboard",), ["train", "m.jsonl", "--run-dir", "run"], "train"),
        (("torch",), ["export", "gen.pt", "-o", "m.onnx"], "train"),
        (("gradio",), ["serve"], "serve"),
        (("av",), ["video", "v.mp4", "s.png", "-o", "o.mp4"], "video"),
    ],
)  # fmt: skip
def test_a_command_without_its_extra_names_the_extra_in_one_line(tmp_path, blocked, argv, extra):
    for name in ("c.png", "s.png"):
        Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(tmp_path / name)
    (tmp_path / "m.jsonl").write_text('{"content": "c.png", "style": "s.png"}\n')
    (tmp_path / "gen.pt").write_bytes(b"x")
    (tmp_path / "v.mp4").write_bytes(b"x")
    ran = _run(blocked, argv, tmp_path)
    assert ran.returncode == 2, ran.stderr[-2000:]
    assert "Traceback" not in ran.stderr
    line = ran.stderr.strip()
    assert len(line.splitlines()) == 1, ran.stderr
    assert line.startswith(f"dpst {argv[0]}: error: ")
    assert line.endswith(f"pip install 'dpst[{extra}]'"), line


def test_the_web_demo_without_torch_runs_fast_mode_and_says_what_quality_mode_needs(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None
        from dpst.cli import build_parser
        from dpst.commands.serve import build_config
        from dpst.serve.app.engine import DemoEngine
        engine = DemoEngine(build_config(build_parser().parse_args(["serve"])))
        assert engine.fast is not None, engine.fast_off
        print(engine.backbone_off.console)
        print(engine.automatic_available()[1])
        assert sys.modules.get("torch") is None
        """
    )
    env = {**os.environ, "DPST_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf")}
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    quality, automatic = ran.stdout.strip().splitlines()
    assert quality == "torch is not installed: pip install 'dpst[optimiser]'"
    # Automatic masks need no torch: the segmenter runs on ONNX Runtime when its file is here,
    # else the weight-free regions (offline here), and the line says which.
    assert automatic.endswith("using weight-free regions"), automatic


def test_only_a_missing_module_of_an_extra_is_a_missing_extra():
    def missing(name):
        return ModuleNotFoundError(f"No module named {name!r}", name=name)

    assert install_hint(missing("torch")) == "torch is not installed: pip install 'dpst[optimiser]'"
    assert install_hint(missing("torch"), "segment").endswith("'dpst[seg]'")
    assert install_hint(missing("torch"), "train").endswith("'dpst[train]'")
    assert install_hint(missing("transformers"), "stylize").endswith("'dpst[seg]'")
    # A broken install (a submodule missing), a module no extra installs, another error: bugs.
    assert install_hint(missing("torch._C")) is None
    assert install_hint(missing("no_such_module")) is None
    assert install_hint(ImportError("cannot import name 'x'", name="torch")) is None
    assert extra_of("numpy") is None


def _names(requirements: list[str]) -> set[str]:
    """Requirement names, ``dpst[a,b]`` expanded to its extras' (recursively)."""
    from packaging.requirements import Requirement

    extras = PYPROJECT["project"]["optional-dependencies"]
    names = set()
    for text in requirements:
        req = Requirement(text)
        if req.name == "dpst":
            for extra in req.extras:
                names |= _names(extras[extra])
        else:
            names.add(req.name)
    return names


def test_the_extras_are_pyprojects():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(EXTRA_MODULES) | {"gpu", "all", "test"} == set(extras)
    assert set(COMMAND_EXTRAS.values()) <= set(EXTRA_MODULES)
    assert _names(extras["all"]) == set().union(
        *(_names(v) for k, v in extras.items() if k != "test")
    )
    core = _names(PYPROJECT["project"]["dependencies"])
    assert "onnxruntime" in core and not core & _names(extras["all"])
    for extra, modules in EXTRA_MODULES.items():
        for module in modules:
            assert DISTRIBUTIONS.get(module, module) in _names(extras[extra]), (extra, module)
    # The packages the project requires all stay in `all`.
    required = {"torch", "torchvision", "onnx", "onnxruntime-gpu", "albumentations",
                "tensorboard", "gradio"}  # fmt: skip
    assert required <= _names(extras["all"])
