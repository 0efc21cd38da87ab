"""Draw the bundled examples' region masks from their photos; rerun after changing a rule.

    .venv/bin/python serve/bundled/examples/make_masks.py [--check DIR]

Every mask is made here from its photo: hand-placed lines and polygons (pixel coordinates of
the photo as shipped) split the frame where a line is what a person sees (the water's edge),
and colour thresholds split what lies on either side (sky from branches, snow from rock).
Then each mask is cleaned (a mode filter, holes and specks below ``MIN_SPECK`` pixels
absorbed by their surroundings) and written as a colour PNG in the paper's palette
(``dpst.labels.palette``), with the region names in ``examples.json``. ``--check DIR`` also
writes each photo with its mask blended over it, for a look by eye. Needs NumPy, SciPy and
Pillow only (the core install).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

HERE = Path(__file__).resolve().parent
# Region name -> paper palette colour name (dpst.labels.palette.PAPER_PALETTE).
REGION_COLOURS = {
    "sky": "blue",
    "vegetation": "green",
    "water": "lightblue",
    "mountains": "purple",
    "ground": "yellow",
    "buildings": "grey",
}
UNDECIDED = -1
# Connected pieces of a region smaller than this (pixels) join the region around them.
MIN_SPECK = 40


def _palette() -> dict[str, tuple[int, int, int]]:
    try:
        from dpst.labels.palette import PAPER_PALETTE
    except ImportError:  # run from a checkout without the package installed
        import sys

        sys.path.insert(0, str(HERE.parents[2]))
        from labels.palette import PAPER_PALETTE
    return dict(PAPER_PALETTE)


# -- drawing helpers ---------------------------------------------------------------------


def read_rgb(path: Path) -> np.ndarray:
    """The photo as float32 (H, W, 3) in [0, 1]."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def below_line(shape: tuple[int, int], points: list[tuple[float, float]]) -> np.ndarray:
    """True under the polyline through ``points`` (x, y), x increasing across the frame."""
    h, w = shape
    xs, ys = zip(*points, strict=True)
    edge = np.interp(np.arange(w), xs, ys)
    return np.arange(h)[:, None] >= edge[None, :]


def polygon(shape: tuple[int, int], points: list[tuple[float, float]]) -> np.ndarray:
    """True inside the polygon through ``points`` (x, y)."""
    img = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(img).polygon([tuple(p) for p in points], fill=1)
    return np.asarray(img, dtype=bool)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def blueness(rgb: np.ndarray) -> np.ndarray:
    """Blue minus red (0-1 scale): high in a clear sky, low in foliage, bark and rock."""
    return rgb[..., 2] - rgb[..., 0]


def smooth(rgb: np.ndarray, size: int = 3) -> np.ndarray:
    return ndimage.uniform_filter(rgb, size=(size, size, 1))


def clean(labels: np.ndarray, ids: list[int], mode_size: int = 5) -> np.ndarray:
    """Undecided pixels take the nearest decided label; a mode filter, then specks removed."""
    out = labels.copy()
    undecided = out == UNDECIDED
    if undecided.any():
        _, (iy, ix) = ndimage.distance_transform_edt(undecided, return_indices=True)
        out = out[iy, ix]
    # Mode filter: each pixel takes the label most common in its mode_size square.
    votes = np.stack([ndimage.uniform_filter((out == i).astype(np.float32), mode_size)
                      for i in ids])  # fmt: skip
    out = np.asarray(ids)[votes.argmax(axis=0)]
    for i in ids:
        pieces, n = ndimage.label(out == i)
        if n == 0:
            continue
        sizes = ndimage.sum(np.ones_like(pieces), pieces, index=np.arange(1, n + 1))
        small = np.isin(pieces, 1 + np.flatnonzero(sizes < MIN_SPECK))
        if small.any():
            out[small] = UNDECIDED
            _, (iy, ix) = ndimage.distance_transform_edt(out == UNDECIDED, return_indices=True)
            out = out[iy, ix]
    return out


# -- the photos' rules ---------------------------------------------------------------------
# Each rule: photo (H, W, 3) in [0, 1] -> label map, values index into REGION_NAMES.

REGION_NAMES = list(REGION_COLOURS)
SKY, VEGETATION, WATER, MOUNTAINS, GROUND, BUILDINGS = range(len(REGION_NAMES))


def lake_day(rgb: np.ndarray) -> np.ndarray:
    """Cypress lake at midday: water under the tree line's foot; above it, clear blue sky
    against brown bare branches."""
    shape = rgb.shape[:2]
    water = below_line(shape, [(0, 246), (150, 244), (300, 243), (400, 241), (639, 246)])
    s = smooth(rgb)
    sky = (blueness(s) > 0.12) & (s[..., 2] > 0.75)
    labels = np.where(sky, SKY, VEGETATION)
    labels[water] = WATER
    return clean(labels, [SKY, VEGETATION, WATER])


