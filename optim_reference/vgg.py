"""VGG-19's convolutional part up to relu5_1, frozen, with named layer outputs.

Layer names follow Caffe (``conv4_2``, ``relu4_2``, ``pool4``); the layout, by name, is
:mod:`dpst.optim_reference.vgg_layout` (torch-free), re-exported here.

Weights (docs/METHOD.md section 2.1): the paper used the original Caffe VGG-19 with Caffe
preprocessing; torchvision's ImageNet VGG-19 is another network with another input scale,
so its activations (and the losses built on them) are on another scale. The model records
which preprocessing it uses (:attr:`VGG19Features.preprocessing`, and the identity returned
by :func:`load_backbone`) so that the losses can scale their weights.

Where the weights come from, for ``BackboneConfig(name="vgg19")``, first hit wins:

1. ``weights`` (``--vgg-weights PATH``), or the file named by ``DPST_VGG_WEIGHTS``;
   ``weights="torchvision"`` (or ``DPST_VGG_WEIGHTS=torchvision``) asks for torchvision's
   ``vgg19-dcbb9e9d.pth`` by name: looked up in torch hub's checkpoints folder and downloaded
   there from torchvision's URL if missing, reported with a note that the paper's loss
   weights are not calibrated for it;
2. the Caffe VGG-19 converted by jcjohnson/pytorch-vgg, ``vgg19-d01eb7cb.pth`` (the weights
   the paper used), in torch hub's checkpoints folder (``torch.hub.get_dir()/checkpoints``,
   which follows ``TORCH_HOME``);
3. that file downloaded there on first use from ``CAFFE_URL`` (or ``DPST_VGG_URL``), hash
   checked, with a progress bar (:mod:`dpst.optim_reference.vgg_download`).

Offline (``DPST_OFFLINE`` or ``HF_HUB_OFFLINE``), with ``download=False``, or when the download
fails, :class:`dpst.errors.WeightsNotFoundError` says in one line what to fetch and where to
put it. torchvision's file is never used unless asked for by name.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from dpst import hashing
from dpst.constants import CAFFE_MEAN_BGR, CAFFE_PIXEL_SCALE, IMAGENET_MEAN, IMAGENET_STD
from dpst.errors import WeightsNotFoundError
from dpst.image_checks import check_image_batch

from .vgg_download import download_weights, file_name, how_to_fetch
from .vgg_layout import (  # the layout is re-exported with the network it describes
    CONTENT_LAYER,  # noqa: F401
    STYLE_LAYERS,  # noqa: F401
    VGG19_BLOCK_CHANNELS,  # noqa: F401
    VGG19_LAYER_INDEX,
    VGG19_LAYOUT,
    conv_channels,
)
from .vgg_weights import (
    CAFFE_FILE,
    CAFFE_URL,
    ENV_URL,
    ENV_WEIGHTS,
    TORCHVISION_FILE,
    TORCHVISION_NAME,
    TORCHVISION_NOTE,
    TORCHVISION_URL,
    read_conv_weights,
)

PREPROCESSINGS = ("torchvision", "caffe")


def preprocess(x: torch.Tensor, preprocessing: str) -> torch.Tensor:
    """RGB ``(B,3,H,W)`` in [0,1] -> the network's input space (a new tensor).

    ``"torchvision"``: ``(x - IMAGENET_MEAN) / IMAGENET_STD``; ``"caffe"``: channels reversed
    to BGR, times 255, minus :data:`CAFFE_MEAN_BGR`.
    """
    shape = (1, 3, 1, 1)
    if preprocessing == "torchvision":
        mean = x.new_tensor(IMAGENET_MEAN).view(shape)
        std = x.new_tensor(IMAGENET_STD).view(shape)
        return (x - mean) / std
    if preprocessing == "caffe":
        mean = x.new_tensor(CAFFE_MEAN_BGR).view(shape)
        return x.flip(1) * CAFFE_PIXEL_SCALE - mean
    raise ValueError(f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}")


class VGG19Features(nn.Module):
    """VGG-19 up to relu5_1, frozen; ``forward`` returns the requested layers by name.

    Max pooling is 2x2, stride 2, ``ceil_mode=True``: the Caffe network the paper used pools
    in ceil mode, so an odd side H becomes ceil(H/2), the size masks are resized to
    (docs/METHOD.md 2.3). torchvision pools in floor mode; on even sizes both agree.
    """

    def __init__(self, preprocessing: str = "torchvision") -> None:
        super().__init__()
        if preprocessing not in PREPROCESSINGS:
            raise ValueError(
                f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}"
            )
        self.preprocessing = preprocessing
        channels = conv_channels()
        for name, kind in VGG19_LAYOUT:
            if kind == "conv":
                module: nn.Module = nn.Conv2d(*channels[name], kernel_size=3, padding=1)
            elif kind == "relu":
                module = nn.ReLU()
            else:
                module = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
            self.add_module(name, module)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        # Frozen: there is nothing to train and no layer behaves differently in training.
        return super().train(False)

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Features of RGB images ``x`` ``(B,3,H,W)`` in [0,1] at ``layers``.

        Returns ``{name: (B,C,h,w)}``; the network runs only up to the deepest requested layer.
        """
        check_image_batch(x, "VGG-19's input")
        wanted = set(layers)
        unknown = wanted - VGG19_LAYER_INDEX.keys()
        if unknown or not wanted:
            raise ValueError(
                f"layers must be non-empty names from VGG19_LAYOUT (conv1_1 ... relu5_1), "
                f"got {sorted(unknown) or list(layers)}"
            )
        last = max(VGG19_LAYER_INDEX[name] for name in wanted)
        h = preprocess(x, self.preprocessing)
        out: dict[str, torch.Tensor] = {}
        previous = None
        for name, kind in VGG19_LAYOUT[: last + 1]:
            if kind == "relu" and previous not in wanted:
                # In place saves one activation-sized buffer per layer; only when nobody
                # holds the convolution's output.
                h = torch.relu_(h)
            else:
                h = getattr(self, name)(h)
            if name in wanted:
                out[name] = h
            previous = name
        return out


