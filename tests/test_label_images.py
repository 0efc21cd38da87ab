"""Mask files written for people: palette, colour mask and label PNG round trips, overlays."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from PIL import Image

from dpst.labels.images import (
    labels_to_colour,
    overlay,
    palette_array,
    side_by_side,
    write_colour_mask,
    write_label_png,
)
from dpst.labels.mask_files import read_mask
from dpst.labels.palette import (
    COLOUR_TOLERANCE,
    EXTENDED_COLOURS,
    MASK_PALETTE,
    PAPER_PALETTE,
)

TOLERANCE_U8 = COLOUR_TOLERANCE * 255


def blocky_labels(num_labels: int, shape=(30, 40), block=5, seed=0) -> np.ndarray:
    """Random labels in blocks (regions, as a segmenter gives), every label present."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, num_labels, size=(shape[0] // block, shape[1] // block))
    small.flat[:num_labels] = np.arange(num_labels)
    return np.kron(small, np.ones((block, block), dtype=np.int64)).astype(np.int64)


def decode_with_palette(rgb: np.ndarray, palette=MASK_PALETTE) -> np.ndarray:
    """Oracle for the reader's rule (every channel strictly within tolerance), any palette."""
    out = np.full(rgb.shape[:2], -1, dtype=np.int64)
    for k, colour in enumerate(palette_array(palette).astype(np.float64)):
        out[np.all(np.abs(rgb.astype(np.float64) - colour) < TOLERANCE_U8, axis=-1)] = k
    return out


def test_palette_starts_with_the_papers_nine_and_covers_the_groups():
    from dpst.models.ade20k import GROUP_NAMES

    assert MASK_PALETTE[: len(PAPER_PALETTE)] == PAPER_PALETTE
    assert len(MASK_PALETTE) >= len(GROUP_NAMES)
    assert len({name for name, _ in MASK_PALETTE}) == len(MASK_PALETTE)


def test_no_pixel_can_decode_to_two_colours():
    colours = palette_array().astype(int)
    for a, b in itertools.combinations(range(len(colours)), 2):
        assert np.abs(colours[a] - colours[b]).max() >= 2 * TOLERANCE_U8, (a, b)


def test_extended_colours_are_far_from_paper_antialiasing():
    # Every blend t*a + (1-t)*b of two paper colours, as anti-aliased edges hold.
    paper = palette_array(PAPER_PALETTE).astype(np.float64)
    t = np.linspace(0.0, 1.0, 1021)[:, None]
    blends = np.concatenate([t * a + (1 - t) * b for a, b in itertools.combinations(paper, 2)])
    for name, rgb in EXTENDED_COLOURS:
        distance = np.abs(blends - np.array(rgb)).max(axis=1).min()
        assert distance > TOLERANCE_U8 + 5, name
    # So a paper mask decodes the same with the extended palette as with the paper's.
    edge = np.round(blends).astype(np.uint8)[None]
    assert np.array_equal(decode_with_palette(edge), decode_with_palette(edge, PAPER_PALETTE))


def test_colour_mask_is_exact_palette_colours(tmp_path):
    labels = blocky_labels(len(MASK_PALETTE))
    write_colour_mask(tmp_path / "mask.png", labels)
    rgb = np.asarray(Image.open(tmp_path / "mask.png").convert("RGB"))
    assert np.array_equal(rgb, palette_array()[labels])
    assert np.array_equal(decode_with_palette(rgb), labels)


def test_label_png_holds_the_integers_and_shows_the_colours(tmp_path):
    labels = blocky_labels(len(MASK_PALETTE))
    write_label_png(tmp_path / "labels.png", labels)
    img = Image.open(tmp_path / "labels.png")
    assert img.mode == "P"
    assert np.array_equal(np.asarray(img), labels)
    assert np.array_equal(np.asarray(img.convert("RGB")), palette_array()[labels])
    umask = os.umask(0)
    os.umask(umask)
    mode = (tmp_path / "labels.png").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask  # the usual permissions, not mkstemp's owner-only 0600


@pytest.mark.parametrize("num_labels", [1, 2, 9, len(MASK_PALETTE)])
def test_label_png_reads_back_through_the_mask_reader(tmp_path, num_labels):
    labels = blocky_labels(num_labels) if num_labels > 1 else np.zeros((30, 40), np.int64)
    write_label_png(tmp_path / "labels.png", labels)
    assert np.array_equal(read_mask(tmp_path / "labels.png", labels.shape), labels)


@pytest.mark.parametrize("num_labels", [1, 4, 9])
def test_colour_mask_in_paper_colours_reads_back(tmp_path, num_labels):
    labels = blocky_labels(num_labels) if num_labels > 1 else np.zeros((30, 40), np.int64)
    write_colour_mask(tmp_path / "mask.png", labels)
    assert np.array_equal(read_mask(tmp_path / "mask.png", labels.shape), labels)


def test_colour_mask_with_extended_colours_reads_back(tmp_path):
    labels = blocky_labels(len(MASK_PALETTE))
    write_colour_mask(tmp_path / "mask.png", labels)
    assert np.array_equal(read_mask(tmp_path / "mask.png", labels.shape), labels)


@pytest.mark.parametrize("bad", [-1, len(MASK_PALETTE)])
def test_labels_outside_the_palette_are_refused(bad):
    labels = np.zeros((4, 4), dtype=np.int64)
    labels[1, 1] = bad
    with pytest.raises(ValueError, match=rf"labels must be in \[0, {len(MASK_PALETTE)}\)"):
        labels_to_colour(labels)


def test_overlay_blends_label_colours_over_the_photo():
    image = np.full((3, 4, 3), 0.2, dtype=np.float32)
    labels = np.zeros((3, 4), dtype=np.int64)
    labels[:, 2:] = 4  # red
    out = overlay(image, labels, alpha=0.25)
    np.testing.assert_allclose(out[0, 0], [0.15, 0.15, 0.4], atol=1e-6)  # over blue
    np.testing.assert_allclose(out[0, 3], [0.4, 0.15, 0.15], atol=1e-6)  # over red
    with pytest.raises(ValueError, match="label map"):
        overlay(image, labels[:2])


def test_side_by_side_pads_to_the_taller_and_adds_a_legend():
    left = np.zeros((10, 6, 3), dtype=np.float32)
    right = np.ones((7, 5, 3), dtype=np.float32)
    plain = side_by_side(left, right, gap=3)
    assert plain.shape == (10, 14, 3) and plain.dtype == np.uint8
    assert (
        (plain[:, 6:9] == 255).all() and (plain[7:, 9:] == 255).all() and (plain[:, :6] == 0).all()
    )
    legend = side_by_side(left, right, legend=[("sky", (0, 0, 255)), ("tree", (0, 255, 0))])
    assert legend.shape[0] > 10 and legend.shape[1] == 6 + 8 + 5
    assert ((legend[10:] == [0, 0, 255]).all(axis=-1)).any()  # the sky swatch is drawn
