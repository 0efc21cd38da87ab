"""What dpst may send over the network, and the switch that keeps it all off.

dpst itself connects only to fetch weights it was asked to use (VGG-19, SegFormer; see the
README's "Network"). Some libraries it imports phone home on their own, so
:func:`apply_defaults`, run once when the ``dpst`` package is imported (before any of them
is), turns that off with environment defaults a user can still override:

- albumentations asks PyPI for its latest version when imported (``NO_ALBUMENTATIONS_UPDATE``);
- Gradio sends analytics and checks its version (``GRADIO_ANALYTICS_ENABLED``);
- ONNX Runtime's official builds upload telemetry events (``ORT_DISABLE_TELEMETRY``);
- huggingface_hub's library telemetry (``HF_HUB_DISABLE_TELEMETRY``).

``DPST_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) keeps every download off; it also sets
``HF_HUB_OFFLINE`` so that nothing built on huggingface_hub opens a connection either.
Torch-free and import-light: every command and the torch-free runtime import it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from urllib.parse import urlsplit

from dpst import errors

# Either one keeps every download off: ours, and Hugging Face's, which users already set for
# the segmenter's weights.
OFFLINE_ENVS = ("DPST_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = frozenset({"1", "true", "yes", "on"})

# Values as each library spells "off" (Gradio compares with the string "True").
QUIET_DEFAULTS: dict[str, str] = {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

# A single probe of a weights host before a download: long enough for a slow link to answer
# a HEAD request, short enough that an offline machine is told so at once.
PROBE_TIMEOUT_S = 5.0


def offline_reason(environ: MutableMapping[str, str] | None = None) -> str | None:
    """``"DPST_OFFLINE is set"`` (or ``HF_HUB_OFFLINE``) when downloads are off, else None."""
    environ = os.environ if environ is None else environ
    for name in OFFLINE_ENVS:
        if environ.get(name, "").strip().lower() in _TRUE:
            return f"{name} is set"
    return None


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set :data:`QUIET_DEFAULTS` (and ``HF_HUB_OFFLINE`` when offline) where unset."""
    environ = os.environ if environ is None else environ
    for name, value in QUIET_DEFAULTS.items():
        environ.setdefault(name, value)
    if offline_reason(environ) is not None:
        environ.setdefault("HF_HUB_OFFLINE", "1")


def host(url: str) -> str:
    """The host a URL points at, for one-line messages (``huggingface.co``)."""
    return urlsplit(url).hostname or url


def failure_line(err: BaseException, limit: int = 160) -> str:
    """An exception as ``Type: first line of its message``, shortened for a one-line error
    (a network failure's type, ``ConnectError``, ``TimeoutError``, says as much as its text)."""
    text = errors.first_line(err, limit)
    return text if text == type(err).__name__ else f"{type(err).__name__}: {text}"
