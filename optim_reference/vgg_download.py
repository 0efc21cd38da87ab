"""Fetching a VGG-19 weights file on first use, as torchvision and Hugging Face do.

``download_weights(url, dst)`` downloads into torch hub's checkpoints folder with a progress
bar on stderr, checks the SHA-256 prefix that the file's name carries (torch hub's
convention: ``vgg19-d01eb7cb.pth`` must hash to ``d01eb7cb...``) and moves the file into
place only when it is complete and checked: it is written to a ``.partial`` file beside the
destination, removed on any failure, Ctrl-C included. Folders it had to create are removed
again when the download fails, so a failure leaves nothing behind.

One attempt, with a timeout on connecting and on every wait for data
(:data:`DOWNLOAD_TIMEOUT_S`): an unreachable or stalled host is one line, not a hang
(torch hub's own downloader waits forever). Offline (``DPST_OFFLINE`` or ``HF_HUB_OFFLINE``
set to 1/true/yes/on), nothing is fetched and no socket is opened: the caller gets a one-line
:class:`WeightsNotFoundError` saying which file to fetch from where and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from dpst import __version__
from dpst.errors import WeightsNotFoundError
from dpst.network import OFFLINE_ENVS, failure_line, host, offline_reason

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "OFFLINE_ENVS",
    "download_checked",
    "download_weights",
    "file_name",
    "hash_prefix",
    "how_to_fetch",
    "offline_reason",
]

# Seconds to connect, and the longest silence between two reads, before giving up. Generous
# for a slow link (a read returns as soon as any bytes arrive), short next to "forever".
DOWNLOAD_TIMEOUT_S = 15.0
_CHUNK = 1 << 20
# torch hub's rule (torch.hub.HASH_REGEX): the hex digits after a '-' and before a '.'.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.")


class _HashMismatch(Exception):
    def __init__(self, got: str) -> None:
        super().__init__(got)
        self.got = got


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
    if progress:  # the line torch hub prints before its own downloads
        sys.stderr.write(f'Downloading: "{url}" to {dst}\n')
    return download_checked(url, dst, expected, way_out, "VGG-19 weights", progress)


def download_checked(
    url: str, dst: Path, expected: str, way_out: str, what: str, progress: bool = True
) -> Path:
    """One GET of ``url`` into ``dst``, kept only when its SHA-256 starts with ``expected``
    (a prefix, or the whole hex digest): the download of every weights file dpst fetches.

    Written to a ``.partial`` file beside ``dst`` and renamed once checked; on any failure
    (Ctrl-C included) the partial file and the folders made for it are removed and, except
    for Ctrl-C, a one-line :class:`WeightsNotFoundError` naming ``what`` failed and
    ``way_out`` is raised. The caller checks for offline first: this opens a connection.
    """
    created = _missing_parents(dst.parent)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        _fetch(url, dst, expected, progress)
    except BaseException as err:
        for folder in created:  # deepest first; only those we made, and only if empty
            try:
                folder.rmdir()
            except OSError:
                break
        if not isinstance(err, Exception):
            raise  # Ctrl-C stays Ctrl-C; the partial file is already gone
        raise WeightsNotFoundError(f"{_describe(err, url, expected, what)}: {way_out}") from None
    return dst


def _fetch(url: str, dst: Path, expected: str, progress: bool) -> None:
    """One GET of ``url`` into a ``.partial`` file beside ``dst``, moved there once checked."""
    request = urllib.request.Request(url, headers={"User-Agent": f"dpst/{__version__}"})
    partial = dst.with_name(f"{dst.name}.{uuid.uuid4().hex[:8]}.partial")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            size = response.headers.get("Content-Length")
            bar = tqdm(
                total=int(size) if size and size.isdigit() else None,
                disable=not progress,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
            )
            with bar, open(partial, "wb") as fh:
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        got = digest.hexdigest()
        if not got.startswith(expected):
            raise _HashMismatch(got)
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _describe(err: Exception, url: str, expected: str, what: str = "VGG-19 weights") -> str:
    if isinstance(err, _HashMismatch):
        shown = expected if len(expected) <= 16 else f"{expected[:16]}..."
        return (
            f"downloaded {what} refused: SHA-256 {err.got[:16]}... does not start with "
            f"{shown} (corrupt or wrong file; nothing was kept)"
        )
    if isinstance(err, urllib.error.HTTPError):
        return f"{what} download failed: {host(url)} answered HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError) and not isinstance(err.reason, str):
        err = err.reason  # the socket error inside: "[Errno -2] Name or service not known"
    if isinstance(err, TimeoutError):
        return f"{what} download failed: no answer from {host(url)} in {DOWNLOAD_TIMEOUT_S:g} s"
    if isinstance(err, (urllib.error.URLError, OSError)):
        return f"{what} download failed: cannot reach {host(url)} ({failure_line(err)})"
    return f"{what} download failed: {failure_line(err)}"
