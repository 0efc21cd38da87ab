"""The weight-free region finder (dpst.labels.weight_free): synthetic photos, no shared data."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np

from dpst.labels.regions import FROM_WEIGHT_FREE, ONE_REGION
from dpst.labels.weight_free import (
    BACKGROUND,
    SKY,
    find_backdrop,
    find_background,
    find_sky,
    weight_free_regions,
)


def sky_and_ground(h: int = 120, w: int = 180, seed: int = 0, sky_share: float = 0.4):
    """A smooth blue sky (brighter toward the horizon) over textured green-brown ground."""
    rng = np.random.default_rng(seed)
    image = np.empty((h, w, 3), np.float32)
    horizon = int(h * sky_share)
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    image[:horizon] = np.stack([0.35 + 0.25 * t, 0.55 + 0.2 * t, 0.9 + 0.05 * t], axis=2) * np.ones(
        (1, w, 1)
    )
    # Grass-like texture: noise in 3 px blocks, so it stays texture at any working size.
    blocks = rng.random(((h - horizon) // 3 + 1, w // 3 + 1, 3))
    noise = np.repeat(np.repeat(blocks, 3, axis=0), 3, axis=1)[: h - horizon, :w]
    image[horizon:] = np.array([0.3, 0.35, 0.15]) * (0.4 + 0.9 * noise)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def texture(h: int, w: int, seed: int, block: int = 3) -> np.ndarray:
    """Noise in ``block`` px squares, in [0, 1]: it stays texture at any working size."""
    blocks = np.random.default_rng(seed).random((h // block + 1, w // block + 1, 3))
    return np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:h, :w]


def object_on_backdrop(h=120, w=160, seed=0, backdrop=(0.95, 0.95, 0.93), radius=0.3):
    """A textured disc (the object) in the middle of a smooth plain backdrop."""
    rows, cols = np.mgrid[0:h, 0:w]
    disc = (rows - h / 2) ** 2 + (cols - w / 2) ** 2 < (radius * min(h, w)) ** 2
    image = np.empty((h, w, 3), np.float32)
    image[:] = backdrop
    image[disc] = (np.array([0.6, 0.3, 0.1]) * (0.3 + texture(h, w, seed)))[disc]
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), disc


def test_two_regions_on_sky_and_ground_same_labels_in_both():
    content, style = sky_and_ground(seed=1), sky_and_ground(160, 120, seed=2, sky_share=0.3)
    regions, note = weight_free_regions(content, style)
    assert regions.source == FROM_WEIGHT_FREE
    assert regions.content.shape == content.shape[:2]
    assert regions.style.shape == style.shape[:2]
    assert set(np.unique(regions.content)) == set(np.unique(regions.style)) == {0, 1}
    assert regions.name_of(SKY) == "sky"
    # The sky is where it was painted.
    assert (regions.content[:40] == SKY).mean() > 0.9
    assert (regions.content[60:] == SKY).mean() < 0.02
    assert "sky" in note and "\n" not in note


def test_deterministic():
    content, style = sky_and_ground(seed=3), sky_and_ground(seed=4)
    first, _ = weight_free_regions(content, style)
    second, _ = weight_free_regions(content.copy(), style.copy())
    np.testing.assert_array_equal(first.content, second.content)
    np.testing.assert_array_equal(first.style, second.style)


def test_one_region_on_flat_and_textureless_images():
    flat = np.full((100, 150, 3), 128, np.uint8)
    gradient = (np.linspace(0, 1, 150)[None, :, None] * np.ones((100, 1, 3)) * 255).astype(np.uint8)
    sky = sky_and_ground()
    for image in (flat, gradient):
        assert find_sky(image).mask is None
        regions, note = weight_free_regions(image, sky)
        assert regions.one_region and regions.source == ONE_REGION
        assert "one region" in note and "\n" not in note


def test_one_region_when_only_one_photo_has_sky():
    noise = (np.random.default_rng(0).random((100, 100, 3)) * 255).astype(np.uint8)
    regions, note = weight_free_regions(sky_and_ground(), noise)
    assert regions.one_region and "style" in note


def test_no_sky_in_the_lower_half():
    """A smooth bright area at the bottom (a floor, a tablecloth) is not a sky."""
    upside_down = sky_and_ground()[::-1].copy()
    assert find_sky(upside_down).mask is None


def test_odd_images_fall_back_to_one_region_in_one_line():
    sky = sky_and_ground()
    odd = [
        np.zeros((50, 50, 2), np.uint8),  # two channels
        np.full((40, 40, 3), np.nan, np.float32),  # not finite
        np.zeros((4, 4, 3), np.uint8),  # tiny
        np.zeros((0, 10, 3), np.uint8),  # empty
    ]
    for image in odd:
        for content, style in ((image, sky), (sky, image)):
            regions, note = weight_free_regions(content, style)
            assert regions.one_region, note
            assert "one region" in note and "\n" not in note


def test_dpst_fast_without_weights_uses_the_weight_free_regions(tmp_path):
    """Plain ``dpst fast`` with no segmenter on disk: the weight-free regions, said in one line
    after the segmenter's, and torch never imported."""

    from PIL import Image

    Image.fromarray(sky_and_ground(seed=5)).save(tmp_path / "c.png")
    Image.fromarray(sky_and_ground(seed=6, sky_share=0.3)).save(tmp_path / "s.png")
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    script = textwrap.dedent(
        f"""
        import sys
        from dpst.cli import main
        d = {str(tmp_path)!r}
        assert main(["fast", d + "/c.png", d + "/s.png", "-o", d + "/o.png", "--threads", "1",
                     "--seg-weights", d + "/no-weights"]) == 0
        assert main(["fast", d + "/flat.png", d + "/s.png", "-o", d + "/o2.png",
                     "--threads", "1", "--seg-weights", d + "/no-weights"]) == 0
        assert sys.modules.get("torch") is None, "torch was imported"
        """
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty"), "OMP_NUM_THREADS": "1"}
    env.pop("DPST_MODEL", None)
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 4, ran.stderr
    assert lines[0].startswith("dpst fast: no automatic masks (")
    assert lines[0].endswith("; using weight-free regions")
    assert lines[1] == "dpst fast: weight-free regions: sky and rest in both photos"
    assert lines[3].startswith(
        "dpst fast: weight-free regions: no sure sky or backdrop in the content"
    )
    assert lines[3].endswith("; one region")
    assert (tmp_path / "o.png").is_file() and (tmp_path / "o2.png").is_file()


def test_the_one_pass_reports_the_weight_free_regions():
    """run_pair's report names the regions used and their source."""
    from dpst.serve.runtime.pipeline import run_pair

    class Echo:  # a stand-in stylizer: the content back, the labels it was given kept
        max_labels = 8

        def stylize(self, content, style, content_labels=None, style_labels=None, **_):
            self.labels = content_labels
            return np.asarray(content, np.uint8)

    content, style = sky_and_ground(seed=7), sky_and_ground(seed=8)
    regions, _ = weight_free_regions(content, style)
    stylizer = Echo()
    report = run_pair(stylizer, content, style, regions).report
    assert report["region_source"] == FROM_WEIGHT_FREE
    assert sorted(report["regions"]) == ["rest", "sky"]
    assert len(np.unique(stylizer.labels)) == 2


def test_dusk_sky_with_a_gradient_is_found_down_to_the_horizon():
    """A sky going from deep blue at the top to orange at the horizon is one sky."""
    h, w, horizon = 120, 180, 72
    image = np.empty((h, w, 3), np.float32)
    t = np.linspace(0.0, 1.0, horizon)[:, None, None]
    top, low = np.array([0.1, 0.12, 0.35]), np.array([0.95, 0.55, 0.2])
    image[:horizon] = (1 - t) * top + t * low
    image[horizon:] = 0.12 * (0.5 + texture(h - horizon, w, 1))
    found = find_sky((image * 255).astype(np.uint8))
    assert found.mask is not None and found.role == "sky", found.reason
    rows = round(horizon * found.mask.shape[0] / h)
    assert found.mask[: rows - 2].mean() > 0.95
    assert found.mask[rows + 2 :].mean() < 0.02


def test_sky_around_a_tower_that_reaches_the_top_edge():
    """A textured tower cut into the sky to the top edge: the sky on both sides, not the tower
    (a sky must cover 90% of the top edge: this tower takes 7%)."""
    image = sky_and_ground(120, 180, seed=2).astype(np.float32) / 255
    image[:, 84:96] = 0.5 * texture(120, 12, 3)
    found = find_sky((image * 255).astype(np.uint8))
    assert found.mask is not None, found.reason
    scale = found.mask.shape[1] / 180
    assert found.mask[:10, : round(70 * scale)].mean() > 0.9
    assert found.mask[:, round(86 * scale) : round(94 * scale)].mean() < 0.05


def test_a_window_is_not_a_sky():
    """Blue sky seen through a window high in a textured wall: not a sky (the teapot case)."""
    image = 0.6 * (0.6 + 0.4 * texture(120, 180, 4))
    image[:45, 60:120] = (0.45, 0.65, 0.95)
    assert find_sky((image * 255).astype(np.uint8)).mask is None


def test_cloudy_sky_brighter_than_the_ground():
    """White clouds in a blue sky are texture too; a sky much brighter than the ground is kept."""
    h, w, horizon = 120, 180, 50
    image = np.empty((h, w, 3), np.float32)
    clouds = ndimage_smooth(texture(horizon, w, 5, block=8)[..., 0])
    image[:horizon] = (0.45, 0.65, 0.95) + clouds[..., None] * (0.5, 0.33, 0.05)
    image[horizon:] = np.array([0.2, 0.25, 0.1]) * (0.4 + texture(h - horizon, w, 6))
    found = find_sky((np.clip(image, 0, 1) * 255).astype(np.uint8))
    assert found.mask is not None, found.reason
    assert found.stats["smoother"] < 10  # the sky is textured too
    rows = round(horizon * found.mask.shape[0] / h)
    assert found.mask[: rows - 2].mean() > 0.9 and found.mask[rows + 2 :].mean() < 0.02


def ndimage_smooth(values):
    from scipy import ndimage

    out = ndimage.gaussian_filter(values, 2.0)
    return (out - out.min()) / (out.max() - out.min())


def test_backdrop_in_both_photos_two_regions():
    """A studio shot in both photos, white backdrop and black one: backdrop and rest."""
    content, disc = object_on_backdrop(seed=1)
    style, _ = object_on_backdrop(100, 150, seed=2, backdrop=(0.02, 0.02, 0.03), radius=0.35)
    assert find_sky(content).mask is None  # the backdrop reaches the bottom edge: not a sky
    assert find_backdrop(content).role == "backdrop"
    regions, note = weight_free_regions(content, style)
    assert regions.source == FROM_WEIGHT_FREE
    assert set(np.unique(regions.content)) == set(np.unique(regions.style)) == {0, BACKGROUND}
    assert regions.name_of(BACKGROUND) == "backdrop"
    assert (regions.content[disc] == BACKGROUND).mean() < 0.05
    assert (regions.content[~disc] == BACKGROUND).mean() > 0.9
    assert note == "weight-free regions: backdrop and rest in both photos"


def test_sky_and_backdrop_are_matched_as_background():
    regions, note = weight_free_regions(sky_and_ground(seed=3), object_on_backdrop(seed=4)[0])
    assert not regions.one_region
    assert regions.name_of(BACKGROUND) == "background"
    assert "the content's sky matched with the style's backdrop" in note and "\n" not in note


def test_backdrop_in_one_photo_only_gives_one_region():
    noise = (texture(100, 100, 7) * 255).astype(np.uint8)
    regions, note = weight_free_regions(object_on_backdrop(seed=5)[0], noise)
    assert regions.one_region and "style" in note and "one region" in note


def test_flat_photo_has_no_backdrop():
    for image in (np.full((100, 150, 3), 200, np.uint8), np.zeros((90, 90, 3), np.uint8)):
        assert find_backdrop(image).mask is None
        assert find_background(image).mask is None