@dataclass
class BackboneConfig:
    """Which backbone and weights to use.

    ``name``: ``"vgg19"`` (real weights, see the module docstring for the search order) or
    ``"random"`` (seeded Kaiming init, for tests and offline smoke runs; reported as such).
    ``weights``: an explicit state-dict file, or ``"torchvision"`` for torchvision's file by
    name. ``format``: ``"auto"`` (from the keys, the file name and its hash),
    ``"torchvision"`` or ``"caffe"``. ``download``: whether a missing file may be downloaded
    (the Caffe file, or torchvision's when named); offline mode forbids it anyway.
    """

    name: str = "vgg19"
    weights: str | None = None
    format: str = "auto"
    seed: int = 0
    download: bool = True


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # Keyed on size and mtime so a replaced file is hashed again; the VGG file is ~550 MB.
    return hashing.file_sha256(path)


def weights_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a weights file, computed once per (path, size, mtime): the backbone's
    identity in every report, without hashing 550 MB per run."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def checkpoints_dir() -> Path:
    """torch hub's checkpoints folder, where torchvision caches its weights (follows TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def caffe_url() -> str:
    """Where the Caffe VGG-19 is fetched from: ``DPST_VGG_URL`` or :data:`CAFFE_URL`."""
    return os.environ.get(ENV_URL) or CAFFE_URL


def _fetch(url: str, dst: Path, config: BackboneConfig) -> Path:
    """``dst`` downloaded from ``url`` when allowed, else the one-line way out."""
    if not config.download:
        way_out = how_to_fetch(url, dst.parent)
        raise WeightsNotFoundError(f"VGG-19 weights not found and downloading is off: {way_out}")
    return download_weights(url, dst)


def resolve_weights(config: BackboneConfig) -> tuple[Path, str, str]:
    """Find (or fetch) the weights file for ``config``: ``(path, source, resolved_by)``.

    ``source`` is ``"file"`` or ``"torchvision-cache"``; ``resolved_by`` says which rule chose
    it (``"config"``, ``"env:DPST_VGG_WEIGHTS"``, ``"hub-checkpoints"``, ``"download"``).
    """
    named = config.weights
    resolved_by = "config"
    if named is None and os.environ.get(ENV_WEIGHTS):
        named, resolved_by = os.environ[ENV_WEIGHTS], f"env:{ENV_WEIGHTS}"
    if named == TORCHVISION_NAME:
        cached = checkpoints_dir() / TORCHVISION_FILE
        if cached.is_file():
            return cached, "torchvision-cache", "hub-checkpoints"
        return _fetch(TORCHVISION_URL, cached, config), "torchvision-cache", "download"
    if named is not None:
        path = Path(named).expanduser()
        if not path.is_file():
            flag = "--vgg-weights" if resolved_by == "config" else ENV_WEIGHTS
            raise WeightsNotFoundError(
                f"{path}: VGG-19 weights file not found ({flag}; or '{TORCHVISION_NAME}' for "
                "torchvision's weights by name)"
            )
        return path, "file", resolved_by
    url = caffe_url()
    # The default name first: a mirror named otherwise still finds a file already in place.
    for name in dict.fromkeys((CAFFE_FILE, file_name(url))):
        if (checkpoints_dir() / name).is_file():
            return checkpoints_dir() / name, "file", "hub-checkpoints"
    return _fetch(url, checkpoints_dir() / file_name(url), config), "file", "download"


def download_source(resolved_by: str, path: Path) -> str | None:
    """The URL a file in torch hub's folder is fetched from (for reports), else None."""
    if resolved_by not in ("hub-checkpoints", "download"):
        return None
    if path.name == TORCHVISION_FILE:
        return TORCHVISION_URL
    url = caffe_url()
    return url if path.name == file_name(url) else CAFFE_URL


