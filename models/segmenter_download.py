"""The ADE20K segmenter as one ONNX file, fetched on first use as VGG-19 is: no torch here.

``--masks auto`` of ``dpst fast`` and ``dpst look`` runs the segmenter through ONNX Runtime
(:mod:`dpst.models.segmenter_onnx`) from one file in :func:`segmenter_folder`. When the file
is not there and downloads are allowed, :func:`fetch_segmenter` gets it: one line naming the
file, its size and its licence, a progress bar on a terminal, one attempt with a short
timeout, the SHA-256 pinned in :data:`SEGMENTER_FILES` checked before the file is moved into
place (a failed or corrupt download leaves nothing: the download is
:func:`dpst.optim_reference.vgg_download.download_checked`'s). With ``DPST_OFFLINE=1`` (or
``HF_HUB_OFFLINE=1``) nothing is fetched and no socket is opened.

Each entry of the table says where its file comes from and under which licence, as read on
the model's card (see the README's "Weights"). An entry without a URL has no published ONNX
build: its file is exported once from the PyTorch weights
(:func:`dpst.models.segmenter_export.export_segmenter_onnx`, needs the ``seg`` extra) into
the same folder, under the same name.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from dpst.constants import IMAGENET_MEAN, IMAGENET_STD
from dpst.errors import WeightsNotFoundError
from dpst.network import offline_reason

# Where the segmenter's ONNX files live (beside the stylizer's ~/.cache/dpst/model.onnx), and
# the variables that move that folder or the download's host (a mirror of the same bytes).
DEFAULT_FOLDER = Path("~/.cache/dpst/segmenter")
ENV_FOLDER = "DPST_SEG_CACHE"
ENV_URL = "DPST_SEG_URL"


@dataclass(frozen=True)
class SegmenterFile:
    """One ADE20K segmenter as an ONNX file: ``pixel_values (B,3,H,W) -> logits (B,150,h,w)``.

    ``sha256`` (the whole hex digest) and ``size`` (bytes) pin the published file; ``url`` is
    None for a model with no published ONNX build (exported here, then checked against the
    ``.sha256`` written beside it). ``model`` is the Hugging Face model whose weights these are,
    the one ``--seg-model`` names on the torch path.
    """

    key: str
    model: str
    url: str | None
    sha256: str | None
    size: int | None
    licence: str
    licence_url: str
    input_size: tuple[int, int] = (512, 512)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def file_name(self) -> str:
        """The name it is kept under: key and hash prefix (a new pin is a new file)."""
        tag = self.sha256[:8] if self.sha256 else "exported"
        return f"{self.key}-{tag}.onnx"


NVIDIA_SEGFORMER_LICENCE = (
    "NVIDIA Source Code License for SegFormer (non-commercial: research or evaluation only)"
)
SEGFORMER_LICENCE_URL = "https://github.com/NVlabs/SegFormer/blob/master/LICENSE"

# Xenova's ONNX export of nvidia/segformer-b0-finetuned-ade-512-512 (Transformers.js), at a
# pinned revision. Its card names no licence of its own; the weights are NVIDIA's, whose card
# says "License: other" and links NVIDIA's licence. Size and SHA-256 as pinned by other
# projects (not verifiable from here: the download checks them, and refuses a mismatch).
_XENOVA_B0 = "https://huggingface.co/Xenova/segformer-b0-finetuned-ade-512-512/resolve"
SEGMENTER_FILES: dict[str, SegmenterFile] = {
    "segformer-b0-ade": SegmenterFile(
        key="segformer-b0-ade",
        model="nvidia/segformer-b0-finetuned-ade-512-512",
        url=f"{_XENOVA_B0}/d3e5499fa8701ff0453ca940a8dfeae39b2f1504/onnx/model.onnx",
        sha256="3e5c18a4be395f16646438d54c42377ddc202edfa33d5eced0c9506de75c44c2",
        size=15_335_446,
        licence=NVIDIA_SEGFORMER_LICENCE,
        licence_url=SEGFORMER_LICENCE_URL,
    ),
    # MIT on its card, but no ONNX build is published: exported once from the PyTorch weights
    # (241 MB of them) with dpst.models.segmenter_export. About 16 times the parameters of
    # SegFormer-B0 and far slower on a CPU (bench/segmenter_cost.py), so not the default.
    "upernet-convnext-tiny-ade": SegmenterFile(
        key="upernet-convnext-tiny-ade",
        model="openmmlab/upernet-convnext-tiny",
        url=None,
        sha256=None,
        size=None,
        licence="MIT",
        licence_url="https://huggingface.co/openmmlab/upernet-convnext-tiny",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ),
}
# The file --masks auto uses: the ONNX build of the torch path's default model
# (dpst.models.segmenter_config.DEFAULT_SEGFORMER), so both paths label alike.
DEFAULT_SEGMENTER_FILE = "segformer-b0-ade"
BY_MODEL = MappingProxyType({spec.model: key for key, spec in SEGMENTER_FILES.items()})


def segmenter_folder() -> Path:
    """``$DPST_SEG_CACHE``, else ``~/.cache/dpst/segmenter``."""
    return Path(os.environ.get(ENV_FOLDER) or DEFAULT_FOLDER).expanduser()


def spec_for(model: str) -> SegmenterFile | None:
    """The table's entry for a Hugging Face model name, or None when it has none."""
    key = BY_MODEL.get(model)
    return None if key is None else SEGMENTER_FILES[key]


