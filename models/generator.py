"""The feed-forward generator: a bilateral grid of affine colour maps (docs/METHOD.md section 4).

``G(content, style, content_masks, style_masks) -> output``, after Gharbi et al. (HDRNet,
SIGGRAPH 2017) and Xia et al. (ECCV 2020, joint bilateral learning for photorealistic style
transfer):

1. Low resolution (``working_size`` squared, aspect ignored as in HDRNet): a light learned
   encoder (one stride-2 conv per level) runs on content and style. At every level each
   content region takes the feature statistics of the same style region (masked AdaIN,
   :mod:`masked_adain`), and a "splat" path fuses the content and restyled features down to
   a ``grid_size`` squared map. A local and a global branch then predict a grid of 3x4 affine
   transforms: ``grid_size`` squared cells by ``luma_bins``.
2. Full resolution: a pointwise guide (a 1x1-conv curve on the content's colour) slices the
   grid trilinearly and each pixel's transform is applied to its own colour
   (:mod:`bilateral_grid`). The output is therefore affine in the content's colour wherever
   the sliced transform is constant, and exactly ``A(p) [I(p); 1]`` at every pixel p; it is
   clamped to [0, 1] (the only non-affine step; training penalises the values it cuts,
   see :func:`range_overshoot`, so that it rarely acts).

Inputs: images ``(B, 3, H, W)`` float in [0, 1], any size; masks ``(B, K, h, w)`` float in
[0, 1], K = ``max_labels``, any resolution with the image's aspect ratio (see
:mod:`label_masks`); zero masks or ``None`` mean "no segmentation". The network predicts a
residual on a base grid (``GeneratorConfig.base``): with ``"mkl"`` (the default) each cell
holds the mix of its labels' linear Monge-Kantorovich colour maps (:mod:`colour_transfer`),
so the untrained generator is the per-segment classical colour transfer; with ``"identity"``
it is close to the content. The residual starts as a small perturbation.

Label-exact base (``GeneratorConfig.label_exact``, the default for new models): the labels'
maps are not mixed into the grid's cells but applied at every full-resolution pixel from the
label weights there (:mod:`label_maps`); the grid then holds the residual alone. A cell 1/16 of
the image wide otherwise gives a sky the colour of the roof it shares cells with.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dpst.constants import LUMA_REC601
from dpst.errors import InputError
from dpst.image_checks import check_image_batch
from dpst.models.bilateral_grid import (
    SLICE_METHODS,
    identity_grid,
    slice_and_apply,
    slice_and_apply_at,
)
from dpst.models.colour_transfer import (
    COVARIANCE_EPS,
    STYLE_COVARIANCE_EPS,
    maps_to_grid,
    masked_colour_stats,
    mkl_maps,
    splat_weights,
)
from dpst.models.label_maps import (
    apply_label_maps,
    feather_weights,
    lattice_guide,
    sample_weights,
    upsample_weights,
)
from dpst.models.label_masks import masks_for_image
from dpst.models.masked_adain import assignment_weights, masked_adain, masked_mean_std
from dpst.optim_reference.affine import NUM_COEFFS

# Images and masks may exceed [0, 1] by this much from float round-off.
RANGE_SLACK = 1e-4
# Masks may disagree with the image's aspect ratio by this fraction (plus one pixel).
ASPECT_SLACK = 0.02
# Zero padding makes the border cells' features differ from the interior's, and the grid
# learns a vignette from it: on two training pairs at 128 px it carried most of the output's
# photorealism energy (a frame along the border; 3.9-4.4 vs 0.06-0.29 with replicate padding
# after 15 Adam steps). Replicate padding extends the image's own border colours instead.
# On the shared examples (1000 steps, all else equal) the held-out J(G)/J(opt) was 1.30 with
# replicate and 1.64 with zero padding (README, "Fidelity on the paper's examples").
PADDING_MODES = ("replicate", "zeros")
LEGACY_PADDING = "zeros"
# What the predicted grid is a residual of: the identity, or the per-segment linear
# Monge-Kantorovich colour transfer (:mod:`colour_transfer`), the classical baseline, so that
# the untrained network already matches it and training adds what statistics miss.
BASES = ("mkl", "identity")
SPLAT_STRIDE = 2
LEGACY_BASE = "identity"
# Models trained before label-exact rendering mixed the labels' maps inside grid cells.
LEGACY_LABEL_EXACT = False
# ... and added COVARIANCE_EPS to the style's covariance as to the content's.
LEGACY_STYLE_EPS = COVARIANCE_EPS
# Whole-image statistics mixed into each label's, as a pseudo-count in pixels per pixel of the
# working image: a label of 0.3% of it is half its own statistics. Measured on the paper's 39
# readable pairs at 256 px (the bundled model's maps applied per pixel without its residual,
# style eps 1e-3, feathered everywhere; mean CIEDE2000 to the paper's results): 0.01 10.86,
# 0.003 10.83, 0.001 10.85, 1e-4 10.86. 0.01 was the default of models trained before this
# (their checkpoints keep it).
STAT_PRIOR = 0.003


@dataclass(frozen=True)
class GeneratorConfig:
    """Every size that defines the network; stored in each checkpoint to rebuild it."""

    working_size: int = 256  # side of the low-resolution square both images are resized to
    grid_size: int = 16  # spatial cells per side; working_size / 2**len(encoder_widths)
    luma_bins: int = 8  # luminance bins of the grid
    max_labels: int = 16  # mask channels K
    encoder_widths: tuple[int, ...] = (16, 32, 64, 128)  # one stride-2 level each
    head_width: int = 64
    global_levels: int = 2  # stride-2 convs before pooling in the global branch
    guide_hidden: int = 8  # channels of the full-resolution guide curve (>= 3)
    # Pseudo-count of global statistics, as a fraction of pixels (see STAT_PRIOR).
    stat_prior: float = STAT_PRIOR
    init_scale: float = 0.01  # size of the initial departure from the identity
    padding: str = "replicate"  # conv padding: "replicate" or "zeros" (see PADDING_MODES)
    base: str = "mkl"  # the grid the network's residual is added to (see BASES)
    # With base "mkl": the labels' maps applied per pixel (label_maps), not mixed in the grid.
    label_exact: bool = True
    # Added to the style's colour covariance in the MKL maps (colour_transfer.mkl_maps).
    style_eps: float = STYLE_COVARIANCE_EPS

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder_widths", tuple(int(w) for w in self.encoder_widths))
        expected = self.grid_size * 2 ** len(self.encoder_widths)
        if self.working_size != expected:
            raise ValueError(
                f"working_size must be grid_size * 2**len(encoder_widths) = {expected}, "
                f"got {self.working_size}"
            )
        if self.grid_size < 2 or self.luma_bins < 2 or self.max_labels < 1:
            raise ValueError("need grid_size >= 2, luma_bins >= 2 and max_labels >= 1")
        if self.guide_hidden < 3 or self.stat_prior <= 0 or self.global_levels < 0:
            raise ValueError("need guide_hidden >= 3, stat_prior > 0 and global_levels >= 0")
        if self.style_eps <= 0:
            raise ValueError(f"style_eps must be > 0, got {self.style_eps}")
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        if self.padding not in PADDING_MODES:
            raise ValueError(f"padding must be one of {PADDING_MODES}, got {self.padding!r}")
        if self.grid_size < 2**self.global_levels:
            raise ValueError(f"global_levels={self.global_levels} too many for the grid size")

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), loadable with ``torch.load(weights_only=True)``."""
        out = dataclasses.asdict(self)
        out["encoder_widths"] = list(self.encoder_widths)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GeneratorConfig:
        """Inverse of :meth:`to_dict`; raises ValueError on unknown or invalid fields."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown generator config fields {unknown}")
        # Checkpoints written before these fields existed were trained with zero padding on
        # an identity base.
        legacy = {
            "padding": LEGACY_PADDING,
            "base": LEGACY_BASE,
            "label_exact": LEGACY_LABEL_EXACT,
            "style_eps": LEGACY_STYLE_EPS,
        }
        return cls(**{**legacy, **values})

    @property
    def per_pixel_base(self) -> bool:
        """Whether the labels' maps are applied per pixel (the grid then holds a residual)."""
        return self.base == "mkl" and self.label_exact


