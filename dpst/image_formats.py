"""The image files dpst writes, by extension: one table for the writer, the output checks and
every ``-o`` help text (plain data, so building the parser imports no imaging library)."""

from __future__ import annotations

# Suffix -> Pillow format. Each is written as 8-bit RGB, which all of them store as is
# (TIFF uncompressed, as every photo editor reads it).
IMAGE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}


def listed() -> str:
    """The writable extensions as prose: ``.png, .jpg, ... or .bmp``."""
    *first, last = IMAGE_FORMATS
    return f"{', '.join(first)} or {last}"
