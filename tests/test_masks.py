"""Masks: colour decoding, mask files, one-hot masks, propagation through VGG, label policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from dpst.errors import InputError
from dpst.labels.mask_files import decode_colour_mask, read_mask
from dpst.labels.palette import PAPER_PALETTE
from dpst.labels.policy import (
    LabelPolicy,
    apply_label_policy,
    merge_small_regions,
    merge_small_regions_jointly,
    remap_orphans,
)
from dpst.optim_reference import vgg
from dpst.optim_reference.masks import one_hot_masks, propagate_masks
from tests.tolerances import DTYPE_TOLERANCES

COLOUR = {name: np.array(rgb, dtype=np.uint8) for name, rgb in PAPER_PALETTE}
INDEX = {name: i for i, (name, _) in enumerate(PAPER_PALETTE)}


def decode_oracle(rgb01: np.ndarray) -> np.ndarray:
    """Pixel by pixel, colour by colour, as the published ExtractMask (strict < 0.1)."""
    out = np.full(rgb01.shape[:2], -1)
    for y in range(rgb01.shape[0]):
        for x in range(rgb01.shape[1]):
            for k, (_, rgb) in enumerate(PAPER_PALETTE):
                if all(abs(rgb01[y, x, c] - rgb[c] / 255) < 0.1 for c in range(3)):
                    out[y, x] = k
    return out


def antialiased_mask(size: int = 24, factor: int = 4) -> np.ndarray:
    """Blue background, a red disc and a grey band, drawn at 4x and box-downsampled."""
    n = size * factor
    yy, xx = np.mgrid[:n, :n] + 0.5
    big = np.broadcast_to(COLOUR["blue"], (n, n, 3)).astype(np.float64).copy()
    big[(yy - n * 0.4) ** 2 + (xx - n * 0.45) ** 2 < (n * 0.25) ** 2] = COLOUR["red"]
    big[(yy > n * 0.75) & (yy < n * 0.9)] = COLOUR["grey"]
    return big.reshape(size, factor, size, factor, 3).mean(axis=(1, 3)) / 255.0


def save(array: np.ndarray, path, palette=None):
    img = Image.fromarray(array)  # uint8 (H,W): L; uint16: I;16; (H,W,3): RGB
    if palette is not None:
        img.putpalette(palette)  # L becomes P, the values palette indices
    img.save(path)
    return path


def test_decode_antialiased_mask_against_oracle():
    rgb = antialiased_mask()
    labels = decode_colour_mask(rgb)
    np.testing.assert_array_equal(labels, decode_oracle(rgb))
    assert labels.dtype == np.int64
    assert set(np.unique(labels)) == {-1, INDEX["blue"], INDEX["red"], INDEX["grey"]}
    assert 0 < (labels == -1).mean() < 0.2  # the anti-aliased edges only
    as_u8 = (rgb * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(decode_colour_mask(as_u8), decode_oracle(as_u8 / 255.0))


def test_decode_every_paper_colour_and_tolerance_edges():
    colours = np.array([rgb for _, rgb in PAPER_PALETTE], dtype=np.uint8)[None]
    np.testing.assert_array_equal(decode_colour_mask(colours)[0], np.arange(9))
    # 230/255 is within 0.1 of 1, 229/255 is not; extra (alpha) channels are ignored.
    edge = np.array([[[230, 25, 0, 7], [229, 0, 0, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(decode_colour_mask(edge)[0], [INDEX["red"], -1])
    with pytest.raises(ValueError, match="H,W,3"):
        decode_colour_mask(np.zeros((4, 4)))


def test_read_rgb_colour_mask_and_resize(tmp_path):
    rgb = (antialiased_mask() * 255 + 0.5).astype(np.uint8)
    path = save(rgb, tmp_path / "mask.png")
    np.testing.assert_array_equal(read_mask(path, (24, 24)), decode_colour_mask(rgb))
    with pytest.warns(UserWarning, match="resized"):
        resized = read_mask(path, (37, 50))
    # Oracle: Pillow's nearest-neighbour resize of the decoded labels.
    decoded = Image.fromarray(decode_colour_mask(rgb).astype(np.int32) + 1, mode="I")
    expected = np.asarray(decoded.resize((50, 37), Image.Resampling.NEAREST)) - 1
    np.testing.assert_array_equal(resized, expected)


def test_read_label_maps(tmp_path):
    labels = np.zeros((20, 30), dtype=np.uint8)
    labels[:, 10:] = 1
    labels[5:15, 20:] = 7
    np.testing.assert_array_equal(read_mask(save(labels, tmp_path / "l.png"), (20, 30)), labels)
    # A palette label map (VOC-like colours): the palette index is the label.
    voc = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0, 0, 0, 128, 128, 0, 128, 0, 128, 128]
    voc += [128, 128, 128]
    path = save(labels, tmp_path / "p.png", palette=voc)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_mask(path, (20, 30)), labels)
    # 16-bit: raw values.
    wide = labels.astype(np.uint16) * 300
    path = save(wide, tmp_path / "i16.png")
    assert Image.open(path).mode.startswith("I")
    np.testing.assert_array_equal(read_mask(path, (20, 30)), wide.astype(np.int64))


def test_palette_png_with_paper_colours_is_a_colour_mask(tmp_path):
    indices = np.zeros((10, 10), dtype=np.uint8)
    indices[:, 5:] = 1
    palette = [*COLOUR["green"], *COLOUR["purple"]]
    path = save(indices, tmp_path / "p.png", palette=palette)
    expected = np.where(indices == 0, INDEX["green"], INDEX["purple"])
    np.testing.assert_array_equal(read_mask(path, (10, 10)), expected)


def test_grey_level_antialiased_colour_mask(tmp_path):
    # Like the paper's in8.png: black and white with anti-aliased grey levels between.
    big = np.zeros((80, 80))
    big[:, 37:] = 255.0
    grey = big.reshape(20, 4, 20, 4).mean(axis=(1, 3)).round().astype(np.uint8)
    assert len(np.unique(grey)) == 3
    labels = read_mask(save(grey, tmp_path / "g.png"), (20, 20))
    np.testing.assert_array_equal(labels, decode_colour_mask(np.repeat(grey[..., None], 3, 2)))
    assert set(np.unique(labels)) == {-1, INDEX["black"], INDEX["white"]}
    # Forced the other way, the grey values are the labels.
    forced = read_mask(tmp_path / "g.png", (20, 20), kind="labels")
    np.testing.assert_array_equal(forced, grey)


def test_no_mask_and_unrecognised_colours(tmp_path):
    np.testing.assert_array_equal(read_mask(None, (3, 4)), np.zeros((3, 4), dtype=np.int64))
    orange = np.broadcast_to(np.array([255, 140, 0], np.uint8), (8, 8, 3)).copy()
    with pytest.warns(UserWarning, match="one region"):
        labels = read_mask(save(orange, tmp_path / "o.png"), (8, 8))
    np.testing.assert_array_equal(labels, np.zeros((8, 8)))
    orange[:, :3] = COLOUR["red"]
    with pytest.warns(UserWarning, match="62% of the pixels"):
        labels = read_mask(save(orange, tmp_path / "o2.png"), (8, 8))
    assert (labels == -1).sum() == 40 and (labels == INDEX["red"]).sum() == 24


@pytest.mark.parametrize("content", [None, b"", b"not an image"])
def test_bad_mask_files_are_one_line(tmp_path, content):
    path = tmp_path / "mask.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=r"mask\.png") as info:
        read_mask(path, (4, 4))
    assert "\n" not in str(info.value)


def test_colour_image_forced_as_labels_is_an_input_error(tmp_path):
    path = save(np.zeros((4, 4, 3), np.uint8), tmp_path / "rgb.png")
    with pytest.raises(InputError, match=r"rgb\.png: a RGB image is a colour image"):
        read_mask(path, (4, 4), kind="labels")


def test_labels_to_masks_one_hot():
    labels = torch.tensor([[[0, 3, -1], [3, 3, 5]]])
    masks = one_hot_masks(labels, [0, 3, 5])
    assert masks.shape == (1, 3, 2, 3) and masks.dtype == torch.float32
    expected = torch.tensor(
        [[[1, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 0]], [[0, 0, 0], [0, 0, 1]]]
    )
    torch.testing.assert_close(masks[0], expected.float())
    assert masks[0, :, 0, 2].sum() == 0  # unlabelled: in no mask
    with pytest.raises(ValueError, match="B,H,W"):
        one_hot_masks(labels[0], [0])


def blur_oracle(m: np.ndarray) -> np.ndarray:
    """3x3 mean with zeros outside, divisor 9, on each (H,W) slice."""
    return ndimage.uniform_filter(m, size=(1, 1, 3, 3), mode="constant", cval=0.0)


def halve_oracle_1d(src: np.ndarray) -> np.ndarray:
    """torch7 image.c scaleLinear_rowcol (shrinking branch), transcribed loop for loop."""
    n = len(src)
    m = math.ceil(n / 2)
    if m == n:
        return src.copy()
    scale = n / m
    dst = np.zeros(m)
    si0_i, si0_f = 0, 0.0
    for di in range(m):
        si1_f = (di + 1) * scale
        si1_i = int(si1_f)
        si1_f -= si1_i
        acc = (1 - si0_f) * src[si0_i]
        count = 1 - si0_f
        for si in range(si0_i + 1, si1_i):
            acc += src[si]
            count += 1
        if si1_i < n:
            acc += si1_f * src[si1_i]
            count += si1_f
        dst[di] = acc / count
        si0_i, si0_f = si1_i, si1_f
    return dst


def halve_oracle(m: np.ndarray) -> np.ndarray:
    rows = np.apply_along_axis(halve_oracle_1d, 3, m)  # torch7 scales rows first
    return np.apply_along_axis(halve_oracle_1d, 2, rows)


def propagation_oracle(m: np.ndarray) -> dict[str, np.ndarray]:
    """The style and content layers' masks, the network written out by hand."""

    def blur(x, times):
        for _ in range(times):
            x = blur_oracle(x)
        return x

    out = {"relu1_1": blur(m, 1)}
    out["relu2_1"] = blur(halve_oracle(blur(out["relu1_1"], 1)), 1)  # conv1_2, pool1, conv2_1
    out["relu3_1"] = blur(halve_oracle(blur(out["relu2_1"], 1)), 1)  # conv2_2, pool2, conv3_1
    out["relu4_1"] = blur(halve_oracle(blur(out["relu3_1"], 3)), 1)  # conv3_2..3_4, pool3, 4_1
    out["relu4_2"] = blur(out["relu4_1"], 1)
    out["relu5_1"] = blur(halve_oracle(blur(out["relu4_2"], 2)), 1)  # conv4_3, 4_4, pool4, 5_1
    return out


