"""The segmenter's ONNX file fetched on first use by ``--masks auto``, from a loopback server.

A tiny SegFormer of the real architecture (random weights, ADE20K's 150 classes) is exported
to ONNX here, as ``python -m dpst.models.segmenter_export`` exports one, and served in place
of the published SegFormer-B0 build: the table's entry is pointed at it (URL, SHA-256, size).
The server and the socket guard are test_vgg_download's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dpst.cli import main
from dpst.errors import WeightsNotFoundError
from dpst.labels.automatic import groups_or_none
from dpst.labels.regions import FROM_SEGMENTER
from dpst.models import segmenter_download
from dpst.models.segmenter_config import DEFAULT_SEGFORMER, SegmenterConfig
from dpst.models.segmenter_download import (
    DEFAULT_SEGMENTER_FILE,
    ENV_FOLDER,
    SEGMENTER_FILES,
    fetch_segmenter,
    spec_for,
)
from tests import test_vgg_download
from tests.conftest import sample_photo

pytest.importorskip("onnxruntime")

# The loopback server and the socket guard, shared with the VGG-19 download tests.
server = test_vgg_download.server
connects = test_vgg_download.connects


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> tuple[Path, Path, bytes]:
    """``(HF folder, ONNX file, its bytes)``: a tiny SegFormer and its ONNX export."""
    pytest.importorskip("transformers")
    from dpst.models.segmenter_export import export_segmenter_onnx
    from tests.tiny_segformer import save_tiny_segformer

    root = tmp_path_factory.mktemp("tiny-seg")
    folder = save_tiny_segformer(root / "hf", input_size=32)
    path = export_segmenter_onnx(str(folder), root / "tiny.onnx")
    return folder, path, path.read_bytes()


@pytest.fixture
def online(monkeypatch, tmp_path) -> Path:
    """Online (the conftest's HF_HUB_OFFLINE undone), no torch weights in any cache, an empty
    segmenter folder (returned; not created)."""
    for name in ("HF_HUB_OFFLINE", "DPST_OFFLINE", segmenter_download.ENV_URL):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    monkeypatch.setenv(ENV_FOLDER, str(tmp_path / "seg"))
    return tmp_path / "seg"


def _serve(monkeypatch, server, data: bytes, served: bytes | None = None) -> str:
    """Point the default entry at ``data`` on the loopback server (serving ``served``, the
    same bytes unless given); returns the path the server serves it at."""
    base, files, _requests = server
    path = "/onnx/model.onnx"
    files[path] = data if served is None else served
    spec = dataclasses.replace(
        SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE],
        url=base + path,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    monkeypatch.setitem(SEGMENTER_FILES, DEFAULT_SEGMENTER_FILE, spec)
    return path


def _fast(photos, out: Path, *extra: str) -> int:
    return main(["fast", *photos, "-o", str(out), *extra])


def _notes(err: str) -> list[str]:
    return [line for line in err.splitlines() if "no automatic masks" in line]


def test_the_default_entry_is_the_torch_paths_default_model():
    spec = spec_for(DEFAULT_SEGFORMER)
    assert spec is SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE]
    assert spec.url.startswith("https://") and len(spec.sha256) == 64 and spec.size > 0
    assert "NVIDIA" in spec.licence and spec.licence_url.startswith("https://")
    upernet = spec_for("openmmlab/upernet-convnext-tiny")
    assert upernet.licence == "MIT" and upernet.url is None  # exported here, never fetched


def test_first_use_downloads_checks_and_segments_second_use_does_not(
    server, online, tiny_onnx, photos, tmp_path, capsys, monkeypatch
):
    _base, _files, requests = server
    _folder, _path, data = tiny_onnx
    path = _serve(monkeypatch, server, data)

    assert _fast(photos, tmp_path / "first.png") == 0
    err = capsys.readouterr().err
    fetching = [line for line in err.splitlines() if "fetching the segmenter" in line]
    assert len(fetching) == 1, err
    assert "licence: NVIDIA Source Code License" in fetching[0] and "MiB" in fetching[0]
    assert _notes(err) == []  # segmented: no note about one region
    spec = SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE]
    assert sorted(p.name for p in online.iterdir()) == [spec.file_name]  # no partial file
    assert hashlib.sha256((online / spec.file_name).read_bytes()).hexdigest() == spec.sha256
    assert requests == [path]

    assert _fast(photos, tmp_path / "second.png") == 0
    err = capsys.readouterr().err
    assert "fetching" not in err and _notes(err) == []
    assert requests == [path]  # not fetched again


def test_corrupt_download_leaves_nothing_and_the_photo_is_still_made(
    server, online, tiny_onnx, photos, tmp_path, capsys, monkeypatch
):
    _base, _files, requests = server
    _folder, _path, data = tiny_onnx
    corrupt = data[: len(data) // 2] + b"\0" * (len(data) - len(data) // 2)
    path = _serve(monkeypatch, server, data, served=corrupt)

    assert _fast(photos, tmp_path / "out.png") == 0  # one region, as with no segmenter
    (note,) = _notes(capsys.readouterr().err)
    assert "downloaded segmenter refused" in note and "nothing was kept" in note
    assert requests == [path]
    assert not online.exists()  # no file, no partial file, no folder made
    assert (tmp_path / "out.png").is_file()


@pytest.mark.parametrize("variable", ["DPST_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_never_opens_a_socket(
    variable, server, online, connects, tiny_onnx, photos, tmp_path, capsys, monkeypatch
):
    _base, _files, requests = server
    _serve(monkeypatch, server, tiny_onnx[2])
    monkeypatch.setenv(variable, "1")
    assert _fast(photos, tmp_path / "out.png") == 0
    (note,) = _notes(capsys.readouterr().err)
    assert f"{variable} is set" in note and str(online) in note
    assert connects == [] and requests == [] and not online.exists()


def test_fetch_shows_progress_when_asked_and_refuses_offline(
    server, online, tiny_onnx, capsys, monkeypatch
):
    _serve(monkeypatch, server, tiny_onnx[2])
    spec = SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE]
    assert fetch_segmenter(spec, progress=True) == online / spec.file_name
    err = capsys.readouterr().err
    assert err.count("fetching the segmenter") == 1 and "100%" in err

    monkeypatch.setenv("DPST_OFFLINE", "1")

    with pytest.raises(WeightsNotFoundError, match="DPST_OFFLINE is set"):
        fetch_segmenter(spec, online / "elsewhere")


def test_onnx_labels_equal_the_torch_paths(tiny_onnx):
    pytest.importorskip("torch")
    from dpst.models.auto_labels import image_groups_resized, segment_image
    from dpst.models.segmenter import build_segmenter
    from dpst.models.segmenter_onnx import OnnxSegmenter

    folder, path, _ = tiny_onnx
    onnx_seg = OnnxSegmenter(path, SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE], "test")
    config = SegmenterConfig(weights=str(folder), device="cpu", allow_download=False)
    torch_seg = build_segmenter(config)
    assert onnx_seg.class_names == torch_seg.class_names
    for name in ("chelsea", "astronaut", "coffee"):
        image = sample_photo(name, 80)
        classes, _ = segment_image(torch_seg, image)
        np.testing.assert_array_equal(onnx_seg.predict(image), classes)
        np.testing.assert_array_equal(
            onnx_seg.image_groups(image, 48), image_groups_resized(image, torch_seg, 48)
        )


def test_numpy_upsampled_argmax_equals_torchs():
    torch = pytest.importorskip("torch")
    from dpst.models import segmenter as torch_path
    from dpst.models import segmenter_onnx as numpy_path

    logits = np.random.default_rng(3).normal(size=(150, 9, 13)).astype(np.float32)
    logits[7] += 2.5  # a class that wins widely, as real logits have
    expected = torch_path.upsample_argmax(torch.from_numpy(logits)[None], (37, 51))[0]
    np.testing.assert_array_equal(numpy_path.upsample_argmax(logits, (37, 51)), expected.numpy())
    np.testing.assert_array_equal(
        numpy_path.candidate_classes(logits),
        torch_path.candidate_classes(torch.from_numpy(logits)[None]).numpy(),
    )


def test_exported_file_carries_its_metadata_and_a_damaged_one_is_a_note(
    tiny_onnx, online, photos, tmp_path, capsys, monkeypatch
):
    import onnx

    _folder, path, data = tiny_onnx
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["input_size"]) == [32, 32] and len(json.loads(meta["id2label"])) == 150
    sidecar = path.with_name(path.name + ".sha256").read_text().split()
    assert sidecar == [hashlib.sha256(data).hexdigest(), path.name]

    spec = SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE]
    online.mkdir()
    (online / spec.file_name).write_bytes(data[:-10] + b"0123456789")  # damaged in the cache
    monkeypatch.setenv("DPST_OFFLINE", "1")
    assert _fast(photos, tmp_path / "out.png") == 0
    (note,) = _notes(capsys.readouterr().err)
    assert "damaged or replaced" in note and spec.file_name in note


def test_regions_come_from_the_segmenter_without_torch(tiny_onnx, online, tmp_path):
    """With the ONNX file on disk, --masks auto segments in a process where torch cannot be
    imported, and the regions say they are the segmenter's."""
    online.mkdir()
    (online / "tiny.onnx").write_bytes(tiny_onnx[2])
    script = textwrap.dedent(
        f"""
        import dataclasses, hashlib, os, sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import numpy as np
        from dpst.labels.automatic import groups_or_none
        from dpst.models import segmenter_download as sd
        from dpst.models.segmenter_config import SegmenterConfig
        key, folder = sd.DEFAULT_SEGMENTER_FILE, {str(online)!r}
        data = open(os.path.join(folder, "tiny.onnx"), "rb").read()
        spec = dataclasses.replace(
            sd.SEGMENTER_FILES[key], sha256=hashlib.sha256(data).hexdigest()
        )
        sd.SEGMENTER_FILES[key] = spec
        os.replace(os.path.join(folder, "tiny.onnx"), os.path.join(folder, spec.file_name))
        labeller = groups_or_none("fast", SegmenterConfig(), 64)
        image = np.random.default_rng(0).random((40, 56, 3)).astype(np.float32)
        regions = labeller.pair(image, image)
        print(regions.source, regions.content.shape, labeller.segmenter.describe()["backend"])
        assert sys.modules.get("torch") is None, "torch was imported"
        """
    )
    env = {**os.environ, "DPST_OFFLINE": "1"}
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.split() == [FROM_SEGMENTER, "(40,", "56)", "segformer-onnx"]
    assert ran.stderr.strip() == ""  # no note: segmented


def test_a_weights_folder_is_not_replaced_by_the_onnx_file(tiny_onnx, online, capsys):
    spec = SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE]
    online.mkdir()
    (online / spec.file_name).write_bytes(tiny_onnx[2])
    config = SegmenterConfig(weights=str(online / "absent"))
    assert groups_or_none("fast", config, 64) is None  # the folder named is what is used
    assert "no SegFormer weights there" in capsys.readouterr().err


