"""File digests: one SHA-256 reader for models, weights, styles and targets."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, hex (read in blocks: a 550 MB weights file is never
    held whole)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
