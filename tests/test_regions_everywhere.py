"""``--masks auto`` without segmenter weights, in every front end (issue 23): dpst fast, dpst
look (making and applying), dpst stylize and the demo's Fast and Quality modes name the
weight-free regions (one region on a flat photo) and hand the pipeline the regions dpst fast
finds. Synthetic photos (a blue sky over textured ground), no shared data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.labels.finder import pair_finder, weight_free_finder
from dpst.labels.regions import FROM_WEIGHT_FREE, ONE_REGION
from dpst.serve.runtime.stylizer import BUNDLED_MODEL
from tests.test_weight_free import sky_and_ground

needs_model = pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")


@pytest.fixture
def photos(tmp_path):
    """Content and style with a sure sky, and a flat photo: paths, and flags that name a
    segmenter folder with no weights (so neither its ONNX file nor torch is used)."""
    paths = {"content": tmp_path / "c.png", "style": tmp_path / "s.png",
             "flat": tmp_path / "flat.png"}  # fmt: skip
    Image.fromarray(sky_and_ground(seed=5)).save(paths["content"])
    Image.fromarray(sky_and_ground(seed=6, sky_share=0.3)).save(paths["style"])
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(paths["flat"])
    no_weights = ["--seg-weights", str(tmp_path / "no-weights")]
    return {name: str(path) for name, path in paths.items()}, no_weights


def _pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _expected(content: str, style: str):
    """The regions dpst fast finds for the pair (the one finder every front end calls)."""
    return pair_finder(weight_free_finder(), _pixels(style))(_pixels(content)).regions


def _capture(monkeypatch, module, name: str) -> list:
    """Calls of ``module.name`` recorded (its arguments), the function still run."""
    calls = []
    original = getattr(module, name)

    def recorded(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return calls


@needs_model
def test_dpst_fast_and_a_look_hand_the_pipeline_the_same_weight_free_regions(
    photos, tmp_path, monkeypatch, capsys
):
    import dpst.commands.fast as fast
    from dpst.serve.runtime.looks import LABELS_FROM_WEIGHT_FREE, read_look

    paths, no_weights = photos
    pairs = _capture(monkeypatch, fast, "run_pair")
    looks = _capture(monkeypatch, fast, "run_look")
    common = ["--threads", "1", *no_weights]
    assert main(["fast", paths["content"], paths["style"], "-o", str(tmp_path / "o.png"),
                 *common]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "regions (weight-free): rest, sky" in out
    regions = pairs[0][0][3]
    expected = _expected(paths["content"], paths["style"])
    assert regions.source == FROM_WEIGHT_FREE
    np.testing.assert_array_equal(regions.content, expected.content)
    np.testing.assert_array_equal(regions.style, expected.style)

    # The look records the style's weight-free regions ...
    look_path = tmp_path / "sky.dpst"
    assert main(["look", paths["style"], "-o", str(look_path), *common]) == 0
    assert "weight-free regions rest, sky" in capsys.readouterr().out
    look = read_look(look_path)
    assert look.label_source == LABELS_FROM_WEIGHT_FREE and look.label_names == ("rest", "sky")
    # ... and applying it finds the content's as dpst fast does.
    assert main(["fast", paths["content"], "--look", str(look_path), "-o",
                 str(tmp_path / "l.png"), *common]) == 0  # fmt: skip
    assert "regions (weight-free): rest, sky" in capsys.readouterr().out
    np.testing.assert_array_equal(looks[0][0][3], expected.content)
    # A flat content: one region, said in one line.
    assert main(["fast", paths["flat"], "--look", str(look_path), "-o",
                 str(tmp_path / "f.png"), *common]) == 0  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith(
        "dpst fast: weight-free regions: no sure sky or backdrop in the content ("
    )
    assert looks[1][0][3] is None


@needs_model
def test_a_sky_look_on_a_backdrop_content_names_the_pair_background(photos, tmp_path, capsys):
    """A look keeps its style's role (sky); a content with a backdrop is labelled by its own
    and the pair named as dpst fast names it (pair_names: background)."""
    from dpst.labels.weight_free import pair_names
    from dpst.serve.runtime.looks import read_look
    from tests.test_weight_free import object_on_backdrop

    paths, no_weights = photos
    backdrop = tmp_path / "b.png"
    Image.fromarray(object_on_backdrop(seed=3)[0]).save(backdrop)
    common = ["--threads", "1", *no_weights]
    look_path = tmp_path / "sky.dpst"
    assert main(["look", paths["style"], "-o", str(look_path), *common]) == 0
    assert read_look(look_path).label_names == ("rest", "sky")
    capsys.readouterr()
    for argv in (["--look", str(look_path)], [paths["style"]]):
        assert main(["fast", str(backdrop), *argv, "-o", str(tmp_path / "o.png"), *common]) == 0
        names = ", ".join(pair_names("backdrop", "sky"))
        assert f"regions (weight-free): {names}" in capsys.readouterr().out
    assert names == "rest, background"


@needs_model
def test_a_look_of_a_flat_style_is_one_region_in_one_line(photos, tmp_path, capsys):
    from dpst.serve.runtime.looks import read_look

    paths, no_weights = photos
    look_path = tmp_path / "flat.dpst"
    assert main(["look", paths["flat"], "-o", str(look_path), "--threads", "1",
                 *no_weights]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert read_look(look_path).label_ids is None and "one region" in captured.out
    lines = captured.err.strip().splitlines()
    assert lines[0].endswith("; using weight-free regions")
    no_background = "dpst look: weight-free regions: no sure sky or backdrop in the style ("
    assert lines[1].startswith(no_background)


STYLIZE = ["--size", "48", "--iters", "1", "--stages", "1", "--backbone", "random",
           "--no-postfilter", "--quiet"]  # fmt: skip


def test_dpst_stylize_reports_and_optimises_the_weight_free_regions(
    photos, tmp_path, monkeypatch, capsys, one_thread
):
    import dpst.optim_reference.stylize as optimiser

    paths, no_weights = photos
    calls = _capture(monkeypatch, optimiser, "stylize")
    out = tmp_path / "o.png"
    assert main(["stylize", paths["content"], paths["style"], "-o", str(out), *STYLIZE,
                 *no_weights]) == 0  # fmt: skip
    report = json.loads(out.with_name("o.png.json").read_text())
    assert report["masks"]["source"] == FROM_WEIGHT_FREE
    assert sorted(report["regions"]) == ["rest", "sky"]
    assert "dpst stylize: weight-free regions: sky and rest in both photos" in (
        capsys.readouterr().err
    )
    args = calls[0][0]
    expected = _expected(paths["content"], paths["style"])
    np.testing.assert_array_equal(args[2], expected.content)
    np.testing.assert_array_equal(args[3], expected.style)

    flat = tmp_path / "out-flat.png"
    assert main(["stylize", paths["flat"], paths["style"], "-o", str(flat), *STYLIZE,
                 *no_weights]) == 0  # fmt: skip
    report = json.loads(flat.with_name("out-flat.png.json").read_text())
    assert report["masks"]["source"] == ONE_REGION and report["regions"] == []
    no_background = "weight-free regions: no sure sky or backdrop in the content"
    assert report["masks"]["note"].startswith(no_background)


def test_dpst_stylize_looks_for_the_segmenter_onnx_file_as_dpst_fast_does(
    photos, tmp_path, monkeypatch, capsys
):
    """No segmenter folder named: its ONNX file is looked for (and would be fetched when
    online; the tests are offline), then the weight-free regions."""
    import dpst.labels.automatic as automatic

    monkeypatch.setattr(automatic, "_in_hf_cache", lambda model, cache_dir: False)
    paths, _ = photos
    out = tmp_path / "o.png"
    assert main(["stylize", paths["flat"], paths["style"], "-o", str(out), *STYLIZE]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("dpst stylize: no automatic masks (segmenter ")
    assert ".onnx is not in " in first and "(offline)" in first
    assert first.endswith("; using weight-free regions")


def _engine(tmp_path, segmenter_weights: bool = True):
    pytest.importorskip("gradio")
    from dpst.models.segmenter_config import SegmenterConfig
    from dpst.serve.app.config import AppConfig
    from dpst.serve.app.engine import DemoEngine
    from tests.test_app import FakeStylizer

    weights = str(tmp_path / "no-weights") if segmenter_weights else None
    segmenter = SegmenterConfig(weights=weights, device="cpu")
    config = AppConfig(backbone="random", device="cpu", segmenter=segmenter)
    return DemoEngine(config, fast=FakeStylizer())


def test_the_demo_fast_mode_finds_and_names_the_weight_free_regions(photos, tmp_path):
    from dpst.serve.app.engine import MaskRequest

    paths, _ = photos
    engine = _engine(tmp_path)
    available, note = engine.automatic_available()
    assert available and note.endswith("; using weight-free regions")
    automatic = MaskRequest("automatic")
    job = engine.run_fast(paths["content"], paths["style"], automatic)
    assert "automatic masks: rest, sky (weight-free)" in job.info
    assert job.report["region_source"] == FROM_WEIGHT_FREE
    # The same regions as dpst fast's, before the label policy.
    content, style = engine.read_pair(paths["content"], paths["style"])
    found = engine.masks(automatic, content, style, 512).regions
    expected = _expected(paths["content"], paths["style"])
    np.testing.assert_array_equal(found.content, expected.content)
    np.testing.assert_array_equal(found.style, expected.style)
    flat = engine.run_fast(paths["flat"], paths["style"], automatic)
    line = [x for x in flat.info if x.startswith("automatic masks: ")]
    assert line == [line[0]] and "no sure sky or backdrop in the content" in line[0]
    assert flat.report["region_source"] == ONE_REGION


def test_the_demo_quality_mode_names_the_weight_free_regions(photos, tmp_path, one_thread):
    from dpst.serve.app.engine import MaskRequest

    paths, _ = photos
    engine = _engine(tmp_path)
    settings = {"size": 48, "iters": 1, "multiscale": False, "post_mode": "fast"}
    job = engine.run_quality(paths["content"], paths["style"], MaskRequest("automatic"), settings)
    assert "automatic masks: rest, sky (weight-free)" in job.info
    assert job.report["labels"]["label_ids"] == [0, 1]


def test_the_demo_engine_looks_for_the_segmenter_onnx_file(tmp_path, monkeypatch):
    import dpst.labels.automatic as automatic

    monkeypatch.setattr(automatic, "_in_hf_cache", lambda model, cache_dir: False)
    available, note = _engine(tmp_path, segmenter_weights=False).automatic_available()
    assert available and ".onnx is not in " in note and "(offline)" in note


@needs_model
def test_the_demo_makes_and_applies_a_weight_free_look(photos, tmp_path):
    from dpst.serve.app.engine import DemoEngine, MaskRequest
    from dpst.serve.runtime.looks import LABELS_FROM_WEIGHT_FREE, read_look
    from dpst.serve.runtime.stylizer import FastStylizer

    paths, _ = photos
    engine = _engine(tmp_path)
    engine = DemoEngine(engine.config, fast=FastStylizer(BUNDLED_MODEL, threads=1))
    automatic = MaskRequest("automatic")
    saved = engine.make_look(paths["style"], automatic)
    assert saved.regions == "weight-free regions rest, sky"
    assert read_look(saved.path).label_source == LABELS_FROM_WEIGHT_FREE
    job = engine.run_fast(paths["content"], None, automatic, look=saved.path)
    assert "look applied per region: rest, sky (content: rest, sky)" in job.info
    assert job.report["region_source"] == FROM_WEIGHT_FREE
