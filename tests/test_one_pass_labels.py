"""The one label preparation of the one-pass path."""

from __future__ import annotations

import numpy as np
import pytest

from dpst.constants import UNLABELLED
from dpst.errors import InputError
from dpst.labels.numbering import compact_labels, renumber
from dpst.labels.one_pass import LABEL_WORK_SIDE, prepare_one_pass
from dpst.labels.palette import PAPER_PALETTE
from dpst.labels.policy import LabelPolicy
from dpst.optim_reference.stylize import consistent_labels as optimiser_labels
from tests.conftest import sample_photo

COLOUR = dict(PAPER_PALETTE)


def _halves(shape, top: int, bottom: int) -> np.ndarray:
    labels = np.full(shape, top, dtype=np.int64)
    labels[shape[0] // 2 :] = bottom
    return labels


def test_small_maps_follow_the_optimisers_rule_then_count_from_zero():
    content, style = sample_photo("chelsea", 64), sample_photo("coffee", 56)
    cl = _halves(content.shape[:2], 7, 20)  # 20: absent from the style, an orphan
    cl[:3, :3] = -1
    sl = _halves(style.shape[:2], 7, 12)
    expected, _, info = optimiser_labels(cl, sl, content, style, LabelPolicy())
    got = prepare_one_pass(cl, sl, content, style, max_labels=4)
    assert got.report["orphans"] == info["orphans"] and "20" in got.report["orphans"]
    ids = got.report["label_ids"]  # the model's label i is the original label ids[i]
    np.testing.assert_array_equal(np.where(got.content >= 0, np.take(ids, got.content), -1),
                                  expected)  # fmt: skip
    assert set(np.unique(got.content)) - {-1} <= set(np.unique(got.style))
    assert got.content.min() >= -1 and got.content.max() < 4


def test_large_maps_keep_their_edges_and_tiny_orphans_become_unlabelled():
    side = 3 * LABEL_WORK_SIDE
    content = np.full((side, side // 2, 3), 0.2, np.float32)
    style = np.full((side // 2, side // 3, 3), 0.2, np.float32)
    cl = np.zeros(content.shape[:2], np.int64)
    cl[: side // 2 + 1] = 1  # an edge that the reduced copy cannot place exactly
    cl[-1, -1] = 5  # a one-pixel orphan, lost in the reduced copy
    sl = _halves(style.shape[:2], 0, 1)
    got = prepare_one_pass(cl, sl, content, style, max_labels=2)
    assert got.content[-1, -1] == -1
    np.testing.assert_array_equal(got.content[:-1], np.where(cl == 1, 1, 0)[:-1])


def test_unusable_maps_are_one_line_input_errors():
    content, style = sample_photo("chelsea", 32), sample_photo("coffee", 32)
    none = np.full(content.shape[:2], -1)
    some = np.zeros(style.shape[:2], np.int64)
    with pytest.raises(InputError, match="labels no pixel"):
        prepare_one_pass(none, some, content, style, 4)
    with pytest.raises(InputError, match="no labelled pixel"):
        prepare_one_pass(np.zeros(content.shape[:2], np.int64), np.full(style.shape[:2], -1),
                       content, style, 4)  # fmt: skip
    many = np.arange(content.shape[0])[:, None].repeat(content.shape[1], 1) % 6
    with pytest.raises(InputError, match="use 6 labels but the model handles at most 4"):
        prepare_one_pass(many, many[: style.shape[0], : style.shape[1]], content, style, 4)


def test_compacting_by_given_ids():
    content, style = np.array([[4, 9, -1]]), np.array([[9, 4, 2]])
    c, s = compact_labels(content, style, ids=[9])
    np.testing.assert_array_equal(c, [[-1, 0, -1]])
    np.testing.assert_array_equal(s, [[0, -1, -1]])


@pytest.mark.parametrize("scale", [1, 1000, 100000])
def test_renumbering_by_table_equals_the_search(scale):
    """renumber's lookup table (small label ranges) against the sorted search it replaces."""
    rng = np.random.default_rng(scale)
    for _ in range(50):
        labels = rng.integers(-1, 12, size=(7, 9)) * scale
        ids = np.unique(rng.choice(np.unique(labels), size=rng.integers(1, 5)))
        ids = ids[ids != UNLABELLED]
        if len(ids) == 0:
            continue
        index = np.minimum(np.searchsorted(ids, labels), len(ids) - 1)
        expected = np.where(ids[index] == labels, index, UNLABELLED)
        np.testing.assert_array_equal(renumber(labels, ids), expected)