class Rendered(NamedTuple):
    """One forward pass as training sees it (``Generator.forward(..., return_details=True)``)."""

    output: torch.Tensor  # (B, 3, H, W) in [0, 1]; straight-through clamped in training mode
    grid: torch.Tensor  # (B, 12, luma_bins, grid_size, grid_size)
    overshoot: torch.Tensor  # (B,) range_overshoot of the output before the clamp


class Prediction(NamedTuple):
    """What the low-resolution pass predicts for a content: everything :meth:`Generator.render`
    needs besides the full-resolution content.

    ``grid`` ``(B, 12, D, G, G)``; ``label_maps`` ``(B, K + 1, 3, 4)``, each label's affine map
    applied per pixel with the weights of :meth:`Generator.label_weights` (all zeros for a model
    whose grid holds the whole map: see ``GeneratorConfig.label_exact``).
    """

    grid: torch.Tensor
    label_maps: torch.Tensor


class StyleCode(NamedTuple):
    """A cached style encoding: per-label statistics of the style photo.

    ``mean`` and ``std`` are ``(B, K + 1, sum(encoder_widths))``, of every encoder level's
    features; ``colour_mean`` ``(B, K + 1, 3)`` and ``colour_cov`` ``(B, K + 1, 3, 3)`` are of
    its RGB colours (the MKL base). Label index K is the whole style image.
    """

    mean: torch.Tensor
    std: torch.Tensor
    colour_mean: torch.Tensor
    colour_cov: torch.Tensor


