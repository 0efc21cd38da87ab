"""The torch-free segmenter of ``--masks auto``: its ONNX file on disk, else fetched once.

:func:`dpst.labels.automatic.groups_or_none` (``dpst fast``, ``dpst look``) asks here first.
A segmenter config that names a model of :data:`dpst.models.segmenter_download.SEGMENTER_FILES`
(the default does) and no ``--seg-weights`` folder is run on ONNX Runtime from that file:

1. :func:`local_onnx`: the file is in the segmenter folder -> loaded (hash-checked);
2. the caller then tries the torch path's weights on disk, as before;
3. :func:`fetched_onnx`: online, the file is downloaded once (one line naming file, size and
   licence; hash-checked; a failure leaves nothing) and loaded. Offline (``DPST_OFFLINE=1``),
   no socket is opened and the reason is the caller's one-line note.

Both return ``(segmenter, None)``, ``(None, why not)``, or ``(None, None)`` when the config is
not one for an ONNX file (another backend or model, a weights folder, no onnxruntime).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from dpst.errors import DpstError
from dpst.models.segmenter_config import SegmenterConfig
from dpst.models.segmenter_download import (
    SegmenterFile,
    fetch_segmenter,
    local_file,
    segmenter_folder,
    spec_for,
    why_not_fetched,
)


def onnx_spec(config: SegmenterConfig) -> SegmenterFile | None:
    """The ONNX file ``config`` can run from, or None when it is not for one."""
    if config.backend != "segformer" or config.weights is not None:
        return None
    try:
        if importlib.util.find_spec("onnxruntime") is None:
            return None
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        return None
    return spec_for(config.model)


def local_onnx(config: SegmenterConfig) -> tuple[Any, str | None]:
    """The segmenter loaded from its ONNX file when the file is on disk (no network)."""
    spec = onnx_spec(config)
    path = None if spec is None else local_file(spec)
    if path is None:
        return None, None
    return _load(path, spec, "dpst cache")


def fetched_onnx(config: SegmenterConfig) -> tuple[Any, str | None]:
    """The segmenter's ONNX file downloaded now and loaded, or why not (offline: no socket)."""
    spec = onnx_spec(config)
    if spec is None:
        return None, None
    folder = segmenter_folder()
    if not config.allow_download:
        return None, (
            f"segmenter {spec.file_name} is not in {folder} and this command uses files "
            "already on disk only"
        )
    why = why_not_fetched(spec)
    if why is not None:  # before any connection: offline, or nothing pinned to fetch
        from dpst.models.segmenter_download import how_to_fetch

        return None, f"segmenter {spec.file_name} is not in {folder} and {why}: " + how_to_fetch(
            spec, folder
        )
    try:
        path = fetch_segmenter(spec, folder)
    except DpstError as err:
        return None, str(err)
    return _load(path, spec, "download")


def _load(path, spec: SegmenterFile, origin: str) -> tuple[Any, str | None]:
    from dpst.models.segmenter_onnx import OnnxSegmenter

    try:
        return OnnxSegmenter(path, spec, origin), None
    except DpstError as err:
        return None, str(err)
