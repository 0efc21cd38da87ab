"""Looks whose regions are the segmenter's groups: recorded as such, applied per group to a
content segmented alike (orphans by the groups' relation table, then by colour), older look
files read as before, and one region in one line when no segmenter is on this machine."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.constants import UNLABELLED
from dpst.errors import InputError
from dpst.imageio import read_image, write_image
from dpst.labels.numbering import keep_largest_labels
from dpst.models.ade20k import GROUP_NAMES, GROUP_RELATIONS, group_id
from dpst.serve.runtime.batch import RECORD_FILE
from dpst.serve.runtime.looks import (
    LABELS_FROM_MASK,
    LABELS_FROM_SEGMENTER,
    apply_look,
    content_labels_for_look,
    encode_look,
    look_bytes,
    look_group_relation,
    read_look,
    write_look,
)
from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer
from tests.conftest import sample_photo

pytestmark = pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")

WATER, BUILDING, SKY, PERSON = (group_id(g) for g in ("water", "building", "sky", "person"))


@pytest.fixture(scope="module")
def stylizer():
    return FastStylizer(BUNDLED_MODEL, threads=1)


@pytest.fixture(scope="module")
def style():
    return sample_photo("coffee", 40) * np.array([1.0, 0.7, 0.5], dtype=np.float32)


def halves(shape, left: int, right: int) -> np.ndarray:
    labels = np.full(shape[:2], left, dtype=np.int64)
    labels[:, shape[1] // 2 :] = right
    return labels


def manifest_of(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("manifest.json"))


def with_manifest(data: bytes, change) -> bytes:
    """The look file with its manifest passed through ``change(dict) -> dict``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            member = src.read(name)
            if name == "manifest.json":
                member = json.dumps(change(json.loads(member))).encode()
            dst.writestr(name, member)
    return out.getvalue()


def test_a_look_of_segmenter_groups_records_them_and_round_trips(stylizer, style):
    data = look_bytes(stylizer, style, halves(style.shape, WATER, BUILDING), "s.png", GROUP_NAMES)
    manifest = manifest_of(data)
    assert manifest["label_ids"] == [BUILDING, WATER]
    assert manifest["label_source"] == "segmenter groups" == LABELS_FROM_SEGMENTER
    assert manifest["label_names"] == ["building", "water"]
    look = read_look(data)
    assert look.label_source == LABELS_FROM_SEGMENTER and look.label_names == ("building", "water")
    masked = read_look(look_bytes(stylizer, style, halves(style.shape, 1, 2)))
    assert masked.label_source == LABELS_FROM_MASK and masked.label_names is None
    plain = manifest_of(look_bytes(stylizer, style))
    assert plain["label_source"] is None and plain["label_names"] is None


def test_an_older_look_without_the_fields_reads_and_applies_as_before(stylizer, style):
    content = sample_photo("chelsea", 48)
    labels = halves(style.shape, 3, 7)
    new = look_bytes(stylizer, style, labels)

    def drop(manifest):
        return {k: v for k, v in manifest.items() if k not in ("label_source", "label_names")}

    old = read_look(with_manifest(new, drop))
    assert old.label_ids == (3, 7) and old.label_source == LABELS_FROM_MASK
    content_labels = halves(content.shape, 7, 5)  # 5: not in the look, matched by colour
    np.testing.assert_array_equal(
        apply_look(stylizer, old, content, content_labels),
        apply_look(stylizer, read_look(new), content, content_labels),
    )
    one = read_look(with_manifest(look_bytes(stylizer, style), drop))
    assert one.label_ids is None and one.label_source is None
    # A source word of a later dpst is kept and treated as a mask file's.
    later = read_look(with_manifest(new, lambda m: {**m, "label_source": "painted"}))
    assert later.label_source == "painted" and later.label_ids == (3, 7)
    with pytest.raises(InputError, match="segmenter groups"):
        look_group_relation(later)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label_source": 3}, "label_source"),
        ({"label_source": "segmenter groups", "label_names": None}, "label_names"),
        ({"label_source": "segmenter groups", "label_names": ["sky"]}, "label_names"),
        ({"label_ids": None}, "without labels"),
    ],
)
def test_damaged_label_fields_are_refused_in_one_line(stylizer, style, change, message):
    data = look_bytes(stylizer, style, halves(style.shape, WATER, BUILDING), "", GROUP_NAMES)
    with pytest.raises(InputError, match=message) as err:
        read_look(with_manifest(data, lambda m: {**m, **change}))
    assert "\n" not in str(err.value)


