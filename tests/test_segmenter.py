import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dpst.devices import resolve_device
from dpst.errors import DpstError, InputError, WeightsNotFoundError
from dpst.imageio import to_tensor
from dpst.models.ade20k import GROUP_NAMES
from dpst.models.segmenter import (
    NoSegmenter,
    SegmenterConfig,
    bilinear_rows,
    build_segmenter,
    candidate_classes,
    upsample_argmax,
)
from tests.tiny_segformer import save_tiny_segformer


@pytest.mark.parametrize(("out_size", "in_size"), [(37, 8), (64, 16), (5, 9), (16, 16), (1, 4)])
def test_bilinear_rows_match_interpolate(out_size, in_size):
    x = torch.randn(2, 3, in_size, in_size + 3)
    size = (out_size, out_size + 5)
    expected = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    start, stop = out_size // 3, out_size - out_size // 4
    got = bilinear_rows(x, size, start, stop)
    # Same taps and weights; float32 rounding differs only in the order of operations.
    torch.testing.assert_close(got, expected[:, :, start:stop], rtol=0, atol=1e-5)
    torch.testing.assert_close(bilinear_rows(x, size, 0, out_size), expected, rtol=0, atol=1e-5)


def _full_argmax(logits, size):
    """The definition: every class upsampled, then the argmax."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False).argmax(dim=1)


def test_upsample_argmax_in_bands_equals_whole():
    logits = torch.randn(2, 150, 12, 17)
    whole = upsample_argmax(logits, (50, 67))
    banded = upsample_argmax(logits, (50, 67), max_bytes=3 * 2 * 150 * 67 * 4 * 7)  # 7-row bands
    assert whole.shape == (2, 50, 67) and whole.dtype == torch.int64
    assert torch.equal(whole, _full_argmax(logits, (50, 67)))
    assert torch.equal(banded, whole)


def test_candidate_pruning_is_exact_on_segmenter_like_logits():
    # Smooth logits where a few classes dominate regions, as a segmenter's are; classes that
    # are second everywhere in a cell can still win between samples, and must be kept.
    h, w = 16, 16
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    logits = torch.randn(1, 150, h, w) * 0.1 - 5.0
    logits[0, 3] = 4 * yy
    logits[0, 40] = -4 * yy
    logits[0, 77] = 4 * xx
    logits[0, 9] = 1.0  # never the largest sample, yet wins where the others cross
    keep = candidate_classes(logits)
    assert {3, 40, 77, 9} <= set(keep.tolist())
    assert len(keep) < 20
    for size in [(61, 47), (16, 16), (5, 3)]:
        assert torch.equal(upsample_argmax(logits, size), _full_argmax(logits, size))
        banded = upsample_argmax(logits, size, max_bytes=1)  # one row at a time
        assert torch.equal(banded, _full_argmax(logits, size))


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


def test_unavailable_device_is_a_user_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_predict_rejects_non_images():
    with pytest.raises(ValueError, match=r"\(B,3,H,W\); got shape \(3, 8, 8\)"):
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
