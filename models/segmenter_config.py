"""Which segmenter to build: no torch here.

Kept apart from :mod:`dpst.models.segmenter` so that building the ``dpst`` parser (which
every command, ``--help`` included, does, naming these backends) never imports torch; the
flags themselves are :func:`dpst.commands.options.add_segmenter`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS = ("segformer", "none")
DEFAULT_SEGFORMER = "nvidia/segformer-b0-finetuned-ade-512-512"


@dataclass(frozen=True)
class SegmenterConfig:
    """Which segmenter to build and where its weights come from.

    ``model`` names a Hugging Face model (larger ADE20K SegFormers, e.g.
    ``nvidia/segformer-b5-finetuned-ade-640-640``, work too); ``weights`` is a local folder
    written by ``save_pretrained`` or ``hf download NAME --local-dir DIR`` and wins over
    ``model``. ``device`` "auto" means CUDA when present, else CPU. Downloads are also off
    when the environment sets ``HF_HUB_OFFLINE=1`` or ``DPST_OFFLINE=1``.
    """

    backend: str = "segformer"
    model: str = DEFAULT_SEGFORMER
    weights: str | None = None
    device: str = "auto"
    cache_dir: str | None = None
    allow_download: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"segmenter backend must be one of {BACKENDS}, got {self.backend!r}")
