import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dpst.errors import DpstError, InputError, WeightsNotFoundError
from dpst.imageio import to_tensor
from dpst.models.ade20k import GROUP_NAMES
from dpst.models.segmenter import (
    NoSegmenter,
    SegmenterConfig,
    build_segmenter,
    linear_resize_matrix,
    upsample_argmax,
)
from tests.tiny_segformer import save_tiny_segformer


@pytest.mark.parametrize(("out_size", "in_size"), [(37, 8), (64, 16), (5, 9), (16, 16), (1, 4)])
def test_linear_resize_matrix_matches_interpolate(out_size, in_size):
    x = torch.randn(2, 3, in_size, in_size + 3, dtype=torch.float64)
    expected = F.interpolate(x, size=(out_size, out_size + 5), mode="bilinear", align_corners=False)
    wy = linear_resize_matrix(out_size, in_size).double()
    wx = linear_resize_matrix(out_size + 5, in_size + 3).double()
    got = torch.einsum("Hh,bchw,Ww->bcHW", wy, x, wx)
    # The matrix is stored in float32: weights agree to float32 rounding.
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_upsample_argmax_in_bands_equals_whole():
    logits = torch.randn(2, 150, 12, 17)
    whole = upsample_argmax(logits, (50, 67))
    banded = upsample_argmax(logits, (50, 67), max_bytes=2 * 150 * 67 * 4 * 7)  # 7-row bands
    assert whole.shape == (2, 50, 67) and whole.dtype == torch.int64
    assert torch.equal(whole, banded)


def test_none_backend_is_one_region():
    seg = build_segmenter(SegmenterConfig(backend="none"))
    assert isinstance(seg, NoSegmenter)
    classes, groups = seg.predict_groups(torch.rand(1, 3, 10, 12))
    assert classes.shape == (1, 10, 12) and not classes.any() and not groups.any()
    assert seg.group_names == ("all",)
    assert seg.describe() == {"backend": "none"}


def test_config_rejects_unknown_backend():
    with pytest.raises(ValueError, match=r"backend must be one of.*'deeplab'"):
        SegmenterConfig(backend="deeplab")


def test_predict_rejects_non_images():
    with pytest.raises(ValueError, match=r"\(B,3,H,W\), got \(3, 8, 8\)"):
        NoSegmenter().predict(torch.rand(3, 8, 8))


def test_tiny_segformer_from_local_folder(tmp_path, photo):
    folder = save_tiny_segformer(tmp_path / "tiny", input_size=64)
    seg = build_segmenter(SegmenterConfig(weights=str(folder), device="cpu"))
    image = to_tensor(photo)
    classes, groups = seg.predict_groups(image)
    h, w = photo.shape[:2]
    assert classes.shape == groups.shape == (1, h, w)
    assert classes.dtype == groups.dtype == torch.int64
    assert 0 <= int(classes.min()) and int(classes.max()) < 150
    assert 0 <= int(groups.min()) and int(groups.max()) < len(GROUP_NAMES)
    assert seg.class_names[7] == "bed"  # hub spelling "bed " is stripped
    assert seg.prep.size == (64, 64)  # read from the folder's preprocessor_config.json
    assert torch.equal(seg.predict(image), classes)  # eval mode: deterministic
    info = seg.describe()
    assert info["weights_from"] == "local folder" and len(info["weights_sha256"]) == 64


def test_tiny_segformer_defaults_to_512_input(tmp_path):
    folder = save_tiny_segformer(tmp_path / "tiny", input_size=None)
    seg = build_segmenter(SegmenterConfig(weights=str(folder), device="cpu"))
    assert seg.prep.size == (512, 512)
    assert seg.predict(torch.rand(1, 3, 20, 30)).shape == (1, 20, 30)


def _fake_hub_cache(cache: Path, repo: str, folder: Path) -> None:
    """Lay ``folder``'s files out as the Hugging Face cache holds a downloaded model."""
    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    refs = snapshot.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("0123abcd")


def test_model_name_found_in_hugging_face_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = save_tiny_segformer(tmp_path / "tiny", input_size=32)
    _fake_hub_cache(tmp_path / "cache", "dpst-test/tiny-segformer", folder)
    config = SegmenterConfig(model="dpst-test/tiny-segformer", cache_dir=str(tmp_path / "cache"))
    seg = build_segmenter(config)
    assert seg.describe()["weights_from"] == "Hugging Face cache"
    assert seg.describe()["weights_sha256"] is not None
    assert seg.prep.size == (32, 32)
    assert seg.predict(torch.rand(1, 3, 16, 24)).shape == (1, 16, 24)


@pytest.mark.parametrize("how", ["allow_download", "env"])
def test_missing_weights_offline_say_how_to_get_them(tmp_path, monkeypatch, how):
    transformers = pytest.importorskip("transformers")
    original = transformers.SegformerForSemanticSegmentation.from_pretrained

    def local_only(*args, **kwargs):
        assert kwargs.get("local_files_only"), "tried to download"
        return original(*args, **kwargs)

    monkeypatch.setattr(
        transformers.SegformerForSemanticSegmentation, "from_pretrained", local_only
    )
    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        config = SegmenterConfig(cache_dir=str(tmp_path))
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        config = SegmenterConfig(cache_dir=str(tmp_path), allow_download=False)
    with pytest.raises(WeightsNotFoundError) as err:
        build_segmenter(config)
    message = str(err.value)
    assert "\n" not in message
    assert "hf download nvidia/segformer-b0-finetuned-ade-512-512" in message
    assert "--seg-weights" in message


def test_folder_without_weights(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no SegFormer weights there"):
        build_segmenter(SegmenterConfig(weights=str(tmp_path)))


def test_extra_not_installed_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import raises ImportError
    with pytest.raises(DpstError, match=r"pip install 'dpst\[seg\]'"):
        build_segmenter(SegmenterConfig())


def test_non_ade_model_is_refused(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.SegformerConfig(
        num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[8], patch_sizes=[7],
        strides=[4], num_attention_heads=[1], mlp_ratios=[2], decoder_hidden_size=8,
        num_labels=2, id2label={0: "road", 1: "bicyclist"},
    )  # fmt: skip
    transformers.SegformerForSemanticSegmentation(config).save_pretrained(tmp_path)
    with pytest.raises(InputError, match="not ADE20K's"):
        build_segmenter(SegmenterConfig(weights=str(tmp_path)))


def test_class_to_group_is_an_index_table():
    seg = NoSegmenter()
    assert seg.class_to_group.dtype == np.int64