def lake_dawn(rgb: np.ndarray) -> np.ndarray:
    """River at sunrise: water under the dark banks' mirror line; above it, the lit sky
    against the black tree line and the branches hanging in from the top."""
    shape = rgb.shape[:2]
    water = below_line(shape, [(0, 238), (150, 236), (300, 228), (500, 232), (639, 252)])
    sky = luma(smooth(rgb)) > 0.22
    labels = np.where(sky, SKY, VEGETATION)
    labels[water] = WATER
    return clean(labels, [SKY, VEGETATION, WATER])


def mountain_day(rgb: np.ndarray) -> np.ndarray:
    """Glacier lake by day: sky above the ridge line, forest below the tree line on the
    lower slopes, the lake under its shore; snow and rock between are the mountains."""
    shape = rgb.shape[:2]
    ground = below_line(shape, [
        (0, 60), (3, 60), (10, 67), (20, 67), (30, 70), (33, 82), (40, 90), (50, 96),
        (60, 100), (68, 108), (80, 112), (85, 122), (90, 124), (110, 125), (125, 130),
        (130, 122), (140, 110), (150, 104), (160, 102), (170, 98), (180, 94), (190, 91),
        (197, 88), (210, 92), (230, 98), (240, 104), (250, 110), (260, 116), (270, 124),
        (280, 130), (290, 133), (300, 128), (310, 126), (330, 127), (350, 130),
        (360, 138), (370, 142), (380, 142), (390, 140), (400, 134), (410, 131),
        (420, 134), (435, 134), (450, 142), (460, 150), (470, 160), (480, 168),
        (490, 172), (520, 172), (540, 180), (550, 184), (560, 182), (570, 186),
        (580, 192), (600, 190), (620, 195), (630, 200), (639, 198),
    ])  # fmt: skip
    forest = below_line(shape, [
        (0, 170), (60, 182), (120, 196), (170, 206), (230, 220), (300, 234), (350, 240),
        (400, 245), (450, 250), (500, 255), (550, 258), (600, 261), (639, 262),
    ])  # fmt: skip
    water = below_line(shape, [(0, 272), (639, 272)])
    labels = np.full(shape, SKY)
    labels[ground] = MOUNTAINS
    labels[forest] = VEGETATION
    labels[water] = WATER
    return clean(labels, [SKY, VEGETATION, WATER, MOUNTAINS])


def mountain_dusk(rgb: np.ndarray) -> np.ndarray:
    """Mountain lake at dusk: sky above the ridge line, the lake under the forest's foot;
    between them the snowy peaks above the black forest and hills."""
    shape = rgb.shape[:2]
    ground = below_line(shape, [
        (0, 160), (20, 154), (30, 152), (40, 153), (50, 156), (60, 165), (70, 168),
        (78, 166), (90, 160), (110, 150), (120, 145), (140, 142), (160, 146), (175, 144),
        (180, 148), (190, 153), (200, 160), (220, 171), (240, 180), (260, 188),
        (280, 194), (300, 192), (304, 188), (310, 192), (330, 191), (350, 186),
        (370, 179), (390, 174), (420, 171), (440, 170), (450, 168), (460, 163),
        (480, 153), (490, 146), (495, 142), (500, 142), (505, 146), (520, 149),
        (530, 148), (535, 152), (550, 151), (570, 156), (590, 162), (600, 167),
        (610, 171), (630, 168), (639, 168),
    ])  # fmt: skip
    # The foot of the snow and rock; left of x=70 the line runs above the ridge, so the dark
    # wooded hill there is forest.
    forest = below_line(shape, [
        (0, 140), (68, 140), (75, 168), (100, 180), (140, 181), (170, 185), (220, 190),
        (260, 195), (290, 196), (310, 194), (330, 192), (350, 190), (400, 186), (450, 182),
        (500, 180), (550, 182), (600, 180), (639, 176),
    ])  # fmt: skip
    water = below_line(shape, [(0, 223), (639, 223)])
    labels = np.full(shape, SKY)
    labels[ground] = MOUNTAINS
    labels[forest & ground] = VEGETATION
    labels[water] = WATER
    return clean(labels, [SKY, VEGETATION, WATER, MOUNTAINS])


def city_grey(rgb: np.ndarray) -> np.ndarray:
    """Eiffel Tower under an overcast sky: inside the tower's outline, the dark ironwork is
    building and the bright sky seen through it is sky; the green trees either side are
    vegetation; the palace under the arch and the crowded square are buildings."""
    shape = rgb.shape[:2]
    s = smooth(rgb)
    tower = polygon(shape, [
        (124, 14), (128, 14), (133, 40), (133, 60), (136, 100), (140, 130), (145, 150),
        (146, 160), (152, 195), (163, 205), (172, 235), (180, 245), (180, 263), (80, 263),
        (80, 240), (92, 205), (110, 195), (112, 160), (116, 140), (119, 100), (122, 60),
        (122, 40),
    ])  # fmt: skip
    bright = luma(s) > 0.5
    green = (s[..., 1] > s[..., 0] + 0.02) & (s[..., 1] > s[..., 2] + 0.02)
    low = below_line(shape, [(0, 185), (263, 185)])
    square = below_line(shape, [(0, 252), (263, 252)]) | polygon(
        shape, [(100, 238), (152, 238), (152, 263), (100, 263)]
    )
    labels = np.full(shape, SKY)
    labels[tower & ~bright] = BUILDINGS
    labels[low & (green | (luma(s) < 0.3)) & ~tower] = VEGETATION
    labels[square & ~green] = BUILDINGS
    return clean(labels, [SKY, VEGETATION, BUILDINGS], mode_size=3)


