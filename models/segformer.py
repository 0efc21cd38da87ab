"""SegFormer fine-tuned on ADE20K, through Hugging Face transformers (the ``seg`` extra).

Weights come, in this order, from a local folder (``SegmenterConfig.weights``), the Hugging
Face cache, or a download (one quick probe of the Hub first, none when offline: see
:func:`probe_hub`); with none of these the error says how to get them. The input is
prepared as ``SegformerImageProcessor`` does (resize to the model's square input, ImageNet
mean and std), but in torch, on the model's device, with no round trip through 8 bits.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
import torch.nn.functional as F

from dpst.constants import IMAGENET_MEAN, IMAGENET_STD
from dpst.devices import resolve_device
from dpst.errors import DpstError, WeightsNotFoundError
from dpst.hashing import file_sha256
from dpst.image_checks import check_image_batch
from dpst.models.ade20k import GROUP_NAMES, class_to_group_table
from dpst.models.segmenter import (
    Segmenter,
    SegmenterConfig,
    upsample_argmax,
)
from dpst.network import PROBE_TIMEOUT_S, failure_line, host, offline_reason

INSTALL_HINT = "pip install 'dpst[seg]'"
# SegformerImageProcessor's defaults, used when a model ships no preprocessor_config.json.
DEFAULT_INPUT_SIZE = (512, 512)
PREPROCESSOR_FILE = "preprocessor_config.json"
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class ExtraNotInstalledError(DpstError, ImportError):
    """An optional dependency group of dpst is needed but not installed."""


@dataclass(frozen=True)
class Preprocessing:
    """The network's input: ``size`` = (height, width), per-channel mean and std on [0,1]."""

    size: tuple[int, int] = DEFAULT_INPUT_SIZE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


