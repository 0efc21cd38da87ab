"""The model shipped in the package: bundle files round trip, and a fresh install (a built
wheel, an empty HOME, torch unimportable) stylises with it out of the box."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from dpst.errors import InputError
from dpst.imageio import write_image
from dpst.models.bundle import CONFIG_FILE, WEIGHTS_FILE, load_bundle, save_bundle
from dpst.models.generator import Generator, GeneratorConfig
from dpst.serve.runtime.stylizer import BUNDLED_MODEL
from tests.conftest import sample_photo

REPO = Path(__file__).resolve().parents[1]
TINY = GeneratorConfig(
    working_size=16, grid_size=4, luma_bins=4, max_labels=4, encoder_widths=(4, 8),
    head_width=8, global_levels=1, guide_hidden=4,
)  # fmt: skip


@pytest.mark.slow  # 74 s: a bundle's ONNX export
def test_bundle_round_trip_and_bad_bundles(tmp_path, one_thread):
    torch.manual_seed(0)
    model = Generator(TINY)
    result = save_bundle(model, tmp_path / "b", {"seed": 0})
    assert result.parity_ok
    loaded = load_bundle(tmp_path / "b")
    assert loaded.config == TINY
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    mode = stat.S_IMODE((tmp_path / "b" / WEIGHTS_FILE).stat().st_mode)
    assert mode & 0o044 == 0o044 or os.umask(0o022) & 0o044  # readable by others (umask)
    assert json.loads((tmp_path / "b" / CONFIG_FILE).read_text())["info"] == {"seed": 0}
    (tmp_path / "b" / WEIGHTS_FILE).write_bytes(b"garbage")
    with pytest.raises(InputError) as err:
        load_bundle(tmp_path / "b")
    assert "unreadable model bundle" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_the_shipped_bundle_is_small_and_complete():
    folder = BUNDLED_MODEL.parent
    names = {p.name for p in folder.iterdir()}
    assert {"model.onnx", "model.style.onnx", WEIGHTS_FILE, CONFIG_FILE, "MODEL_CARD.md"} <= names
    shipped = ("model.onnx", "model.style.onnx", WEIGHTS_FILE, CONFIG_FILE)
    model_bytes = sum((folder / name).stat().st_size for name in shipped)
    assert model_bytes <= 3 * 1024 * 1024
    assert load_bundle(folder).config.base == "mkl"


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    grey = image.mean(axis=2)
    gy, gx = np.gradient(grey)
    return np.hypot(gx, gy)


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model in this checkout")
def test_a_fresh_install_stylises_with_the_bundled_model_without_torch(tmp_path):
    wheels, site, home = tmp_path / "wheels", tmp_path / "site", tmp_path / "home"
    home.mkdir()
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                            str(REPO)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("dpst-*.whl")
    done = subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]

    # A neutral (grey) photo and a strongly tinted style photo.
    content = np.repeat(sample_photo("camera", 96)[..., :1], 3, axis=2)
    style = sample_photo("astronaut", 96) * np.array([1.0, 0.55, 0.25], dtype=np.float32)
    write_image(tmp_path / "content.png", content)
    write_image(tmp_path / "style.png", style)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import dpst
        assert dpst.__file__.startswith({str(site)!r}), dpst.__file__
        from dpst.cli import main
        code = main(["fast", {str(tmp_path / "content.png")!r}, {str(tmp_path / "style.png")!r},
                     "-o", {str(tmp_path / "out.png")!r}])
        assert code == 0, code
        assert not any(name == "torch" or name.startswith("torch.")
                       for name, module in sys.modules.items() if module is not None)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DPST_MODEL", "PYTHONPATH")}
    env.update(HOME=str(home), PYTHONPATH=str(site))
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "bundled" in ran.stdout

    from dpst.imageio import read_image

    out = read_image(tmp_path / "out.png")
    c_mean, s_mean, o_mean = (x.reshape(-1, 3).mean(0) for x in (content, style, out))
    assert np.linalg.norm(o_mean - s_mean) <= 0.5 * np.linalg.norm(c_mean - s_mean)
    corr = np.corrcoef(_gradient_magnitude(content).ravel(), _gradient_magnitude(out).ravel())
    assert corr[0, 1] >= 0.9, corr[0, 1]


@pytest.mark.slow  # 53 s: a bundle's ONNX export
def test_init_from_a_bundle_takes_its_model_unless_one_is_set(tmp_path, one_thread):
    from dpst.models.bundle import load_generator
    from dpst.train.config import TrainConfig
    from dpst.train.loop import _model_of_init

    torch.manual_seed(0)
    save_bundle(Generator(TINY), tmp_path / "b")
    adopted = _model_of_init(TrainConfig(init_from=str(tmp_path / "b")))
    assert adopted.model == TINY
    own = GeneratorConfig(head_width=32)
    assert _model_of_init(TrainConfig(init_from=str(tmp_path / "b"), model=own)).model == own
    if BUNDLED_MODEL.is_file():
        assert load_generator("bundled").config == load_bundle(BUNDLED_MODEL.parent).config
