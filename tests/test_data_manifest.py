"""Manifest parsing and checking: every problem found, each with its line number."""

import json

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.data.manifest import Entry, check_manifest, read_manifest, write_manifest
from dpst.errors import InputError


def _photo(path, size=(12, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    _photo(tmp_path / "photos" / "a.png")
    _photo(tmp_path / "photos" / "b.png")
    _photo(tmp_path / "photos" / "wide.png", size=(12, 40))
    Image.fromarray(np.zeros((6, 8), np.uint16)).save(tmp_path / "a_mask.png")
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return tmp_path


def _write_lines(path, lines):
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines))
    return path


def test_paths_resolve_against_the_manifest_folder_and_round_trip(folder):
    manifest = _write_lines(
        folder / "m.jsonl",
        [
            {"id": "p1", "content": "photos/a.png", "style": "photos/b.png"},
            "",
            {
                "id": "p2",
                "content": "photos/b.png",
                "style": str(folder / "photos/a.png"),
                "content_mask": "a_mask.png",
                "style_mask": "a_mask.png",
                "meta": {"k": 1},
            },
        ],
    )
    entries, problems = read_manifest(manifest)
    assert problems == []
    assert [e.id for e in entries] == ["p1", "p2"]
    assert [e.line for e in entries] == [1, 3]
    assert entries[0].content == folder / "photos" / "a.png"
    assert entries[1].style == folder / "photos" / "a.png"
    assert entries[1].has_masks and not entries[0].has_masks

    copy = folder / "sub" / "copy.jsonl"
    write_manifest(copy, entries)
    again, problems = read_manifest(copy)
    assert problems == []
    assert [(e.id, e.content, e.style_mask, e.meta) for e in again] == [
        (e.id, e.content, e.style_mask, e.meta) for e in entries
    ]
    assert json.loads(copy.read_text().splitlines()[0])["content"] == "../photos/a.png"


def test_bad_lines_are_reported_with_their_line_numbers(folder):
    manifest = _write_lines(
        folder / "m.jsonl",
        [
            {"id": "ok", "content": "photos/a.png", "style": "photos/b.png"},
            '{"id": "x", "content": ',
            "[1, 2]",
            {"id": "nostyle", "content": "photos/a.png"},
            {"id": "../evil", "content": "photos/a.png", "style": "photos/b.png"},
            {
                "id": "onemask",
                "content": "photos/a.png",
                "style": "photos/b.png",
                "content_mask": "a_mask.png",
            },
            {"id": "typo", "content": "photos/a.png", "style": "photos/b.png", "contnet_mask": "x"},
            {"id": "ok", "content": "photos/b.png", "style": "photos/a.png"},
            {"id": "num", "content": 3, "style": "photos/a.png"},
        ],
    )
    entries, problems = read_manifest(manifest)
    assert [e.id for e in entries] == ["ok"]
    by_line = {p.line: p.message for p in problems}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "not valid JSON" in by_line[2]
    assert "JSON object" in by_line[3]
    assert "missing key(s) style" in by_line[4]
    assert "'../evil'" in by_line[5]
    assert "together" in by_line[6]
    assert "contnet_mask" in by_line[7]
    assert "repeats line 1" in by_line[8]
    assert "content must be" in by_line[9]


def test_check_finds_missing_unreadable_and_mismatched_files(folder):
    manifest = _write_lines(
        folder / "m.jsonl",
        [
            {
                "id": "good",
                "content": "photos/a.png",
                "style": "photos/b.png",
                "content_mask": "a_mask.png",
                "style_mask": "a_mask.png",
            },
            {"id": "missing", "content": "photos/nope.png", "style": "photos/b.png"},
            {"id": "broken", "content": "photos/a.png", "style": "photos/broken.png"},
            {
                "id": "shape",
                "content": "photos/wide.png",
                "style": "photos/b.png",
                "content_mask": "a_mask.png",
                "style_mask": "a_mask.png",
            },
            "not json",
        ],
    )
    entries, problems = check_manifest(manifest)
    assert [e.id for e in entries] == ["good"]
    text = [str(p) for p in problems]
    assert text[0].startswith("line 2 (missing): content:") and "no such file" in text[0]
    assert text[1].startswith("line 3 (broken): style:") and "not a readable image" in text[1]
    assert text[2].startswith("line 4 (shape): content_mask is 8x6 but content is 40x12")
    assert text[3].startswith("line 5: not valid JSON")
    # Lines only: the files are not looked at.
    entries, problems = check_manifest(manifest, files=False)
    assert len(entries) == 4 and [p.line for p in problems] == [5]


def test_data_check_command_prints_line_numbers_and_fails(folder, capsys):
    manifest = _write_lines(
        folder / "m.jsonl",
        [
            {"id": "good", "content": "photos/a.png", "style": "photos/b.png"},
            "{oops",
            {"id": "missing", "content": "photos/a.png", "style": "photos/gone.png"},
        ],
    )
    assert main(["data", "check", str(manifest)]) == 1
    captured = capsys.readouterr()
    assert f"{manifest}: line 2: not valid JSON" in captured.err
    assert f"{manifest}: line 3 (missing): style:" in captured.err
    assert "1 entries ok, 2 lines with problems" in captured.out

    clean = _write_lines(
        folder / "clean.jsonl",
        [
            {"id": "good", "content": "photos/a.png", "style": "photos/b.png"},
        ],
    )
    assert main(["data", "check", str(clean)]) == 0


def test_missing_manifest_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(InputError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")
    assert main(["data", "check", str(tmp_path / "none.jsonl")]) == 2
    assert "no such manifest" in capsys.readouterr().err


def test_entry_to_json_relative_to_base_or_as_given(tmp_path):
    entry = Entry("x", tmp_path / "a.png", tmp_path / "b.png")
    assert entry.to_json(tmp_path) == {"id": "x", "content": "a.png", "style": "b.png"}
    assert entry.to_json(None)["content"] == (tmp_path / "a.png").as_posix()
