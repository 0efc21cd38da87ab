"""Fetching a VGG-19 weights file on first use, as torchvision and Hugging Face do.

``download_weights(url, dst)`` downloads into torch hub's checkpoints folder with a progress
bar on stderr, checks the SHA-256 prefix that the file's name carries (torch hub's
convention: ``vgg19-d01eb7cb.pth`` must hash to ``d01eb7cb...``) and moves the file into
place only when it is complete and checked (``torch.hub.download_url_to_file`` writes to a
``.partial`` file beside the destination and removes it on any failure, Ctrl-C included).
Folders it had to create are removed again when the download fails, so a failure leaves
nothing behind.

Offline (``DPST_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1/true/yes/on), nothing is fetched and
no socket is opened: the caller gets a one-line :class:`WeightsNotFoundError` saying which
file to fetch from where and where to put it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import torch

from dpst.errors import WeightsNotFoundError

# Either one keeps every download off: ours, and Hugging Face's, which users already set for
# the segmenter's weights.
OFFLINE_ENVS = ("DPST_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = frozenset({"1", "true", "yes", "on"})
# torch hub's rule (torch.hub.HASH_REGEX): the hex digits after a '-' and before a '.'.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")


def offline_reason() -> str | None:
    """``"DPST_OFFLINE is set"`` (or ``HF_HUB_OFFLINE``) when downloads are off, else None."""
    for name in OFFLINE_ENVS:
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name} is set"
    return None


def file_name(url: str) -> str:
    """The last path component of ``url``: the name the file is cached under."""
    return Path(urlsplit(url).path).name


def hash_prefix(name: str) -> str | None:
    """The SHA-256 prefix a torch hub checkpoint name carries (``d01eb7cb`` for
    ``vgg19-d01eb7cb.pth``), or None when the name carries none."""
    found = _HASH_IN_NAME.search(name)
    return found.group(1) if found else None


def how_to_fetch(url: str, folder: Path) -> str:
    """The way out, for every weights error: what to fetch, where to put it, what else works."""
    return (
        f"fetch {url} into {folder}/ (or pass --vgg-weights PATH, or set DPST_VGG_WEIGHTS); "
        "--backbone random runs without weights (meaningless results)"
    )


def download_weights(url: str, dst: Path, progress: bool = True) -> Path:
    """Download ``url`` to ``dst`` atomically, checking the hash prefix in ``dst``'s name.

    Returns ``dst``. Raises :class:`WeightsNotFoundError` (one line: the reason and the way
    out) when offline, when the name carries no hash prefix to check, or when the download
    fails or the file's hash does not match; ``dst`` is then left untouched and no partial
    file or new folder remains.
    """
    way_out = how_to_fetch(url, dst.parent)
    reason = offline_reason()
    if reason is not None:
        raise WeightsNotFoundError(f"VGG-19 weights not found and {reason} (offline): {way_out}")
    expected = hash_prefix(dst.name)
    if expected is None:
        raise WeightsNotFoundError(
            f"cannot check a download of {url}: its file name carries no SHA-256 prefix "
            f"(name-XXXXXXXX.pth, torch hub's convention); {way_out}"
        )
    created = _missing_parents(dst.parent)
    if progress:  # the line torch hub prints before its own downloads
        sys.stderr.write(f'Downloading: "{url}" to {dst}\n')
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=expected, progress=progress)
    except BaseException as err:
        for folder in created:  # deepest first; only those we made, and only if empty
            try:
                folder.rmdir()
            except OSError:
                break
        if not isinstance(err, Exception):
            raise  # Ctrl-C stays Ctrl-C; the partial file is already gone
        raise WeightsNotFoundError(f"{_describe(err, expected)}: {way_out}") from None
    return dst


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _describe(err: Exception, expected: str) -> str:
    text = (str(err).splitlines() or [""])[0]
    if isinstance(err, RuntimeError) and text.startswith("invalid hash value"):
        # torch hub's message: 'invalid hash value (expected "...", got "<sha256>")'
        got = text.rsplit('"', 2)[-2] if text.count('"') >= 4 else "?"
        return (
            f"downloaded VGG-19 weights refused: SHA-256 {got[:16]}... does not start with "
            f"{expected} (corrupt or wrong file; nothing was kept)"
        )
    return f"VGG-19 weights download failed: {type(err).__name__}: {text[:160]}".rstrip(": ")
