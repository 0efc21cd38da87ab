"""The bundled example pairs and ``dpst demo`` (issue 24, item 2): photos with region masks
whose labels match between content and style, credited, small, and a demo that names the
regions it used, with neither torch nor scikit-image."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.labels.palette import MASK_PALETTE
from dpst.serve.examples import CREDITS, EXAMPLES_DIR, examples, read_photo_and_labels

# Licences a shipped example photo may carry (no share-alike, no "free to use" licences).
ALLOWED_LICENCES = ("Public domain", "CC0 1.0", "CC BY 2.0", "CC BY 3.0", "CC BY 4.0")
MAX_TOTAL_BYTES = 1_500_000
MAX_LONG_SIDE = 800


def test_every_example_loads_with_masks_whose_regions_match():
    assert len(examples()) >= 3
    colours = {name for name, _ in MASK_PALETTE}
    for example in examples():
        assert set(example.regions.values()) <= colours
        content, content_labels, names = read_photo_and_labels(example.content.stem)
        style, style_labels, _ = read_photo_and_labels(example.style.stem)
        assert content_labels.shape == content.shape[:2]
        assert style_labels.shape == style.shape[:2]
        # Every pixel is a region (no anti-aliased or stray colours), the same regions in both.
        assert (content_labels >= 0).all() and (style_labels >= 0).all()
        c_ids, s_ids = set(np.unique(content_labels)), set(np.unique(style_labels))
        assert c_ids == s_ids, example.name
        assert sorted(names[i] for i in c_ids) == sorted(example.regions), example.name
        assert len(c_ids) >= 2


def test_every_shipped_image_is_credited_with_an_allowed_licence():
    with open(CREDITS, newline="") as fh:
        rows = {row["file"]: row for row in csv.DictReader(fh)}
    photos = {p.name for e in examples() for p in (e.content, e.style)}
    shipped = {p.name for p in EXAMPLES_DIR.glob("*.jpg")}
    assert photos == shipped == set(rows)
    for name, row in rows.items():
        assert row["licence"].startswith(ALLOWED_LICENCES), (name, row["licence"])
        assert row["title"] and row["author"] and row["source_url"].startswith("https://")
        with Image.open(EXAMPLES_DIR / name) as img:
            assert max(img.size) <= MAX_LONG_SIDE


def test_the_examples_are_small():
    total = sum(p.stat().st_size for p in EXAMPLES_DIR.iterdir() if p.suffix != ".py")
    assert total <= MAX_TOTAL_BYTES


def test_demo_names_the_regions_and_shows_the_masks(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out)]) == 0
    report = json.loads((tmp_path / "demo.png.json").read_text())
    assert report["region_source"] == "mask files"
    assert len(report["regions"]) >= 2 and "sky" in report["regions"]
    assert report["inputs"]["example"] == examples()[0].name
    with Image.open(out) as result, Image.open(tmp_path / "demo_compare.png") as compare:
        # Three photos side by side, the masks' row under them.
        assert compare.width > 3 * result.width and compare.height > result.height
    assert "regions: sky" in capsys.readouterr().out


def test_demo_other_pairs_and_photos(tmp_path, capsys):
    compare = tmp_path / "side.jpg"
    args = ["demo", "-o", str(tmp_path / "d.png"), "--example", "city-clear"]
    assert main([*args, "--compare", str(compare)]) == 0
    assert compare.is_file() and not (tmp_path / "d_compare.png").exists()
    report = json.loads((tmp_path / "d.png.json").read_text())
    assert sorted(report["regions"]) == ["buildings", "sky", "vegetation"]
    # A photo of another pair: its own mask; the regions the style lacks are remapped.
    args = ["demo", "-o", str(tmp_path / "m.png"), "--content", "city_grey", "--style", "lake_dawn"]
    assert main(args) == 0
    report = json.loads((tmp_path / "m.png.json").read_text())
    assert report["inputs"]["example"] is None and report["orphans"]
    capsys.readouterr()
    assert main(["demo", "-o", str(tmp_path / "x.png"), "--content", "rocket"]) == 2
    err = capsys.readouterr().err
    assert "no bundled photo called 'rocket'" in err and "lake_day" in err


@pytest.mark.parametrize("flag", ["--example", "--content"])
def test_demo_help_lists_the_examples(flag, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "lake-dawn" in text and "city_grey" in text and flag in text


def test_demo_needs_neither_torch_nor_scikit_image(tmp_path):
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "skimage"):
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, Block())
from dpst.cli import main
sys.exit(main(["demo", "-o", {str(tmp_path / "demo.png")!r}]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo.png.json").is_file()