@pytest.mark.parametrize("size", [(37, 29), (32, 48), (9, 1)])
def test_propagation_against_numpy(size):
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 3, size=(2, *size))
    masks = one_hot_masks(torch.from_numpy(labels), [0, 1, 2], dtype=torch.float64)
    layers = (*vgg.STYLE_LAYERS, vgg.CONTENT_LAYER)
    ours = propagate_masks(masks, layers)
    expected = propagation_oracle(masks.numpy())
    rtol, atol = DTYPE_TOLERANCES[torch.float64]
    assert set(ours) == set(layers)
    for name in layers:
        np.testing.assert_allclose(ours[name].numpy(), expected[name], rtol, atol, err_msg=name)


def test_propagated_shapes_match_vgg_features_on_odd_sizes():
    model = vgg.random_backbone(0)
    names = [name for name, _ in vgg.VGG19_LAYOUT]
    features = model(torch.rand(1, 3, 37, 29), names)
    masks = propagate_masks(torch.ones(1, 2, 37, 29), names)
    for name in names:
        assert masks[name].shape[-2:] == features[name].shape[-2:], name
    # A full mask stays 1 away from the zero-padded borders.
    assert torch.allclose(masks["relu5_1"][..., 1:-1, 1:-1], torch.ones(1))


def test_propagation_stops_at_deepest_layer_and_checks_names():
    out = propagate_masks(torch.ones(1, 1, 8, 8), ["relu1_1"])
    assert set(out) == {"relu1_1"}
    with pytest.raises(ValueError, match="VGG19_LAYOUT"):
        propagate_masks(torch.ones(1, 1, 8, 8), ["fc7"])