def test_a_content_group_the_look_lacks_goes_by_relation_then_by_colour(stylizer, style):
    look = encode_look(stylizer, style, halves(style.shape, WATER, BUILDING), "", GROUP_NAMES)
    assert look.label_ids == (BUILDING, WATER)
    means = np.array(look.code[2][0, :2])  # style_colour_mean of building, water
    # Sky is painted like the building, person like the water: colour alone would swap the
    # sky onto the building, but the relation table sends sky to water first. Person's
    # relation (animal) is not in the look, so its colour decides.
    painted = np.zeros((4, 6, 3), np.float32)
    painted[:, :3], painted[:, 3:] = means[0], means[1]
    labels = halves(painted.shape, SKY, PERSON)
    assert "water" in GROUP_RELATIONS["sky"] and "animal" in GROUP_RELATIONS["person"]
    relation = look_group_relation(look)
    expected = halves(painted.shape, 1, 1)  # sky -> water (relation), person -> water (colour)
    got = content_labels_for_look(look, painted, labels, relation)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        content_labels_for_look(look, painted, labels), halves(painted.shape, 0, 1)
    )  # without the table, as for a mask file's labels: colour only
    eight_bit = np.rint(painted * 255).astype(np.uint8)
    np.testing.assert_array_equal(
        content_labels_for_look(look, eight_bit, labels, relation), expected
    )


def test_a_look_of_other_groups_is_refused_in_one_line(stylizer, style):
    look = encode_look(stylizer, style, halves(style.shape, 0, 1), "", ("field", "wood"))
    with pytest.raises(InputError, match="field, wood") as err:
        look_group_relation(look, "x.dpst")
    assert "\n" not in str(err.value) and "--content-mask" in str(err.value)


def test_the_largest_groups_are_kept_when_the_model_takes_fewer():
    labels = np.array([[0, 0, 0, 5], [5, 5, 2, 2], [9, UNLABELLED, 0, 0]])
    kept, dropped = keep_largest_labels(labels, 2)
    assert dropped == [2, 9]  # 0 (5 px) and 5 (3 px) stay; ties by id
    np.testing.assert_array_equal(kept, np.where(np.isin(labels, [2, 9]), UNLABELLED, labels))
    same, none = keep_largest_labels(labels, 4)
    assert none == [] and np.array_equal(same, labels)


# -- the commands, with a tiny SegFormer ------------------------------------------------------


def oracle_groups(segmenter, image: np.ndarray) -> np.ndarray:
    """The segmenter's groups of a photo under 512 px (segmented at its own size)."""
    from dpst.models.auto_labels import segment_image

    return segment_image(segmenter, image)[1]


