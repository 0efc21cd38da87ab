"""The demo's looks with regions: saved as ``dpst look`` saves them (the style segmented into
groups, or its mask file), applied as ``dpst fast --look`` applies them (the content segmented
alike, or its mask file), and one region with a note when the page's masks cannot give them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")

from dpst.cli import main
from dpst.imageio import read_image, write_image
from dpst.models.ade20k import GROUP_NAMES, group_id
from dpst.serve.app.config import AppConfig
from dpst.serve.app.engine import DemoEngine
from dpst.serve.app.page import AppCallbacks
from dpst.serve.runtime.looks import (
    LABELS_FROM_MASK,
    LABELS_FROM_SEGMENTER,
    apply_look,
    encode_look,
    read_look,
    write_look,
)
from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer
from tests.test_look_groups import oracle_groups, oracle_look_labels

pytestmark = pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")

AUTOMATIC = ("automatic", None, None, None, None)
NO_MASKS = ("none", None, None, None, None)


@pytest.fixture(scope="module")
def stylizer():
    return FastStylizer(BUNDLED_MODEL, threads=1)


def _payload(path) -> dict:
    return {"path": str(path), "orig_name": "x.png", "meta": {"_type": "gradio.FileData"}}


def _callbacks(stylizer, segmenter=None) -> AppCallbacks:
    config = AppConfig(backbone="random", segmenter=segmenter)
    return AppCallbacks(DemoEngine(config, fast=stylizer))


def _saved(outputs) -> tuple[str, str]:
    look, status = outputs
    assert look["visible"] is True and "Error" not in status, status
    return look["value"], status


def _result(outputs) -> tuple[np.ndarray, str]:
    _, download, status = outputs
    assert download["visible"] is True and "Error" not in status, status
    return np.asarray(Image.open(download["value"]).convert("RGB")), status


def test_a_look_saved_with_automatic_masks_is_the_one_dpst_look_writes(tiny_groups, stylizer):
    root, weights, config, segmenter = tiny_groups
    cb = _callbacks(stylizer, config)
    path, status = _saved(cb.look_file(_payload(root / "style.png"), *AUTOMATIC))
    look = read_look(path)
    # The groups, independently: the tiny SegFormer on the style at its own size (< 512 px).
    ids = np.unique(oracle_groups(segmenter, read_image(root / "style.png")))
    assert look.label_source == LABELS_FROM_SEGMENTER and look.label_ids == tuple(ids.tolist())
    assert look.label_names == tuple(GROUP_NAMES[i] for i in ids)
    assert f"segmenter groups {', '.join(look.label_names)}" in status
    cli_path = root / "cli.dpst"
    flags = ["--seg-weights", str(weights), "--device", "cpu", "--threads", "1"]
    argv = ["look", str(root / "style.png"), "-o", str(cli_path), "--model", str(BUNDLED_MODEL)]
    assert main([*argv, *flags]) == 0
    cli = read_look(cli_path)
    assert (cli.label_ids, cli.label_source, cli.label_names, cli.model_id) == (
        look.label_ids, look.label_source, look.label_names, look.model_id
    )  # fmt: skip
    for ours, theirs in zip(look.code, cli.code, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_a_segmenter_look_is_applied_per_group_to_the_segmented_content(tiny_groups, stylizer):
    root, _, config, segmenter = tiny_groups
    cb = _callbacks(stylizer, config)
    path, _ = _saved(cb.look_file(_payload(root / "style.png"), *AUTOMATIC))
    look = read_look(path)
    got, status = _result(cb.fast(_payload(root / "content.png"), None, *AUTOMATIC,
                                  _payload(path)))  # fmt: skip
    content = read_image(root / "content.png")  # as the demo reads it: float in [0, 1]
    groups = oracle_groups(segmenter, content)
    assert set(np.unique(groups)) - set(look.label_ids), "the test needs a group the look lacks"
    labels = oracle_look_labels(look, content, groups)
    expected = stylizer.stylize_with_code(content, look.code, labels, dtype=np.uint8)
    np.testing.assert_array_equal(got, expected)
    one_region = stylizer.stylize_with_code(content, look.code, None, dtype=np.uint8)
    assert not np.array_equal(expected, one_region)
    assert f"look applied per region: {', '.join(look.label_names)}" in status
    assert "masks of this page unused" not in status and "one region" not in status

    # The same look with masks off: one region, and the page says why.
    got, status = _result(cb.fast(_payload(root / "content.png"), None, *NO_MASKS,
                                  _payload(path)))  # fmt: skip
    np.testing.assert_array_equal(got, one_region)
    assert "choose automatic masks to apply it per region; one region" in status


def test_without_a_segmenter_looks_are_one_region_with_a_note(tiny_groups, stylizer):
    root = tiny_groups[0]
    cb = _callbacks(stylizer)  # automatic masks off on this server
    path, status = _saved(cb.look_file(_payload(root / "style.png"), *AUTOMATIC))
    assert read_look(path).label_ids is None and "one region" in status
    assert "automatic masks are unavailable" in status
    style = read_image(root / "style.png")
    halves = np.full(style.shape[:2], group_id("water"), np.int64)
    halves[:, 24:] = group_id("building")
    grouped = root / "grouped.dpst"
    write_look(grouped, encode_look(stylizer, style, halves, "s.png", GROUP_NAMES))
    got, status = _result(cb.fast(_payload(root / "content.png"), None, *AUTOMATIC,
                                  _payload(grouped)))  # fmt: skip
    content = read_image(root / "content.png")
    expected = apply_look(stylizer, read_look(grouped), content, None, dtype=np.uint8)
    np.testing.assert_array_equal(got, expected)
    assert "automatic masks are unavailable" in status and "; one region" in status


def test_the_none_segmenter_gives_one_region_looks(tmp_path, stylizer):
    from dpst.models.segmenter_config import SegmenterConfig
    from tests.test_weight_free import texture

    cb = _callbacks(stylizer, SegmenterConfig(backend="none"))
    # A style textured all over, as foliage (not the coffee photo of tiny_groups: the
    # weight-free finder takes its table for a backdrop).
    style = tmp_path / "foliage.png"
    foliage = (0.2 + 0.6 * texture(60, 80, seed=0, block=2)) * np.array([0.5, 0.8, 0.3])
    write_image(style, foliage.astype(np.float32))
    path, status = _saved(cb.look_file(_payload(style), *AUTOMATIC))
    # No segmenter asked: the weight-free regions, which find no sure sky or backdrop in it.
    assert read_look(path).label_ids is None and "no sure sky or backdrop in the style" in status


def test_uploaded_masks_make_and_apply_a_mask_file_look(tiny_groups, stylizer):
    root = tiny_groups[0]
    style, content = read_image(root / "style.png"), read_image(root / "content.png")
    style_mask, content_mask = root / "sm.png", root / "cm.png"
    for path, image, left, right in ((style_mask, style, 3, 7), (content_mask, content, 7, 3)):
        h, w = image.shape[:2]
        halves = np.full((h, w), left, np.uint8)
        halves[:, w // 2 :] = right
        Image.fromarray(halves).save(path)
    cb = _callbacks(stylizer)
    upload = ("upload", _payload(content_mask), _payload(style_mask), None, None)
    path, status = _saved(cb.look_file(_payload(root / "style.png"), *upload))
    look = read_look(path)
    assert look.label_ids == (3, 7) and look.label_source == LABELS_FROM_MASK
    assert "mask labels 3, 7" in status
    cli_path = root / "masked.dpst"
    assert main(["look", str(root / "style.png"), "--style-mask", str(style_mask), "-o",
                 str(cli_path), "--model", str(BUNDLED_MODEL), "--threads", "1"]) == 0  # fmt: skip
    for ours, theirs in zip(look.code, read_look(cli_path).code, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    got, status = _result(cb.fast(_payload(root / "content.png"), None, *upload, _payload(path)))
    labels = np.asarray(Image.open(content_mask)).astype(np.int64)
    expected = apply_look(stylizer, look, content, labels, dtype=np.uint8)
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(expected, apply_look(stylizer, look, content, dtype=np.uint8))
    assert "look applied per region: mask labels 3, 7" in status
    # Painted masks are not kept in a look: one region, said.
    path, status = _saved(cb.look_file(_payload(root / "style.png"), "paint", None, None, None,
                                       None))  # fmt: skip
    assert read_look(path).label_ids is None and "painted masks are not kept" in status
