"""The regions of a pair as found, before the label policy: one value for every mask source.

A front end finds regions (mask files, painted masks, the segmenter, or none) and hands them to
the one pass (:mod:`dpst.serve.runtime.pipeline`) as :class:`Regions`; the label policy then
runs once there, whatever the source. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

# Where a pair's regions come from, as reports name them.
FROM_MASK_FILES = "mask files"
FROM_PAINTED = "painted masks"
FROM_SEGMENTER = "segmenter"
ONE_REGION = "one region"
FROM_WEIGHT_FREE = "weight-free"


class Regions(NamedTuple):
    """Label maps ``(H, W)`` at each photo's size (any integer ids, -1 unlabelled), or
    ``None`` for both: one region.

    ``names`` gives a label id its name where the source has names (segmenter groups, palette
    colours); ``relation`` is the segmenter's group relation (an orphan content group goes to
    a related style group before the closest colour), or None.
    """

    content: np.ndarray | None
    style: np.ndarray | None
    source: str
    names: Mapping[int, str] | None = None
    relation: Mapping[int, Sequence[int]] | None = None

    @property
    def one_region(self) -> bool:
        return self.content is None

    def name_of(self, label: int) -> str:
        """``label``'s name, or its number when the source names none."""
        if self.names is not None and int(label) in self.names:
            return self.names[int(label)]
        return f"label {int(label)}"


def one_region() -> Regions:
    """No label maps: the whole photo is one region."""
    return Regions(None, None, ONE_REGION)