def oracle_look_labels(look, content: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Group -> look index: its own, else its first related group the look has (by name),
    else the look region of the nearest mean colour."""
    ids, names = list(look.label_ids), list(look.label_names)
    colours = np.asarray(look.code[2][0, : len(ids)], np.float64)
    out = np.empty(groups.shape, np.int64)
    for group in np.unique(groups):
        name, region = GROUP_NAMES[group], groups == group
        related = [n for n in GROUP_RELATIONS[name] if n in names]
        if name in names:
            out[region] = names.index(name)
        elif related:
            out[region] = names.index(related[0])
        else:
            colour = content[region].astype(np.float64).mean(axis=0)
            out[region] = np.argmin(((colours - colour) ** 2).sum(axis=1))
    return out


@pytest.mark.slow  # 9 s: a SegFormer, then dpst look and dpst fast
def test_cli_look_segments_the_style_and_fast_applies_it_per_group(tiny_groups, stylizer, capsys):
    root, weights, _, segmenter = tiny_groups
    flags = ["--seg-weights", str(weights), "--device", "cpu", "--threads", "1"]
    look_path = root / "auto.dpst"
    assert main(["look", str(root / "style.png"), "-o", str(look_path), *flags]) == 0
    assert "segmenter groups" in capsys.readouterr().out
    style = read_image(root / "style.png")
    style_groups = oracle_groups(segmenter, style)
    look = read_look(look_path)
    ids = np.unique(style_groups)
    assert look.label_ids == tuple(ids.tolist()) and look.label_source == LABELS_FROM_SEGMENTER
    assert look.label_names == tuple(GROUP_NAMES[i] for i in ids)
    renumbered = np.searchsorted(ids, style_groups)
    for ours, oracle in zip(look.code, stylizer.encode_style(style, renumbered), strict=True):
        np.testing.assert_array_equal(ours, oracle)

    out = root / "out.png"
    argv = ["fast", str(root / "content.png"), "--look", str(look_path), "-o", str(out)]
    assert main([*argv, *flags]) == 0
    assert "no automatic masks" not in capsys.readouterr().err
    pixels = np.asarray(Image.open(root / "content.png").convert("RGB"))
    content_groups = oracle_groups(segmenter, pixels.astype(np.float32) / 255)
    assert set(np.unique(content_groups)) - set(ids), "the test needs a group the look lacks"
    labels = oracle_look_labels(look, pixels / 255.0, content_groups)
    expected = stylizer.stylize_with_code(pixels, look.code, labels, dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    one_region = stylizer.stylize_with_code(pixels, look.code, None, dtype=np.uint8)
    assert not np.array_equal(expected, one_region)

    # A folder: each photo as alone, the segmenter loaded once, and the record says so.
    (root / "in").mkdir()
    for name in ("a.png", "b.png"):
        (root / "in" / name).write_bytes((root / "content.png").read_bytes())
    argv = ["fast", str(root / "in"), "--look", str(look_path), "--out-dir", str(root / "o")]
    assert main([*argv, *flags]) == 0
    for name in ("a.png", "b.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(root / "o" / name)), expected)
    record = json.loads((root / "o" / RECORD_FILE).read_text())
    assert record["settings"]["masks"] == "look, segmented"
    # --masks none: one region, and a rerun into the segmented folder is refused.
    assert main([*argv, *flags, "--masks", "none"]) == 2
    assert "masks" in capsys.readouterr().err
    assert main(["fast", str(root / "content.png"), "--look", str(look_path), "-o",
                 str(root / "none.png"), "--masks", "none", *flags]) == 0  # fmt: skip
    np.testing.assert_array_equal(np.asarray(Image.open(root / "none.png")), one_region)


def test_cli_a_look_from_a_mask_file_is_not_segmented(tiny_groups, stylizer, capsys):
    root, weights, _, _ = tiny_groups
    style = read_image(root / "style.png")
    Image.fromarray(halves(style.shape, 3, 7).astype(np.uint8)).save(root / "sm.png")
    flags = ["--seg-weights", str(weights), "--device", "cpu", "--threads", "1"]
    look_path = root / "masked.dpst"
    assert main(["look", str(root / "style.png"), "--style-mask", str(root / "sm.png"),
                 "--mask-kind", "labels", "-o", str(look_path), *flags]) == 0  # fmt: skip
    look = read_look(look_path)
    assert look.label_ids == (3, 7) and look.label_source == LABELS_FROM_MASK
    out = root / "masked.png"
    argv = ["fast", str(root / "content.png"), "--look", str(look_path), "-o", str(out)]
    assert main([*argv, *flags]) == 0
    pixels = np.asarray(Image.open(root / "content.png").convert("RGB"))
    np.testing.assert_array_equal(
        np.asarray(Image.open(out)), apply_look(stylizer, look, pixels, dtype=np.uint8)
    )


@pytest.mark.parametrize("torch_importable", [True, False])
def test_without_segmenter_weights_looks_are_one_region_in_one_line_without_torch(
    tmp_path, stylizer, style, torch_importable
):
    """``dpst look`` and ``dpst fast --look`` (a folder of two) with no segmenter on disk:
    exit 0, one line for each fallback (not one per photo), one region (no sure sky or
    backdrop in the style photo: textured all over, as foliage), and torch never imported."""
    from tests.test_weight_free import texture

    content = sample_photo("chelsea", 32)
    (tmp_path / "in").mkdir()
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "in" / name, content)
    # Not the tinted coffee photo: the weight-free finder takes its table for a backdrop.
    foliage = (0.2 + 0.6 * texture(60, 80, seed=0, block=2)) * np.array([0.5, 0.8, 0.3])
    write_image(tmp_path / "style.png", foliage.astype(np.float32))
    grouped = halves(style.shape, WATER, BUILDING)
    write_look(tmp_path / "groups.dpst", encode_look(stylizer, style, grouped, "", GROUP_NAMES))
    script = textwrap.dedent(
        f"""
        import sys
        if not {torch_importable}:
            sys.modules["torch"] = None  # any "import torch" now raises ImportError
        from dpst.cli import main
        d = {str(tmp_path)!r}
        assert main(["look", d + "/style.png", "-o", d + "/plain.dpst", "--threads", "1"]) == 0
        assert main(["fast", d + "/in", "--look", d + "/groups.dpst", "--out-dir", d + "/out",
                     "--threads", "1"]) == 0
        assert sys.modules.get("torch") is None, "torch was imported"
        """
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty"), "OMP_NUM_THREADS": "1"}
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    lines = ran.stderr.strip().splitlines()
    # dpst look goes on to the weight-free regions (none sure on this photo); a look of
    # segmenter groups needs the segmenter.
    assert len(lines) == 3, ran.stderr
    assert lines[0].startswith("dpst look: no automatic masks (")
    assert lines[0].endswith("; using weight-free regions")
    no_background = "dpst look: weight-free regions: no sure sky or backdrop in the style ("
    assert lines[1].startswith(no_background)
    assert lines[1].endswith("; one region")
    assert lines[2].startswith("dpst fast: no automatic masks (")
    assert lines[2].endswith("; using one region")
    assert read_look(tmp_path / "plain.dpst").label_ids is None
    look = read_look(tmp_path / "groups.dpst")
    pixels = np.asarray(Image.open(tmp_path / "in" / "a.png").convert("RGB"))
    expected = apply_look(stylizer, look, pixels, dtype=np.uint8)
    for name in ("a.png", "b.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / name)), expected)
    record = json.loads((tmp_path / "out" / RECORD_FILE).read_text())
    assert record["settings"]["masks"] == "look"