def test_unreachable_host_is_one_attempt_and_one_note(
    online, tiny_onnx, photos, tmp_path, capsys, monkeypatch
):

    with socket.socket() as probe:  # a port nothing listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = dataclasses.replace(
        SEGMENTER_FILES[DEFAULT_SEGMENTER_FILE],
        url=f"http://127.0.0.1:{port}/onnx/model.onnx",
        sha256=hashlib.sha256(tiny_onnx[2]).hexdigest(),
    )
    monkeypatch.setitem(SEGMENTER_FILES, DEFAULT_SEGMENTER_FILE, spec)
    attempts = []
    real_connect = socket.socket.connect

    def counting(self, address):
        attempts.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    assert _fast(photos, tmp_path / "out.png") == 0
    (note,) = _notes(capsys.readouterr().err)
    assert "segmenter download failed: cannot reach 127.0.0.1" in note
    assert len(attempts) == 1 and not online.exists()


def test_export_of_a_model_outside_the_table_needs_an_output(capsys):
    from dpst.models.segmenter_export import main as export_main

    assert export_main(["someone/not-in-the-table"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass -o FILE.onnx" in err


def test_a_tiny_upernet_exported_here_labels_as_torch_does(tmp_path):
    """The MIT alternative's architecture (UperNet on ConvNeXt, tiny, random weights): the
    export goes through torch.export (its pooling pyramid) and labels as PyTorch does."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from dpst.models.ade20k import ADE20K_CLASSES
    from dpst.models.segformer import Preprocessing, preprocess
    from dpst.models.segmenter import upsample_argmax
    from dpst.models.segmenter_export import export_segmenter_onnx
    from dpst.models.segmenter_onnx import OnnxSegmenter

    torch.manual_seed(0)
    id2label = dict(enumerate(ADE20K_CLASSES))
    backbone = transformers.ConvNextConfig(
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 24, 32],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = transformers.UperNetConfig(
        backbone_config=backbone, hidden_size=16, num_labels=150, id2label=id2label,
        label2id={v: k for k, v in id2label.items()}, auxiliary_in_channels=24,
        auxiliary_channels=8,
    )  # fmt: skip
    model = transformers.UperNetForSemanticSegmentation(config).eval()
    model.save_pretrained(tmp_path / "hf")
    prep = {"size": {"height": 64, "width": 64}, "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225]}  # fmt: skip
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps(prep))
    path = export_segmenter_onnx(str(tmp_path / "hf"), tmp_path / "upernet.onnx")

    segmenter = OnnxSegmenter(path, spec_for("openmmlab/upernet-convnext-tiny"), "test")
    image = sample_photo("chelsea", 80)
    with torch.no_grad():
        x = preprocess(torch.from_numpy(image).permute(2, 0, 1)[None], Preprocessing((64, 64)))
        expected = upsample_argmax(model(pixel_values=x).logits, image.shape[:2])[0]
    np.testing.assert_array_equal(segmenter.predict(image), expected.numpy())
    assert segmenter.describe()["licence"] == "MIT"