def preprocess(image: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """``(B,3,H,W)`` in [0,1] -> ``(B,3,*prep.size)`` normalised network input.

    Antialiased bilinear resizing, as Pillow's (which the image processor uses) is.
    """
    x = F.interpolate(image.float(), size=prep.size, mode="bilinear", antialias=True)
    mean = torch.tensor(prep.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class SegformerSegmenter(Segmenter):
    """A loaded SegFormer; classes are the model's ``id2label``, grouped by ADE20K's table."""

    def __init__(self, model, prep: Preprocessing, identity: dict[str, Any]) -> None:
        self.model = model
        self.prep = prep
        self.identity = identity
        id2label = model.config.id2label
        self.class_names = tuple(str(id2label[i]).strip() for i in range(len(id2label)))
        self.class_to_group = class_to_group_table(self.class_names)
        self.group_names = GROUP_NAMES

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> torch.Tensor:
        check_image_batch(image)
        x = preprocess(image.to(self.device), self.prep)
        logits = self.model(pixel_values=x).logits  # (B, classes, size/4, size/4)
        return upsample_argmax(logits, tuple(image.shape[-2:]))

    def describe(self) -> dict[str, Any]:
        return {**self.identity, "device": str(self.device)}


def import_transformers():
    """The transformers module, or a one-line error naming the install command."""
    try:
        import transformers
    except ImportError:
        raise ExtraNotInstalledError(
            f"the segformer segmenter needs Hugging Face transformers: {INSTALL_HINT}"
            " (or use --segmenter none)"
        ) from None
    return transformers


def load_segformer(config: SegmenterConfig) -> SegformerSegmenter:
    """Load the SegFormer ``config`` names onto its device, in eval mode."""
    transformers = import_transformers()
    source, local_dir = _source(config)
    with _quiet(transformers):
        model, origin = _load_model(transformers, source, local_dir, config)
    prep = _read_preprocessing(source, local_dir, origin == "downloaded", config.cache_dir)
    weights = _weights_file(source, local_dir, config.cache_dir)
    identity = {
        "backend": "segformer",
        "model": config.model if local_dir is None else str(local_dir),
        "weights_from": origin,
        "weights_file": None if weights is None else str(weights),
        "weights_sha256": None if weights is None else file_sha256(weights),
        "num_classes": int(model.config.num_labels),
        "input_size": list(prep.size),
    }
    model = model.to(resolve_device(config.device)).eval()
    return SegformerSegmenter(model, prep, identity)


def _source(config: SegmenterConfig) -> tuple[str, Path | None]:
    """What to load from: a local folder (checked here) or a Hugging Face model name."""
    folder = config.weights if config.weights is not None else None
    if folder is None and Path(config.model).is_dir():
        folder = config.model
    if folder is None:
        return config.model, None
    path = Path(folder)
    if not (path / "config.json").is_file() or not any((path / f).is_file() for f in WEIGHT_FILES):
        raise WeightsNotFoundError(
            f"{path}: no SegFormer weights there (expected config.json and model.safetensors,"
            f" as written by `hf download {config.model} --local-dir {path}`)"
        )
    return str(path), path


def _why_no_download(source: str, config: SegmenterConfig) -> str | None:
    """None when the weights may be downloaded now, else why not (a few words)."""
    reason = offline_reason()  # DPST_OFFLINE, which keeps every download of dpst off, or HF's
    if reason is not None:
        return f"{reason} (offline)"
    if not config.allow_download:
        # The caller's rule (dpst serve never makes a request wait for a download), not the
        # user's setting: say so rather than "downloads are off", which sends them looking.
        return "this command uses weights already on disk only"
    return probe_hub(source)


def probe_hub(source: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """One HEAD request for ``source``'s config.json: None when the Hub answers, else why not.

    huggingface_hub retries an unreachable Hub five times with back-off (about 25 s of
    warnings, whatever --quiet says) before it gives up on a file that is not cached; a
    single request with a short timeout first makes an offline machine one line, at once.
    """
    from huggingface_hub import constants, get_hf_file_metadata

    # Built here rather than by hf_hub_url so that the endpoint is read now (tests move it).
    url = f"{constants.ENDPOINT}/{quote(source)}/resolve/main/{CONFIG_FILE}"
    try:
        get_hf_file_metadata(url, timeout=timeout)  # one attempt: it retries only if asked
    except Exception as err:  # httpx's, requests' or huggingface_hub's, by version
        response = getattr(err, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return f"{host(url)} answered HTTP {response.status_code} for it"
        if "Timeout" in type(err).__name__:
            return f"{host(url)} did not answer in {timeout:g} s"
        return f"cannot reach {host(url)} ({failure_line(err)})"
    return None


def _load_model(transformers, source: str, local_dir: Path | None, config: SegmenterConfig):
    cls = transformers.SegformerForSemanticSegmentation
    kwargs = {"cache_dir": config.cache_dir}
    try:
        model = cls.from_pretrained(source, local_files_only=True, **kwargs)
        return model, "local folder" if local_dir is not None else "Hugging Face cache"
    except OSError as err:
        if local_dir is not None:
            raise WeightsNotFoundError(
                f"{local_dir}: cannot load SegFormer weights ({str(err).splitlines()[0]})"
            ) from None
        reason = _why_no_download(source, config)
        if reason is None:
            try:
                return cls.from_pretrained(source, **kwargs), "downloaded"
            except OSError as download_err:
                reason = f"download failed: {str(download_err).splitlines()[0]}"
    raise WeightsNotFoundError(
        f"SegFormer weights {source!r} are not in the Hugging Face cache and {reason};"
        f" get them with `hf download {source}` (or `hf download {source} --local-dir DIR`"
        " and pass --seg-weights DIR), or use --segmenter none"
    )


def _read_preprocessing(
    source: str, local_dir: Path | None, may_download: bool, cache_dir: str | None
) -> Preprocessing:
    """The model's own preprocessor_config.json if it has one, else the processor defaults."""
    path: Path | None = None
    if local_dir is not None:
        path = local_dir / PREPROCESSOR_FILE
    else:
        from huggingface_hub import hf_hub_download

        with contextlib.suppress(Exception):  # absent file or offline: defaults apply
            path = Path(
                hf_hub_download(
                    source,
                    PREPROCESSOR_FILE,
                    cache_dir=cache_dir,
                    local_files_only=not may_download,
                )
            )
    if path is None or not path.is_file():
        return Preprocessing()
    cfg = json.loads(path.read_text())
    size = cfg.get("size", {})
    if isinstance(size, int):
        size = {"height": size, "width": size}
    return Preprocessing(
        size=(
            int(size.get("height", DEFAULT_INPUT_SIZE[0])),
            int(size.get("width", DEFAULT_INPUT_SIZE[1])),
        ),
        mean=tuple(float(v) for v in cfg.get("image_mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in cfg.get("image_std", IMAGENET_STD)),
    )


def _weights_file(source: str, local_dir: Path | None, cache_dir: str | None) -> Path | None:
    """The file the weights were read from, to hash for reports (None when unknown)."""
    for name in WEIGHT_FILES:
        if local_dir is not None:
            if (local_dir / name).is_file():
                return local_dir / name
            continue
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, name, cache_dir=cache_dir)
        if isinstance(found, str):
            return Path(found)
    return None


@contextlib.contextmanager
def _quiet(transformers):
    """No progress bars while loading: a CLI's stderr is for messages that matter."""
    hf_logging = transformers.utils.logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