def test_remap_orphans_by_relation_colour_and_size():
    content = np.array([[0, 1, 2, 2], [0, 1, 2, -1]])
    style = np.array([[0, 0, 0, 1], [0, 0, 0, 1]])
    new, mapping = remap_orphans(content, style, relation={2: [9, 1]})
    assert mapping == {2: 1}
    np.testing.assert_array_equal(new, [[0, 1, 1, 1], [0, 1, 1, -1]])
    # By colour: the orphan is red, style label 1 is red, label 0 (larger) is blue.
    content_image = np.zeros((2, 4, 3))
    content_image[content == 2] = (0.9, 0.1, 0.1)
    style_image = np.zeros((2, 4, 3))
    style_image[style == 0] = (0.0, 0.0, 1.0)
    style_image[style == 1] = (1.0, 0.0, 0.0)
    _, mapping = remap_orphans(content, style, content_image, style_image)
    assert mapping == {2: 1}
    # Without images: the largest style region.
    new, mapping = remap_orphans(torch.from_numpy(content), style)
    assert mapping == {2: 0} and isinstance(new, torch.Tensor) and new[1, 3] == -1
    _, mapping = remap_orphans(style, style)
    assert mapping == {}
    with pytest.raises(ValueError, match="no labelled pixel"):
        remap_orphans(content, -np.ones((2, 2), dtype=np.int64))