def _conv(
    cin: int, cout: int, stride: int = 1, kernel: int = 3, padding: str = "zeros"
) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, padding_mode=padding)


def _exporting() -> bool:
    # Input checks read tensor values, which a traced or exported graph cannot do.
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class Generator(nn.Module):
    """The segmentation-conditioned bilateral-grid generator; see the module docstring.

    ``slice_method`` ("grid_sample" or "gather") only chooses an implementation of the same
    maths: grid_sample is faster in PyTorch, gather in ONNX Runtime, so set it to "gather"
    before exporting. The export needs opset 18 (antialiased Resize); mask inputs are then
    required (zeros for "no segmentation"), and input checks are skipped while tracing.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        self.slice_method = "grid_sample"
        widths, pad = config.encoder_widths, config.padding
        ins = (3, *widths[:-1])
        self.encoder = nn.ModuleList(
            _conv(cin, cout, 2, padding=pad) for cin, cout in zip(ins, widths, strict=True)
        )
        self.splat_down = nn.ModuleList(
            _conv(cin, cout, 2, padding=pad) for cin, cout in zip(ins, widths, strict=True)
        )
        self.splat_fuse = nn.ModuleList(_conv(2 * w, w, kernel=1) for w in widths)
        head = config.head_width
        self.local = nn.Sequential(
            _conv(widths[-1], head, padding=pad), nn.ReLU(), _conv(head, head, padding=pad)
        )
        global_convs: list[nn.Module] = []
        cin = widths[-1]
        for _ in range(config.global_levels):
            global_convs += [_conv(cin, head, 2, padding=pad), nn.ReLU()]
            cin = head
        self.global_convs = nn.Sequential(*global_convs)
        self.global_fc = nn.Sequential(nn.Linear(cin, head), nn.ReLU(), nn.Linear(head, head))
        self.to_grid = _conv(head, NUM_COEFFS * config.luma_bins, kernel=1)
        self.guide_curve = _conv(3, config.guide_hidden, kernel=1)
        self.guide_mix = _conv(config.guide_hidden, 1, kernel=1)
        self._init_near_identity()

    def _init_near_identity(self) -> None:
        scale = self.config.init_scale
        nn.init.normal_(self.to_grid.weight, std=scale / math.sqrt(self.config.head_width))
        nn.init.zeros_(self.to_grid.bias)
        # The guide curve's first three channels pass the colour through (the content is
        # >= 0, so the ReLU keeps it) and the mix starts as luminance; the rest start small.
        with torch.no_grad():
            self.guide_curve.weight[:3].copy_(torch.eye(3).view(3, 3, 1, 1))
            self.guide_curve.bias[:3].zero_()
            nn.init.normal_(self.guide_mix.weight, std=scale / math.sqrt(self.config.guide_hidden))
            # The guide starts as the pixel's luminance.
            self.guide_mix.weight[0, :3, 0, 0] = torch.tensor(LUMA_REC601)
            self.guide_mix.bias.zero_()

    # ----- inputs -----------------------------------------------------------------------

    def _check_image(self, name: str, image: torch.Tensor) -> None:
        check_image_batch(image, name, unit_range=True, slack=RANGE_SLACK)

    def _masks_or_zeros(
        self, name: str, masks: torch.Tensor | None, image: torch.Tensor
    ) -> torch.Tensor:
        k = self.config.max_labels
        if masks is None:
            return image.new_zeros(image.shape[0], k, 1, 1)
        if _exporting():
            return masks
        if not isinstance(masks, torch.Tensor) or masks.dim() != 4:
            got = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise InputError(f"{name} must be a (B, {k}, h, w) float tensor, got {got}")
        if masks.shape[0] != image.shape[0] or masks.shape[1] != k:
            raise InputError(
                f"{name} must be (B={image.shape[0]}, K={k}, h, w) for this model "
                f"(max_labels={k}), got {tuple(masks.shape)}"
            )
        if not masks.dtype.is_floating_point or min(masks.shape) < 1:
            raise InputError(f"{name} must be a non-empty float tensor, got {masks.dtype}")
        low, high = (float(v) for v in torch.aminmax(masks))
        if not (low >= -RANGE_SLACK and high <= 1 + RANGE_SLACK):
            raise InputError(f"{name} values must be finite and in [0, 1], got [{low}, {high}]")
        (height, width), (mh, mw) = image.shape[2:], masks.shape[2:]
        if abs(mh - height * mw / width) > 1 + ASPECT_SLACK * mh:
            raise InputError(
                f"{name} is {mh}x{mw} (h x w) but the image is {height}x{width}: the masks "
                f"must cover the image with the same aspect ratio"
            )
        return masks.to(image.dtype)

    def masks_from_labels(
        self, labels: torch.Tensor, image: torch.Tensor, name: str = "label map"
    ) -> torch.Tensor:
        """This model's mask input for an integer label map ``(B, H, W)`` of ``image``.

        Raises InputError if the map's size differs from the image's or a label is outside
        ``[-1, max_labels)``; see :func:`label_masks.masks_for_image`.
        """
        return masks_for_image(
            labels, image, self.config.max_labels, self.config.working_size, name=name
        )

    def _to_working(self, image: torch.Tensor, masks: torch.Tensor) -> tuple:
        size = (self.config.working_size,) * 2
        # Antialiased, so that the low-resolution path sees the same picture at any input
        # size (plain bilinear would alias a 4K image to a few sampled pixels per cell).
        image = F.interpolate(image, size=size, mode="bilinear", antialias=True)
        masks = F.interpolate(masks, size=size, mode="bilinear", antialias=True)
        return image, masks.clamp(0, 1)

    # ----- low resolution ---------------------------------------------------------------

    def _encode(self, image: torch.Tensor, masks: torch.Tensor) -> list[tuple]:
        """(features, masks) at every encoder level."""
        levels = []
        x = image - 0.5
        for conv in self.encoder:
            x = F.relu(conv(x))
            masks = F.avg_pool2d(masks, 2)
            levels.append((x, masks))
        return levels

    def _prior_mass(self, features: torch.Tensor) -> float:
        return self.config.stat_prior * features.shape[2] * features.shape[3]

    def encode_style(self, style: torch.Tensor, style_masks: torch.Tensor | None = None):
        """Per-label statistics of the style photo, reusable for any content: a StyleCode."""
        if not _exporting():
            self._check_image("style", style)
        return self._encode_style(style, style_masks)

    def _encode_style(self, style: torch.Tensor, style_masks: torch.Tensor | None) -> StyleCode:
        style_masks = self._masks_or_zeros("style_masks", style_masks, style)
        style, style_masks = self._to_working(style, style_masks)
        stats = [
            masked_mean_std(f, m, self._prior_mass(f)) for f, m in self._encode(style, style_masks)
        ]
        # Colour statistics and the MKL maps stay float32 in a float16 model: covariances of
        # about 1e-3 and 25 Newton-Schulz iterations lose too much in float16.
        wide = torch.promote_types(style.dtype, torch.float32)
        colour = masked_colour_stats(style.to(wide), style_masks.to(wide), self._prior_mass(style))
        return StyleCode(
            torch.cat([s[0] for s in stats], 2), torch.cat([s[1] for s in stats], 2), *colour
        )

    def _check_style_code(self, code: StyleCode, batch: int) -> None:
        labels = self.config.max_labels + 1
        features = (batch, labels, sum(self.config.encoder_widths))
        shapes = (features, features, (batch, labels, 3), (batch, labels, 3, 3))
        for name, tensor, expected in zip(StyleCode._fields, code, shapes, strict=True):
            if tuple(tensor.shape) != expected:
                raise InputError(
                    f"style code {name} must be {expected} for this model and batch, "
                    f"got {tuple(tensor.shape)}"
                )

    def predict(
        self, content: torch.Tensor, content_masks: torch.Tensor | None, style_code: StyleCode
    ) -> Prediction:
        """The grid and the labels' maps for this content (a :class:`Prediction`)."""
        content_masks = self._masks_or_zeros("content_masks", content_masks, content)
        content, content_masks = self._to_working(content, content_masks)
        x = content - 0.5
        offset = 0
        for level, (feats, masks) in enumerate(self._encode(content, content_masks)):
            width = feats.shape[1]
            style_stats = tuple(s[:, :, offset : offset + width] for s in style_code[:2])
            offset += width
            content_stats = masked_mean_std(feats, masks, self._prior_mass(feats))
            restyled = masked_adain(feats, assignment_weights(masks), content_stats, style_stats)
            fused = self.splat_fuse[level](torch.cat([feats, restyled], dim=1))
            x = F.relu(self.splat_down[level](x) + fused)
        local = self.local(x)
        pooled = self.global_convs(x).mean(dim=(2, 3))
        features = F.relu(local + self.global_fc(pooled)[:, :, None, None])
        cfg = self.config
        shape = (x.shape[0], NUM_COEFFS, cfg.luma_bins, cfg.grid_size, cfg.grid_size)
        residual = self.to_grid(features).view(shape)
        if cfg.base == "identity":
            base = identity_grid(*shape[2:], dtype=content.dtype, device=content.device)
            no_maps = residual.new_zeros(shape[0], cfg.max_labels + 1, 3, 4)
            return Prediction(residual + base, no_maps)
        maps = self._mkl_maps(content, content_masks, style_code)
        if cfg.label_exact:
            return Prediction(residual, maps.to(residual.dtype))
        grid = residual + self._splatted_maps(content, content_masks, maps)
        return Prediction(grid, torch.zeros_like(maps, dtype=residual.dtype))

    def predict_grid(
        self, content: torch.Tensor, content_masks: torch.Tensor | None, style_code: StyleCode
    ) -> torch.Tensor:
        """The bilateral grid ``(B, 12, luma_bins, grid_size, grid_size)`` for this content:
        for a label-exact model the residual on top of the per-pixel maps (:meth:`predict`)."""
        return self.predict(content, content_masks, style_code).grid

    def _mkl_maps(
        self, content: torch.Tensor, content_masks: torch.Tensor, style_code: StyleCode
    ) -> torch.Tensor:
        """Each label's MKL colour map ``(B, K + 1, 3, 4)`` from the working-size content and
        masks (float32 or wider: see _encode_style)."""
        wide = torch.promote_types(content.dtype, torch.float32)
        content, content_masks = content.to(wide), content_masks.to(wide)
        colour_mean, colour_cov = masked_colour_stats(
            content, content_masks, self._prior_mass(content)
        )
        style_mean, style_cov = style_code.colour_mean.to(wide), style_code.colour_cov.to(wide)
        return mkl_maps(
            colour_mean, colour_cov, style_mean, style_cov, style_eps=self.config.style_eps
        )

    def _splatted_maps(
        self, content: torch.Tensor, content_masks: torch.Tensor, maps: torch.Tensor
    ) -> torch.Tensor:
        """The labels' maps mixed into a grid ``(B, 12, D, G, G)``: each cell and luminance bin
        the mix of the labels whose pixels fall there (:func:`colour_transfer.splat_weights`);
        the base of models that are not label-exact."""
        cfg = self.config
        dtype = content.dtype
        guide = self.guide(content).detach().to(maps.dtype).clamp(0, 1)
        content_masks = content_masks.to(maps.dtype)
        # Splatted at half the working size (a quarter of the memory, the cost of the whole
        # base), and with the guide as a constant: the base is a fixed starting point.
        weights = F.avg_pool2d(assignment_weights(content_masks), SPLAT_STRIDE)
        guide = F.avg_pool2d(guide, SPLAT_STRIDE)
        cell = cfg.working_size // cfg.grid_size // SPLAT_STRIDE
        grid = maps_to_grid(maps, splat_weights(weights, guide, cfg.luma_bins, cell))
        return grid.to(dtype)

    # ----- full resolution --------------------------------------------------------------

    def guide(self, content: torch.Tensor) -> torch.Tensor:
        """The pointwise guide ``(B, 1, H, W)`` that addresses the grid's luminance bins."""
        return self.guide_mix(F.relu(self.guide_curve(content), inplace=True))

    @staticmethod
    def label_weights(content_masks: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """How much each pixel follows each label's map, ``(B, K + 1, h, w)`` at the masks'
        own resolution (:func:`masked_adain.assignment_weights`; the last label is the whole
        image's, which unlabelled pixels follow), feathered along the content's edges
        (:func:`label_maps.feather_weights`). :meth:`render` reads them bilinearly."""
        weights = assignment_weights(content_masks.clamp(0, 1))
        guide = lattice_guide(content, tuple(weights.shape[2:])).to(weights.dtype)
        return feather_weights(weights, guide)

    def render(
        self,
        content: torch.Tensor,
        grid: torch.Tensor,
        label_maps: torch.Tensor | None = None,
        label_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply a grid's transforms (and, given both, the labels' maps weighted per pixel by
        ``label_weights`` ``(B, L, h, w)``) to the full-resolution content; clamped to [0, 1]."""
        return self._clamp(self._render_unclamped(content, grid, label_maps, label_weights))

    def _render_unclamped(self, content, grid, label_maps=None, label_weights=None):
        if self.slice_method not in SLICE_METHODS:
            raise ValueError(f"slice_method must be one of {SLICE_METHODS}")
        out = slice_and_apply(grid, self.guide(content), content, self.slice_method)
        if label_maps is None or label_weights is None:
            return out
        weights = upsample_weights(label_weights.to(content.dtype), *content.shape[2:])
        return out + apply_label_maps(weights, label_maps.to(content.dtype), content)

    def render_tile(
        self,
        content: torch.Tensor,
        grid: torch.Tensor,
        y_pos: torch.Tensor,
        x_pos: torch.Tensor,
        label_maps: torch.Tensor | None = None,
        label_weights: torch.Tensor | None = None,
        label_y: torch.Tensor | None = None,
        label_x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:meth:`render` on a tile of a larger content whose rows and columns sit at grid
        coordinates ``y_pos`` ``(h,)`` and ``x_pos`` ``(w,)``, and at ``label_y``, ``label_x``
        on the label weights' lattice (both :func:`bilateral_grid.cell_positions`); tiles put
        together equal :meth:`render`."""
        out = slice_and_apply_at(grid, self.guide(content), content, y_pos, x_pos)
        if label_maps is not None:
            weights = sample_weights(label_weights.to(content.dtype), label_y, label_x)
            out = out + apply_label_maps(weights, label_maps.to(content.dtype), content)
        return self._clamp(out)

    def _clamp(self, out: torch.Tensor) -> torch.Tensor:
        if self.training and out.requires_grad:
            # Straight-through clamp: the clamped value forward (exactly: x - x is 0), the
            # identity backward. A hard clamp's zero gradient outside [0, 1] lets an early
            # overshoot turn the whole output black for good (measured: every gradient 0
            # after 20 Adam steps at lr 1e-3 when fitting a dark target).
            return out.detach().clamp(0, 1) + (out - out.detach())
        return out.clamp_(0, 1)  # in place: ``out`` is a fresh full-resolution tensor

    def stylize(
        self,
        content: torch.Tensor,
        content_masks: torch.Tensor | None,
        style_code: StyleCode,
    ) -> torch.Tensor:
        """Stylise content with a cached :meth:`encode_style` result: ``(B, 3, H, W)`` in [0, 1]."""
        if not _exporting():
            self._check_image("content", content)
            self._check_style_code(style_code, content.shape[0])
        return self._stylize(content, content_masks, style_code)

    def _stylize(
        self, content: torch.Tensor, content_masks: torch.Tensor | None, style_code: StyleCode
    ) -> torch.Tensor:
        return self._clamp(self._predict_and_render(content, content_masks, style_code)[0])

    def _predict_and_render(self, content, content_masks, style_code):
        """(unclamped output, prediction)."""
        prediction = self.predict(content, content_masks, style_code)
        if not self.config.per_pixel_base:  # the grid holds the whole map
            return self._render_unclamped(content, prediction.grid), prediction
        masks = self._masks_or_zeros("content_masks", content_masks, content)
        weights = self.label_weights(masks, content)
        raw = self._render_unclamped(content, prediction.grid, prediction.label_maps, weights)
        return raw, prediction

    def forward(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        content_masks: torch.Tensor | None = None,
        style_masks: torch.Tensor | None = None,
        return_details: bool = False,
    ) -> torch.Tensor | Rendered:
        """``(B, 3, H, W)`` content and ``(B, 3, Hs, Ws)`` style in [0, 1] -> output in [0, 1].

        With ``return_details``, a :class:`Rendered` (output, grid, overshoot): training
        regularises the grid and the output's range, and must reach them through ``forward``
        (DistributedDataParallel synchronises only what forward runs).
        """
        if not _exporting():
            self._check_image("content", content)
            self._check_image("style", style)
            if style.shape[0] != content.shape[0]:
                raise InputError(
                    f"content and style batch sizes differ: {content.shape[0]} vs {style.shape[0]}"
                )
        code = self._encode_style(style, style_masks)
        raw, prediction = self._predict_and_render(content, content_masks, code)
        if not return_details:
            return self._clamp(raw)
        overshoot = range_overshoot(raw)
        return Rendered(self._clamp(raw), prediction.grid, overshoot)


def range_overshoot(image: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean squared distance of ``image`` ``(B, C, H, W)`` from the range [0, 1].

    Zero when every value is in range. Its gradient, ``2 (x - clamp(x, 0, 1)) / n``, pulls
    only the values outside back.
    """
    return (image - image.clamp(0, 1)).square().flatten(1).mean(1)