# Bias range of the random backbone, chosen so that L-BFGS leaves the mean-colour start within
# tens of iterations on small images (measured: ranges of 1 stalled for hundreds on some seeds).
RANDOM_BIAS_RANGE = 3.0


def random_backbone(seed: int = 0, preprocessing: str = "caffe") -> VGG19Features:
    """VGG-19 with seeded random weights, a stand-in for offline smoke runs and tests.

    Weights: torchvision's initialisation (Kaiming normal, fan_out). Biases: uniform in
    +-RANDOM_BIAS_RANGE rather than zero, like a trained network's: the paper's stage 1 starts
    from the mean colour, which Caffe preprocessing maps to a zero input, and with zero
    biases every activation, and so every style gradient, would vanish there.

    Drawn on the CPU from its own generator, so the weights do not depend on the device or on
    the global random state.
    """
    model = VGG19Features(preprocessing)
    generator = torch.Generator().manual_seed(seed)
    for name, kind in VGG19_LAYOUT:
        if kind == "conv":
            conv = getattr(model, name)
            nn.init.kaiming_normal_(
                conv.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            nn.init.uniform_(conv.bias, -RANDOM_BIAS_RANGE, RANDOM_BIAS_RANGE, generator=generator)
    return model


def load_backbone(
    config: BackboneConfig, device: torch.device | str = "cpu"
) -> tuple[VGG19Features, dict]:
    """Build the frozen backbone on ``device`` and its identity for reports.

    Identity keys: ``name``, ``random``, ``source`` (``"torchvision-cache"``, ``"file"`` or
    ``"random"``), ``path``, ``url`` (where a file of torch hub's folder is fetched from;
    ``resolved_by`` is ``"download"`` when this call fetched it), ``sha256`` (first 16 hex
    digits of the file's), ``format``, ``format_detected_by``, ``resolved_by``,
    ``preprocessing``, ``note`` (torchvision's weights: not calibrated), and ``seed`` for
    random. May download the Caffe file (see the module docstring).
    """
    if config.format not in ("auto", *PREPROCESSINGS):
        raise ValueError(
            f"backbone format must be auto, torchvision or caffe, got {config.format!r}"
        )
    if config.name == "random":
        if config.weights is not None:
            raise ValueError("a weights file was given with backbone 'random'; drop one of them")
        # Caffe's 0-255 input scale: the paper's loss weights were tuned for it, and a
        # Kaiming-initialised network keeps activations on a comparable scale.
        preprocessing = "caffe" if config.format == "auto" else config.format
        model = random_backbone(config.seed, preprocessing)
        identity = {
            "name": "random",
            "random": True,
            "source": "random",
            "path": None,
            "sha256": None,
            "seed": config.seed,
            "preprocessing": preprocessing,
        }
        return model.to(device), identity
    if config.name != "vgg19":
        raise ValueError(f"backbone must be 'vgg19' or 'random', got {config.name!r}")

    path, source, resolved_by = resolve_weights(config)
    sha = weights_sha256(path)
    weights, fmt, detected_by = read_conv_weights(path, sha, conv_channels(), config.format)
    model = VGG19Features(fmt)
    model.load_state_dict(weights)
    identity = {
        "name": "vgg19",
        "random": False,
        "source": source,
        "resolved_by": resolved_by,
        "path": str(path),
        "url": download_source(resolved_by, path),
        "sha256": sha[:16],
        "format": fmt,
        "format_detected_by": detected_by,
        "preprocessing": fmt,
    }
    if fmt == "torchvision":
        # Said once in the console (dpst prints warnings as one line) and kept in the report.
        identity["note"] = TORCHVISION_NOTE
        warnings.warn(TORCHVISION_NOTE, UserWarning, stacklevel=2)
    return model.to(device), identity