def test_merge_small_region_into_longest_border():
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[:, 10:] = 1
    labels[8:12, 8:11] = 2  # 12 px: 3% of the image; borders 0 on 8 pairs, 1 on 4
    merged, mapping = merge_small_regions(labels, 0.05)
    assert mapping == {2: 0}
    expected = labels.copy()
    expected[labels == 2] = 0
    np.testing.assert_array_equal(merged, expected)
    unchanged, mapping = merge_small_regions(labels, 0.0)
    assert mapping == {} and np.array_equal(unchanged, labels)


def test_merge_across_unlabelled_edges_and_chains():
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[:, 12:] = 1
    labels[4:9, 3:8] = -1  # an anti-aliased ring around a 3x3 region
    labels[5:8, 4:7] = 3
    labels[14:16, 4:6] = 4  # 4 px, inside 5, itself small
    labels[13:17, 6:8] = 5  # 8 px, next to 4
    merged, mapping = merge_small_regions(labels, 0.05)
    assert mapping == {4: 0, 3: 0, 5: 0}
    assert (merged == -1).sum() == 16  # unlabelled pixels stay unlabelled
    assert set(np.unique(merged)) == {-1, 0, 1}
    single, mapping = merge_small_regions(np.full((4, 4), 7), 0.5)
    assert mapping == {} and (single == 7).all()


def test_apply_label_policy_report():
    content = np.zeros((20, 20), dtype=np.int64)
    content[:, 5:] = 4
    content[0, 0] = 6  # 0.25% of the image: merged when asked
    style = np.zeros((20, 20), dtype=np.int64)
    new_content, new_style, report = apply_label_policy(
        content, style, policy=LabelPolicy(min_fraction=0.01)
    )
    assert report == {"merged": {6: 0}, "orphans": {4: 0}, "label_ids": [0]}
    assert (new_content == 0).all() and (new_style == 0).all()


def test_nothing_merged_by_default():
    # The published code keeps every region, however small: so does the default policy.
    assert LabelPolicy().min_fraction == 0.0
    content = np.zeros((20, 20), dtype=np.int64)
    content[:, 10:] = 1
    content[0, 0] = 2  # one pixel
    style = content.T.copy()
    new_content, new_style, report = apply_label_policy(content, style)
    assert report == {"merged": {}, "orphans": {}, "label_ids": [0, 1, 2]}
    np.testing.assert_array_equal(new_content, content)
    np.testing.assert_array_equal(new_style, style)


