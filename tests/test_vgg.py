"""VGG-19 backbone: layout, preprocessing, every weight source through the real loading code."""

from __future__ import annotations

import hashlib
import math
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision

from dpst.errors import InputError, WeightsNotFoundError
from dpst.optim_reference import vgg, vgg_weights
from dpst.optim_reference.vgg import (
    CAFFE_MEAN_BGR,
    CONTENT_LAYER,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STYLE_LAYERS,
    VGG19_LAYOUT,
    BackboneConfig,
    VGG19Features,
    load_backbone,
)
from tests.tolerances import DTYPE_TOLERANCES

RTOL, ATOL = DTYPE_TOLERANCES[torch.float32]
# The "not calibrated" note comes with every torchvision-format load; the tests that are about
# it check it with pytest.warns, which sees it despite this filter.
pytestmark = pytest.mark.filterwarnings("ignore:torchvision's VGG-19 weights:UserWarning")
ALL_LAYERS = tuple(name for name, _ in VGG19_LAYOUT)


def torchvision_features() -> torch.nn.Sequential:
    """torchvision's own VGG-19 `features` (the classifier is not needed and is 400 MB)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(1)
    return make_layers(cfgs["E"]).eval()


@pytest.fixture(scope="module")
def tv_file(tmp_path_factory) -> tuple[Path, torch.nn.Sequential]:
    """A state dict in torchvision's format (full features + a classifier key), and its net."""
    features = torchvision_features()
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # extra keys must be ignored
    path = tmp_path_factory.mktemp("tv") / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path, features


