"""The one pass, composed once: a photo and a style photo or a look, with regions from any
source, in; the 8-bit result and its report out.

``dpst fast`` (one photo or a folder), ``dpst look export``, ``dpst demo`` and the web demo's
Fast mode call :func:`run_pair` or :func:`run_look`, so the same photos, masks and strength
give the same pixels wherever they are run; ``dpst video`` takes its style code from
:func:`style_code`. The label policy runs here, once, whatever found the regions
(:class:`~dpst.labels.regions.Regions`); :class:`OnePassConfig` is what every front end's
flags become (:func:`dpst.commands.resolve.one_pass_config`). Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from dpst.constants import DEFAULT_STRENGTH
from dpst.labels.one_pass import prepare_one_pass
from dpst.labels.policy import LabelPolicy
from dpst.labels.regions import FROM_MASK_FILES, ONE_REGION, Regions, one_region
from dpst.serve.runtime.looks import REGION_SOURCES, Look, apply_look, check_model
from dpst.serve.runtime.strength import check_strength
from dpst.serve.runtime.threads import check_threads


@dataclass(frozen=True)
class OnePassConfig:
    """How the one pass runs, whatever the front end: how much of the look (0 the content, 1
    the model's look, up to 2) and ONNX Runtime's threads (None: the cores)."""

    strength: float = DEFAULT_STRENGTH
    threads: int | None = None

    def checked(self) -> OnePassConfig:
        """This config with its values checked (one-line InputErrors naming the flag)."""
        strength = check_strength(self.strength, "--strength")
        return OnePassConfig(strength, check_threads(self.threads))


class OnePassResult(NamedTuple):
    """The result ``(H, W, 3)`` at the content's size (uint8 unless asked), and a JSON-ready
    report:
    ``regions`` (the names of the regions the model used, ``[]`` for one region),
    ``region_source`` (mask files, painted masks, segmenter, weight-free, one region) and, with
    regions, the policy's ``merged``, ``orphans`` and ``label_ids``."""

    image: np.ndarray
    report: dict[str, Any]


def _region_report(regions: Regions, prepared: dict | None) -> dict[str, Any]:
    if prepared is None:
        return {"regions": [], "region_source": regions.source}
    used = [regions.name_of(label) for label in prepared["label_ids"]]
    return {"regions": used, "region_source": regions.source, **prepared}


def run_pair(
    stylizer,
    content: np.ndarray,
    style: np.ndarray,
    regions: Regions | None = None,
    strength: float = DEFAULT_STRENGTH,
    policy: LabelPolicy | None = None,
    dtype: Any = np.uint8,
) -> OnePassResult:
    """``content`` in the look of ``style``, region by region.

    Args:
        stylizer: a :class:`~dpst.serve.runtime.stylizer.FastStylizer` (or anything with its
            ``stylize`` and ``max_labels``).
        content, style: ``(H, W, 3)`` uint8 (or float in [0, 1]); the content is never made
            float whole (the label policy reads copies of at most 512 px).
        regions: label maps as found (any ids); None or one region: the whole photo.
        strength: how much of the look, in [0, 2].
        policy: the label policy (default: the paper's, no merging).
        dtype: ``np.uint8`` (default: a quarter of the memory of a large result) or
            ``np.float32`` in [0, 1] (a LUT is fitted to the unrounded result).
    """
    regions = regions or one_region()
    content_labels = style_labels = prepared = None
    if not regions.one_region:
        content_labels, style_labels, prepared = prepare_one_pass(
            regions.content, regions.style, content, style, stylizer.max_labels, policy,
            regions.relation,
        )  # fmt: skip
    image = stylizer.stylize(
        content, style, content_labels, style_labels, dtype=dtype, strength=strength
    )
    return OnePassResult(image, _region_report(regions, prepared))


def run_look(
    stylizer,
    look: Look,
    content: np.ndarray,
    content_labels: np.ndarray | None = None,
    name: str = "the look",
    strength: float = DEFAULT_STRENGTH,
    relation: dict[int, tuple[int, ...]] | None = None,
    dtype: Any = np.uint8,
    names: tuple[str, ...] | None = None,
) -> OnePassResult:
    """``content`` (``(H, W, 3)`` uint8 or float) in a saved ``look``: with
    ``content_labels`` (as read or segmented, any ids; ``relation`` for segmenter groups)
    per the look's regions, else one region; ``dtype`` as :func:`run_pair`'s. ``names``: the
    names the report gives the regions (the weight-free pair's,
    :meth:`~dpst.labels.finder.Finder.names_with_look`), by default the look's."""
    image = apply_look(
        stylizer, look, content, content_labels, name, dtype, strength, relation=relation
    )
    if content_labels is None or look.label_ids is None:
        return OnePassResult(image, {"regions": [], "region_source": ONE_REGION})
    names = names or look.label_names or tuple(f"label {i}" for i in look.label_ids)
    source = REGION_SOURCES.get(look.label_source, FROM_MASK_FILES)
    return OnePassResult(image, {"regions": list(names), "region_source": source})


def style_code(stylizer, style: np.ndarray | None = None, look: Look | None = None,
               name: str = "the look") -> tuple[np.ndarray, ...]:  # fmt: skip
    """The style code a pass runs on, one region: a saved ``look``'s (refused in one line when
    it is another model's) or the ``style`` photo's. ``dpst video`` renders every frame with
    it (a clip has no regions; its grid is smoothed over time between frames)."""
    if look is not None:
        check_model(look, stylizer, name)
        return look.code
    return stylizer.encode_style(style)
