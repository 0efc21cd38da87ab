"""Automatic masks for a command, or one region with a one-line note when none can be made.

A missing segmenter (the ``seg`` extra not installed, weights not on disk) should not fail a
stylisation: the command says why in one line and goes on with one region.
"""

from __future__ import annotations

import sys


def automatic_or_none(command: str, content, style, config, long_side: int, at_photo_size=True):
    """:func:`~dpst.models.auto_labels.auto_labels_resized`, or None after saying why not."""
    from dpst.errors import DpstError
    from dpst.models.auto_labels import auto_labels_resized

    try:
        return auto_labels_resized(content, style, config, long_side, at_photo_size=at_photo_size)
    except DpstError as err:
        print(f"dpst {command}: no automatic masks ({err}); using one region", file=sys.stderr)
        return None
