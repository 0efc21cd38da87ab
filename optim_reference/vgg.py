"""VGG-19's convolutional part up to relu5_1, frozen, with named layer outputs.

Layer names follow Caffe (``conv4_2``, ``relu4_2``, ``pool4``); indices appear in one place
only, the position of a layer in :data:`VGG19_LAYOUT`, which is also its index in
torchvision's ``vgg19().features`` and in the Caffe port's state dict (``features.N.*``).

Weights (METHOD.md section 2): the paper used the original Caffe VGG-19 with Caffe
preprocessing; torchvision's ImageNet VGG-19 is another network with another input scale,
so its activations (and the losses built on them) are on another scale. The model records
which preprocessing it uses (:attr:`VGG19Features.preprocessing`, and the identity returned
by :func:`load_backbone`) so that the losses can scale their weights.

Where the weights come from, for ``BackboneConfig(name="vgg19", weights=None)``, first hit
wins:

1. the file named by the environment variable ``DPST_VGG_WEIGHTS``;
2. the Caffe VGG-19 converted by jcjohnson/pytorch-vgg, ``vgg19-d01eb7cb.pth``, in torch hub's
   checkpoints folder (``torch.hub.get_dir()/checkpoints``, which follows ``TORCH_HOME``), as
   the paper used Caffe weights;
3. torchvision's ``vgg19-dcbb9e9d.pth`` in the same folder, downloaded there (torchvision's
   own URL and cache file) when missing and ``download`` is allowed.

Offline with none of these, :class:`dpst.errors.WeightsNotFoundError` says, in one line, where
to put which file. ``BackboneConfig(weights=PATH)`` (``--vgg-weights``) bypasses the search.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from dpst.errors import WeightsNotFoundError

from .vgg_weights import (
    CAFFE_FILE,
    CAFFE_URL,
    ENV_WEIGHTS,
    TORCHVISION_FILE,
    TORCHVISION_URL,
    read_conv_weights,
)


def _build_layout() -> tuple[tuple[str, str], ...]:
    layout: list[tuple[str, str]] = []
    for block, n_convs in enumerate((2, 2, 4, 4, 1), start=1):
        for i in range(1, n_convs + 1):
            layout += [(f"conv{block}_{i}", "conv"), (f"relu{block}_{i}", "relu")]
        if block < 5:
            layout.append((f"pool{block}", "pool"))
    return tuple(layout)


# (name, kind) in network order; the position is torchvision's `features` index.
VGG19_LAYOUT: tuple[tuple[str, str], ...] = _build_layout()
VGG19_LAYER_INDEX: dict[str, int] = {name: i for i, (name, _) in enumerate(VGG19_LAYOUT)}
# Output channels of each block's convolutions.
VGG19_BLOCK_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# Caffe preprocessing: BGR, 0-255, this mean pixel (BGR order) subtracted. The published Lua
# code multiplied by 256, not 255; we follow METHOD.md (255).
CAFFE_MEAN_BGR: tuple[float, float, float] = (103.939, 116.779, 123.68)
CAFFE_PIXEL_SCALE = 255.0
# torchvision ImageNet preprocessing: RGB in [0,1], normalised per channel.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

PREPROCESSINGS = ("torchvision", "caffe")


def conv_channels() -> dict[str, tuple[int, int]]:
    """``{conv name: (in_channels, out_channels)}`` for every convolution of the layout."""
    channels, c_in = {}, 3
    for name, kind in VGG19_LAYOUT:
        if kind == "conv":
            c_out = VGG19_BLOCK_CHANNELS[int(name[4]) - 1]
            channels[name] = (c_in, c_out)
            c_in = c_out
    return channels


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
    (METHOD.md section 2). torchvision pools in floor mode; on even sizes both agree.
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
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B,3,H,W), got {tuple(x.shape)}")
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
    ``weights``: an explicit state-dict file. ``format``: ``"auto"`` (from the keys, the file
    name and its hash), ``"torchvision"`` or ``"caffe"``. ``download``: whether torchvision's
    file may be downloaded when nothing else is found.
    """

    name: str = "vgg19"
    weights: str | None = None
    format: str = "auto"
    seed: int = 0
    download: bool = True


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    # Keyed on size and mtime so a replaced file is hashed again; the VGG file is ~550 MB.
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, computed once per (path, size, mtime)."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def checkpoints_dir() -> Path:
    """torch hub's checkpoints folder, where torchvision caches its weights (follows TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _not_found(reason: str) -> WeightsNotFoundError:
    where = checkpoints_dir()
    return WeightsNotFoundError(
        f"VGG-19 weights not found ({reason}): put torchvision's {TORCHVISION_FILE} "
        f"({TORCHVISION_URL}) or the Caffe VGG-19 {CAFFE_FILE} ({CAFFE_URL}) in {where}, "
        f"or pass --vgg-weights PATH (or set {ENV_WEIGHTS}); --backbone random runs without "
        "weights (meaningless results)"
    )


def resolve_weights(config: BackboneConfig) -> tuple[Path, str, str]:
    """Find the weights file for ``config``: ``(path, source, resolved_by)``.

    ``source`` is ``"file"`` or ``"torchvision-cache"``; ``resolved_by`` says which rule chose
    it (``"config"``, ``"env:DPST_VGG_WEIGHTS"``, ``"hub-checkpoints"``, ``"download"``).
    Downloads torchvision's file into its cache if needed and allowed.
    """
    if config.weights is not None:
        path = Path(config.weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: VGG-19 weights file not found (--vgg-weights)")
        return path, "file", "config"
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: VGG-19 weights file not found ({ENV_WEIGHTS})")
        return path, "file", f"env:{ENV_WEIGHTS}"
    caffe = checkpoints_dir() / CAFFE_FILE
    if caffe.is_file():
        return caffe, "file", "hub-checkpoints"
    cached = checkpoints_dir() / TORCHVISION_FILE
    if cached.is_file():
        return cached, "torchvision-cache", "hub-checkpoints"
    if not config.download:
        raise _not_found("downloading disabled")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        # torchvision's own URL and cache file; the hash prefix in the name is checked.
        torch.hub.download_url_to_file(TORCHVISION_URL, str(cached), hash_prefix="dcbb9e9d")
    except Exception as err:  # any failure means "no weights", said in one line
        message = str(err).splitlines()[0] if str(err) else ""
        raise _not_found(f"download failed: {type(err).__name__} {message}".strip()) from None
    return cached, "torchvision-cache", "download"


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
    ``"random"``), ``path``, ``sha256`` (first 16 hex digits of the file's), ``format``,
    ``format_detected_by``, ``resolved_by``, ``preprocessing``, and ``seed`` for random.
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
    sha = file_sha256(path)
    weights, fmt, detected_by = read_conv_weights(path, sha, conv_channels(), config.format)
    model = VGG19Features(fmt)
    model.load_state_dict(weights)
    identity = {
        "name": "vgg19",
        "random": False,
        "source": source,
        "resolved_by": resolved_by,
        "path": str(path),
        "sha256": sha[:16],
        "format": fmt,
        "format_detected_by": detected_by,
        "preprocessing": fmt,
    }
    return model.to(device), identity
