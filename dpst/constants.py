"""Numbers every package shares, each written once (no torch, no NumPy: plain tuples).

Modules import these by name; a value that appears in two files is a value that can drift.
"""

from __future__ import annotations

# The label of a pixel that belongs to no region: the anti-aliased edges of colour masks,
# unpainted strokes' rims, unknown colours. Excluded from every mask.
UNLABELLED = -1

# Caffe VGG preprocessing (the network the paper used): BGR, 0-255, this mean pixel
# subtracted, in BGR order. The published Lua code multiplied by 256, not 255; we follow
# docs/METHOD.md (255; section 2.10).
CAFFE_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)
CAFFE_PIXEL_SCALE = 255.0

# torchvision's ImageNet preprocessing (and SegformerImageProcessor's defaults): RGB in
# [0, 1], normalised per channel.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Luma weights of R, G, B. ITU-R BT.601 for photos (what SSIM on luminance and the
# generator's guide use); BT.709 for the looks, which are sRGB/Rec.709 encoded.
LUMA_REC601: tuple[float, float, float] = (0.299, 0.587, 0.114)
LUMA_REC709: tuple[float, float, float] = (0.2126, 0.7152, 0.0722)
# Label weights' guided-filter feathering (dpst.models.label_maps and its NumPy twin in
# dpst.serve.runtime.render_plan): the radius in cells of the weights' lattice, and the
# regulariser (luma variance below it is smoothed over).
FEATHER_RADIUS = 8
FEATHER_EPS = 1e-3
# The feathering acts only near the masks' borders: fully where the main label of a
# (2 FEATHER_BAND + 1)-cell window holds at most 1 - 1 / FEATHER_BAND_GAIN of it, not at all
# where it holds the whole window (dpst.models.label_maps.feather_weights says why).
FEATHER_BAND = 4
FEATHER_BAND_GAIN = 4.0

# How much of a one-pass look is applied (dpst fast, video, look export, the demo): 0 gives
# the content, 1 the model's full transfer, up to 2 exaggerates (Lightroom's "Amount", 0-200%).
STRENGTH_MIN = 0.0
STRENGTH_MAX = 2.0
DEFAULT_STRENGTH = 1.0

# The smooth-local-affine post-filter (docs/METHOD.md 2.9): the published final-results
# settings (bilateral radius in pixels, range sigma on colours in [0, 1], the fit's ridge),
# the fast mode's radius on its subsampled maps, and the range sigma (wider: a full-resolution
# pixel meets a working pixel's mean colour) and floor of the joint bilateral upsampling to
# full resolution. dpst.optim_reference.postfilter (torch) and its NumPy twin
# dpst.serve.runtime.post_filter share them.
POSTFILTER_RADIUS = 15
POSTFILTER_EDGE = 0.01
POSTFILTER_RIDGE = 1e-3
POSTFILTER_FAST_RADIUS = 7
POSTFILTER_UPSAMPLE_EDGE = 0.05
POSTFILTER_UPSAMPLE_FLOOR = 1e-3
# Bilateral log-weights are raised to at least this: exp(-50) ~ 2e-22 of the centre weight,
# far below float64 tolerances, where float32 exp would give subnormal numbers, which make
# every later operation several times slower.
POSTFILTER_LOG_WEIGHT_FLOOR = -50.0
