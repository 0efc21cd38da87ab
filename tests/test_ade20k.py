import numpy as np
import pytest

from dpst.errors import InputError
from dpst.labels.palette import PAPER_PALETTE
from dpst.models.ade20k import (
    ADE20K_CLASSES,
    GROUP_CLASSES,
    GROUP_NAMES,
    GROUP_RELATIONS,
    class_to_group_table,
    group_id,
    relation_ids,
)


def test_ade20k_has_150_distinct_classes():
    assert len(ADE20K_CLASSES) == 150
    assert len(set(ADE20K_CLASSES)) == 150
    # Spot checks against the SceneParsing order (index -> name).
    assert ADE20K_CLASSES[0] == "wall"
    assert ADE20K_CLASSES[2] == "sky"
    assert ADE20K_CLASSES[128] == "lake"
    assert ADE20K_CLASSES[149] == "flag"


def test_groups_cover_every_class_exactly_once():
    listed = [c for classes in GROUP_CLASSES.values() for c in classes]
    assert sorted(listed) == sorted(ADE20K_CLASSES)
    assert len(listed) == len(set(listed))
    assert 10 <= len(GROUP_NAMES) <= 16


def test_first_groups_take_the_paper_colours_in_order():
    expected = ["sky", "tree", "road", "building", "person", "ground", "mountain", "water"]
    assert list(GROUP_NAMES[: len(expected)]) == expected
    assert [name for name, _ in PAPER_PALETTE[:2]] == ["blue", "green"]


def test_water_bodies_share_a_group():
    table = class_to_group_table(ADE20K_CLASSES)
    idx = {name: i for i, name in enumerate(ADE20K_CLASSES)}
    water = {table[idx[c]] for c in ("water", "sea", "river", "lake", "waterfall")}
    assert water == {group_id("water")}
    assert table[idx["sky"]] == group_id("sky") == 0


def test_relation_table_is_well_formed():
    assert set(GROUP_RELATIONS) == set(GROUP_NAMES)
    for group, others in GROUP_RELATIONS.items():
        assert group not in others
        assert len(set(others)) == len(others)
        assert set(others) <= set(GROUP_NAMES)
    ids = relation_ids()
    assert ids[group_id("sky")] == (group_id("water"),)


def test_class_table_accepts_hugging_face_spelling():
    names = list(ADE20K_CLASSES)
    names[7] = "bed "  # as in the hub's id2label
    table = class_to_group_table(names)
    assert table.dtype == np.int64 and table.shape == (150,)
    assert table[7] == group_id("furniture")
    assert table.min() >= 0 and table.max() < len(GROUP_NAMES)


def test_class_table_rejects_other_datasets():
    with pytest.raises(InputError, match=r"not ADE20K's.*'bicyclist'"):
        class_to_group_table(["road", "bicyclist"])


def test_unknown_group_name():
    with pytest.raises(ValueError, match="unknown group 'lava'"):
        group_id("lava")