def local_file(spec: SegmenterFile, folder: Path | None = None) -> Path | None:
    """The entry's file in the folder when it is there (checked on load, not here)."""
    path = (folder or segmenter_folder()) / spec.file_name
    return path if path.is_file() else None


def source_url(spec: SegmenterFile) -> str | None:
    """Where to fetch the entry's file: ``$DPST_SEG_URL`` (a mirror) or its own URL."""
    return os.environ.get(ENV_URL) or spec.url


def _mib(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 2**20:.1f} MiB"


def how_to_fetch(spec: SegmenterFile, folder: Path) -> str:
    """The way out of a missing segmenter: what to fetch and where, or how to export it."""
    dst = folder / spec.file_name
    url = source_url(spec)
    if url is None:
        return (
            f"export it once with `python -m dpst.models.segmenter_export {spec.model} -o {dst}`"
            " (needs dpst[seg])"
        )
    return f"fetch {url} to {dst} (or pass --seg-weights DIR, or --masks none)"


def why_not_fetched(spec: SegmenterFile) -> str | None:
    """None when the entry's file may be downloaded now, else why not (no socket opened)."""
    reason = offline_reason()
    if reason is not None:
        return f"{reason} (offline)"
    if source_url(spec) is None:
        return "no ONNX build of it is published"
    if spec.sha256 is None:
        return "no SHA-256 is pinned for it"
    return None


def fetch_segmenter(spec: SegmenterFile, folder: Path | None = None, progress=None) -> Path:
    """Download the entry's file into ``folder`` (hash-checked, atomic) and return its path.

    First one line on stderr naming the file, its size and licence; then a progress bar when
    stderr is a terminal (``progress`` None) or when asked. Raises a one-line
    :class:`WeightsNotFoundError` when offline (opening no socket) or when the download fails
    or its hash does not match; nothing is then left behind.
    """
    from dpst.optim_reference.vgg_download import download_checked

    folder = folder or segmenter_folder()
    dst = folder / spec.file_name
    why = why_not_fetched(spec)
    if why is not None:
        raise WeightsNotFoundError(
            f"segmenter {spec.key} not found in {folder} and {why}: {how_to_fetch(spec, folder)}"
        )
    url = source_url(spec)
    print(
        f"dpst: fetching the segmenter {dst.name} ({spec.model}, {_mib(spec.size)}, licence: "
        f"{spec.licence}) from {url}",
        file=sys.stderr,
    )
    if progress is None:
        progress = sys.stderr.isatty()
    return download_checked(
        url, dst, spec.sha256, how_to_fetch(spec, folder), "segmenter", progress=progress
    )