@pytest.fixture(scope="module")
def caffe_file(tmp_path_factory) -> tuple[Path, dict]:
    """The Caffe port's layout (jcjohnson's 2017 legacy file: classifier.1/.4/.6), faked."""
    generator = torch.Generator().manual_seed(2)
    state = {}
    for name, (c_in, c_out) in vgg.conv_channels().items():
        index = vgg.VGG19_LAYER_INDEX[name]
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=generator)
        state[f"features.{index}.weight"] *= 0.01
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=generator)
    for i in (1, 4, 6):
        state[f"classifier.{i}.weight"] = torch.zeros(2, 2)
    path = tmp_path_factory.mktemp("caffe") / "vgg19-d01eb7cb.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path, state


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> Path:
    """No DPST_VGG_WEIGHTS, TORCH_HOME in an empty folder, downloads fail loudly."""
    monkeypatch.delenv(vgg_weights.ENV_WEIGHTS, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # The download is dpst's own (one attempt, a timeout): no request leaves this machine.
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


def sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_sequential(features: torch.nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """torchvision's net layer by layer (its ReLUs are in place, hence the clones)."""
    out, h = {}, x
    for (name, _), layer in zip(VGG19_LAYOUT, features, strict=False):
        h = layer(h)
        out[name] = h.clone()
    return out


def test_layout_names_and_torchvision_indices():
    assert len(VGG19_LAYOUT) == 30
    assert VGG19_LAYOUT[0] == ("conv1_1", "conv") and VGG19_LAYOUT[-1] == ("relu5_1", "relu")
    assert [n for n, k in VGG19_LAYOUT if k == "pool"] == ["pool1", "pool2", "pool3", "pool4"]
    assert {CONTENT_LAYER, *STYLE_LAYERS} <= set(ALL_LAYERS)
    # Our layout index is torchvision's `features` index: same layer types in the same places.
    kinds = {torch.nn.Conv2d: "conv", torch.nn.ReLU: "relu", torch.nn.MaxPool2d: "pool"}
    tv = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    assert [kinds[type(m)] for m in list(tv)[:30]] == [k for _, k in VGG19_LAYOUT]


def test_torchvision_file_matches_torchvision_features(tv_file):
    path, features = tv_file
    with pytest.warns(UserWarning, match="not calibrated"):
        model, identity = load_backbone(BackboneConfig(weights=str(path)))
    assert identity["preprocessing"] == "torchvision"
    assert "not calibrated" in identity["note"] and identity["url"] is None
    assert identity["format_detected_by"] == "filename"
    assert identity["source"] == "file" and identity["random"] is False
    assert identity["sha256"] == sha16(path) and identity["path"] == str(path)
    x = torch.rand(2, 3, 32, 48)  # even sizes: ceil and floor pooling agree
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = run_sequential(features, (x - mean) / std)
    ours = model(x, ALL_LAYERS)
    for name in ALL_LAYERS:
        torch.testing.assert_close(ours[name], expected[name], rtol=RTOL, atol=ATOL, msg=name)


def test_caffe_file_uses_caffe_preprocessing(caffe_file):
    path, state = caffe_file
    model, identity = load_backbone(BackboneConfig(weights=str(path)))
    assert identity["preprocessing"] == "caffe" == model.preprocessing
    assert identity["format_detected_by"] == "keys"
    features = torchvision_features()
    features.load_state_dict(
        {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")},
        strict=False,
    )
    x = torch.rand(1, 3, 16, 16)
    bgr255 = x[:, [2, 1, 0]] * 255.0 - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    expected = run_sequential(features, bgr255)
    ours = model(x, STYLE_LAYERS)
    for name in STYLE_LAYERS:
        scale = expected[name].abs().max()
        torch.testing.assert_close(ours[name] / scale, expected[name] / scale, msg=name)


def test_renamed_caffe_file_detected_by_name(caffe_file, tmp_path):
    # neural-style-pt re-saves the file with torchvision's classifier keys, same name.
    _, state = caffe_file
    renamed = {k: v for k, v in state.items() if k.startswith("features.")}
    renamed["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg19-d01eb7cb.pth"
    torch.save(renamed, path)
    _, identity = load_backbone(BackboneConfig(weights=str(path)))
    assert (identity["preprocessing"], identity["format_detected_by"]) == ("caffe", "filename")
    _, identity = load_backbone(BackboneConfig(weights=str(path), format="torchvision"))
    assert (identity["preprocessing"], identity["format_detected_by"]) == ("torchvision", "given")


def test_unrecognisable_file_warns_and_assumes_torchvision(tv_file, tmp_path):
    path = tmp_path / "my_vgg.pth"
    torch.save(torch.load(tv_file[0], weights_only=True), path)
    with pytest.warns(UserWarning, match="cannot tell Caffe from torchvision"):
        _, identity = load_backbone(BackboneConfig(weights=str(path)))
    assert (identity["preprocessing"], identity["format_detected_by"]) == ("torchvision", "default")


def test_env_var_is_used(tv_file, clean_env, monkeypatch):
    monkeypatch.setenv(vgg_weights.ENV_WEIGHTS, str(tv_file[0]))
    _, identity = load_backbone(BackboneConfig())
    assert identity["resolved_by"] == "env:DPST_VGG_WEIGHTS" and identity["path"] == str(tv_file[0])


def test_torchvision_weights_only_by_name(tv_file, clean_env, monkeypatch):
    clean_env.mkdir(parents=True)
    os.symlink(tv_file[0], clean_env / vgg_weights.TORCHVISION_FILE)
    # In the cache but not asked for: the search wants the Caffe file (offline here).
    with pytest.raises(WeightsNotFoundError, match=vgg_weights.CAFFE_FILE):
        load_backbone(BackboneConfig())
    with pytest.warns(UserWarning, match="not calibrated"):
        model, identity = load_backbone(BackboneConfig(weights="torchvision"))
    assert identity["source"] == "torchvision-cache"
    assert identity["path"] == str(clean_env / vgg_weights.TORCHVISION_FILE)
    assert identity["url"] == vgg_weights.TORCHVISION_URL
    assert model.preprocessing == "torchvision" and "not calibrated" in identity["note"]
    monkeypatch.setenv(vgg_weights.ENV_WEIGHTS, "torchvision")  # the name works there too
    with pytest.warns(UserWarning, match="not calibrated"):
        _, identity = load_backbone(BackboneConfig())
    assert identity["path"] == str(clean_env / vgg_weights.TORCHVISION_FILE)


def test_caffe_file_in_checkpoints_preferred(tv_file, caffe_file, clean_env):
    clean_env.mkdir(parents=True)
    os.symlink(tv_file[0], clean_env / vgg_weights.TORCHVISION_FILE)
    os.symlink(caffe_file[0], clean_env / vgg_weights.CAFFE_FILE)
    _, identity = load_backbone(BackboneConfig())
    assert identity["path"] == str(clean_env / vgg_weights.CAFFE_FILE)
    assert identity["preprocessing"] == "caffe" and identity["source"] == "file"
    assert identity["resolved_by"] == "hub-checkpoints" and identity["url"] == vgg_weights.CAFFE_URL
    assert "note" not in identity


def test_offline_without_weights_is_one_line(clean_env):
    # The conftest sets HF_HUB_OFFLINE=1: nothing is fetched, the message says what to fetch.
    with pytest.raises(WeightsNotFoundError) as info:
        load_backbone(BackboneConfig())
    message = str(info.value)
    assert "\n" not in message and "HF_HUB_OFFLINE is set" in message
    assert vgg_weights.CAFFE_URL in message and str(clean_env) in message
    assert not clean_env.parent.parent.exists()  # not even TORCH_HOME was made


def test_failed_download_is_one_line_and_leaves_nothing(clean_env, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DPST_OFFLINE", raising=False)
    with pytest.raises(WeightsNotFoundError) as info:
        load_backbone(BackboneConfig())  # clean_env's download raises URLError
    message = str(info.value)
    assert "\n" not in message and "URLError" in message and vgg_weights.CAFFE_URL in message
    assert str(clean_env) in message
    assert not clean_env.parent.parent.exists()  # the folders it made are gone again
    with pytest.raises(WeightsNotFoundError, match="downloading is off"):
        load_backbone(BackboneConfig(download=False))


def test_missing_files_are_one_line(tmp_path, clean_env, monkeypatch):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsNotFoundError, match=r"nope\.pth") as info:
        load_backbone(BackboneConfig(weights=str(missing)))
    assert "\n" not in str(info.value)
    monkeypatch.setenv(vgg_weights.ENV_WEIGHTS, str(missing))
    with pytest.raises(WeightsNotFoundError, match="DPST_VGG_WEIGHTS"):
        load_backbone(BackboneConfig())


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable PyTorch state dict"),
        (b"not a pickle at all", "not a readable PyTorch state dict"),
        ({"features.0.weight": torch.zeros(64, 3, 3, 3)}, r"no key features\.0\.bias \(conv1_1\)"),
        ({"features.0.weight": torch.zeros(64, 3, 5, 5)}, r"has shape \(64, 3, 5, 5\)"),
        ([1, 2], "not a state dict of tensors"),
    ],
)
def test_bad_weight_files_are_one_line(tmp_path, content, match):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(InputError, match=match) as info:
        load_backbone(BackboneConfig(weights=str(path), format="torchvision"))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_random_backbone_seeded_and_reported():
    a, identity = load_backbone(BackboneConfig(name="random", seed=3))
    b, _ = load_backbone(BackboneConfig(name="random", seed=3))
    c, _ = load_backbone(BackboneConfig(name="random", seed=4))
    assert identity == {
        "name": "random",
        "random": True,
        "source": "random",
        "path": None,
        "sha256": None,
        "seed": 3,
        "preprocessing": "caffe",
    }
    x = torch.rand(1, 3, 20, 20)
    torch.testing.assert_close(a(x, ["relu5_1"]), b(x, ["relu5_1"]), rtol=0, atol=0)
    assert not torch.equal(a.conv1_1.weight, c.conv1_1.weight)
    with pytest.raises(ValueError, match="random"):
        load_backbone(BackboneConfig(name="random", weights="x.pth"))


def test_frozen_but_differentiable_in_the_input():
    model, _ = load_backbone(BackboneConfig(name="random"))
    model.train()
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    model(x, [CONTENT_LAYER])[CONTENT_LAYER].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_conv_outputs_survive_in_place_relu():
    model = vgg.random_backbone(0)
    x = torch.rand(1, 3, 8, 8)
    out = model(x, ["conv1_1", "relu1_1"])
    assert (out["conv1_1"] < 0).any()
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp(min=0))


def test_stops_at_deepest_requested_layer():
    model = vgg.random_backbone(0)
    called = []
    for name, _ in VGG19_LAYOUT:
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: called.append(name))
    out = model(torch.rand(1, 3, 16, 16), ["relu2_1", "relu1_1"])
    assert set(out) == {"relu1_1", "relu2_1"}
    assert "conv2_1" in called and "conv2_2" not in called and "conv5_1" not in called


def test_odd_sizes_pool_to_ceil():
    model = vgg.random_backbone(0)
    h, w = 37, 29
    out = model(torch.rand(1, 3, h, w), ALL_LAYERS)
    for name, kind in VGG19_LAYOUT:
        if kind == "pool":
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        assert out[name].shape[-2:] == (h, w), name


def test_bad_arguments():
    model = vgg.random_backbone(0)
    with pytest.raises(ValueError, match="relu9_9"):
        model(torch.rand(1, 3, 8, 8), ["relu9_9"])
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        model(torch.rand(3, 8, 8), ["relu1_1"])
    with pytest.raises(ValueError, match="format"):
        load_backbone(BackboneConfig(format="keras"))
    with pytest.raises(ValueError, match="backbone"):
        load_backbone(BackboneConfig(name="resnet"))
    with pytest.raises(ValueError, match="preprocessing"):
        VGG19Features("bgr")