def city_clear(rgb: np.ndarray) -> np.ndarray:
    """Leaning Tower of Pisa under a blue sky with white clouds (cloud and marble alike, so
    the tower is drawn by hand); the row of houses on the left and the square are
    buildings; the dark trees on the right are vegetation."""
    shape = rgb.shape[:2]
    s = smooth(rgb)
    tower = polygon(shape, [
        (130, 22), (172, 22), (178, 40), (185, 65), (183, 110), (180, 150), (178, 190),
        (176, 215), (176, 263), (102, 263), (104, 215), (108, 180), (112, 140),
        (115, 110), (118, 80), (120, 55), (125, 40),
    ])  # fmt: skip
    houses = polygon(shape, [(0, 213), (20, 212), (60, 216), (98, 220), (106, 220), (106, 263),
                             (0, 263)])  # fmt: skip
    square = below_line(shape, [(0, 248), (263, 248)])
    trees = polygon(shape, [(176, 203), (263, 200), (263, 250), (176, 250)])
    green = (s[..., 1] > s[..., 0]) & (s[..., 1] > s[..., 2] - 0.02)
    dark = luma(s) < 0.3
    sky = luma(s) > 0.55  # the pale haze over the trees
    labels = np.full(shape, SKY)
    labels[tower | houses | square] = BUILDINGS
    labels[trees & ~sky] = BUILDINGS
    labels[trees & (dark | green) & ~sky] = VEGETATION
    return clean(labels, [SKY, VEGETATION, BUILDINGS], mode_size=3)


Rule = Callable[[np.ndarray], np.ndarray]


class Pair(NamedTuple):
    name: str
    caption: str
    content: str
    style: str
    content_rule: Rule
    style_rule: Rule


# In the order the demo shows them; the first is `dpst demo`'s default and the README's.
EXAMPLES = (
    Pair("lake-dawn", "a lake at midday in the look of a sunrise",
         "lake_day.jpg", "lake_dawn.jpg", lake_day, lake_dawn),
    Pair("mountain-dusk", "a glacier lake by day in the look of dusk",
         "mountain_day.jpg", "mountain_dusk.jpg", mountain_day, mountain_dusk),
    Pair("city-clear", "a city under a grey sky in the look of a clear one",
         "city_grey.jpg", "city_clear.jpg", city_grey, city_clear),
)  # fmt: skip


def mask_image(labels: np.ndarray) -> Image.Image:
    """Label map (values index REGION_NAMES) -> a palette-coloured RGB image."""
    palette = _palette()
    colours = np.array([palette[REGION_COLOURS[n]] for n in REGION_NAMES], dtype=np.uint8)
    return Image.fromarray(colours[labels])


def overlay(rgb: np.ndarray, mask: Image.Image) -> Image.Image:
    """The photo with its mask blended over it, side by side with the mask."""
    photo = Image.fromarray((rgb * 255).round().astype(np.uint8))
    blend = Image.blend(photo, mask.convert("RGB"), 0.35)
    out = Image.new("RGB", (photo.width * 2 + 4, photo.height), "white")
    out.paste(blend, (0, 0))
    out.paste(mask, (photo.width + 4, 0))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", type=Path, help="also write overlays here, to look at")
    args = p.parse_args(argv)
    manifest = []
    for pair in EXAMPLES:
        name, regions = pair.name, None
        entry = {"name": name, "caption": pair.caption}
        for role, photo, rule in (("content", pair.content, pair.content_rule),
                                  ("style", pair.style, pair.style_rule)):  # fmt: skip
            rgb = read_rgb(HERE / photo)
            labels = rule(rgb)
            present = [REGION_NAMES[i] for i in np.unique(labels)]
            if regions is not None and present != regions:
                raise SystemExit(f"{name}: content regions {regions}, style regions {present}")
            regions = present
            mask_file = Path(photo).stem + "_mask.png"
            mask = mask_image(labels)
            mask.save(HERE / mask_file, optimize=True)
            entry[role] = photo
            entry[f"{role}_mask"] = mask_file
            if args.check:
                args.check.mkdir(parents=True, exist_ok=True)
                overlay(rgb, mask).save(args.check / f"{name}-{role}.png")
        entry["regions"] = {n: REGION_COLOURS[n] for n in regions}
        manifest.append(entry)
        print(f"{name}: {', '.join(regions)}")
    text = json.dumps({"examples": manifest}, indent=2) + "\n"
    (HERE / "examples.json").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