def test_min_region_merges_a_label_into_the_same_target_in_both_images():
    content = np.zeros((20, 20), dtype=np.int64)
    content[:, 10:] = 1
    content[8:12, 7:10] = 2  # 3%: borders 0 on 10 pixel pairs, 1 on 4
    style = np.zeros((20, 20), dtype=np.int64)
    style[10:] = 1
    style[10:12, 4:6] = 2  # 1%: borders 1 on 6 pairs, 0 on 2; alone it would merge into 1
    _, mapping = merge_small_regions(style, 0.05)
    assert mapping == {2: 1}
    new_content, new_style, mapping = merge_small_regions_jointly(content, style, 0.05)
    assert mapping == {2: 0}  # 10 + 2 pairs with 0 against 4 + 6 with 1
    np.testing.assert_array_equal(new_content, np.where(content == 2, 0, content))
    np.testing.assert_array_equal(new_style, np.where(style == 2, 0, style))
    _, _, report = apply_label_policy(content, style, policy=LabelPolicy(min_fraction=0.05))
    assert report["merged"] == {2: 0} and report["orphans"] == {}


def test_joint_merge_takes_a_label_small_in_either_image():
    content = np.zeros((20, 20), dtype=np.int64)
    content[:, 10:] = 1  # 1 is half the content...
    style = np.zeros((20, 20), dtype=np.int64)
    style[0, :2] = 1  # ...but 0.5% of the style: its Gram there comes from two pixels
    new_content, new_style, mapping = merge_small_regions_jointly(content, style, 0.01)
    assert mapping == {1: 0}
    assert (new_content == 0).all() and (new_style == 0).all()
    # The last label left is never merged, and 0 merges nothing.
    assert merge_small_regions_jointly(content, style, 0.0)[2] == {}
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        merge_small_regions_jointly(content, style, 1.0)


def test_orphans_are_remapped_and_reported():
    from dpst.optim_reference.stylize import consistent_labels

    content = np.zeros((16, 16), dtype=np.int64)
    content[8:] = 3  # "water": the style has none
    style = np.zeros((16, 16), dtype=np.int64)
    style[:, 8:] = 5
    content_img = np.zeros((16, 16, 3), np.float32)
    content_img[8:] = [0.1, 0.2, 0.8]
    style_img = np.zeros((16, 16, 3), np.float32)
    style_img[:, 8:] = [0.2, 0.3, 0.9]  # label 5 is the nearest colour
    new_content, _, report = consistent_labels(
        content, style, content_img, style_img, LabelPolicy()
    )
    assert report == {"merged": {}, "orphans": {"3": 5}, "label_ids": [0, 5]}
    assert (new_content[8:] == 5).all() and (new_content[:8] == 0).all()
    with pytest.raises(ValueError, match="min-region"):
        consistent_labels(content, style, content_img, style_img, LabelPolicy(min_fraction=-0.1))


def test_transparent_pixels_of_a_mask_are_unlabelled(tmp_path):
    palette = dict(PAPER_PALETTE)
    rgba = np.zeros((8, 12, 4), dtype=np.uint8)
    rgba[..., :3] = palette["red"]
    rgba[..., 3] = 255
    rgba[:, 6:, :3] = palette["blue"]  # hidden under alpha 0: must not count as blue
    rgba[:, 6:, 3] = 0
    rgba[:2, :6, 3] = 100  # under half opacity: unlabelled too
    with pytest.warns(UserWarning, match="match none of the paper's mask colours"):
        labels = read_mask(save(rgba, tmp_path / "cut.png"), (8, 12))
    red = decode_colour_mask(np.array([[palette["red"]]], dtype=np.uint8))[0, 0]
    assert (labels[2:, :6] == red).all()
    assert (labels[:, 6:] == -1).all() and (labels[:2, :6] == -1).all()
