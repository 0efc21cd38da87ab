"""Reading VGG-19 convolution weights from a state-dict file, and telling Caffe from torchvision.

Two files matter (both with torchvision's key layout ``features.N.weight``/``bias``, N the
layer's position in ``VGG19_LAYOUT``):

- torchvision's ImageNet VGG-19, ``vgg19-dcbb9e9d.pth`` (RGB in [0,1], mean/std normalised);
- the original Caffe VGG-19 converted by jcjohnson/pytorch-vgg, ``vgg19-d01eb7cb.pth``, the
  file PyTorch neural-style ports use (BGR, 0-255, mean pixel subtracted). Its classifier keys
  are ``classifier.1/.4/.6`` (the 2017 torchvision layout, Dropout first); neural-style-pt's
  download script renames them to ``classifier.0/.3/.6`` and keeps the file name, and
  recognises models by file name only.

So ``format="auto"`` decides, first rule that applies: the ``classifier.1.weight`` key (Caffe);
the file's SHA-256 prefix (d01eb7cb: Caffe, dcbb9e9d: torchvision); the file name
(``d01eb7cb`` or ``caffe``: Caffe, ``dcbb9e9d``: torchvision); otherwise torchvision, with a
warning saying how to override.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from dpst.errors import InputError

from .vgg_layout import VGG19_LAYER_INDEX

ENV_WEIGHTS = "DPST_VGG_WEIGHTS"
# Where the Caffe file is fetched from on first use; set it to a mirror (or, in tests, a
# loopback server). The file name must keep torch hub's hash prefix, which is checked.
ENV_URL = "DPST_VGG_URL"
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"
TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# ``--vgg-weights torchvision``: torchvision's file, only when asked for by this name.
TORCHVISION_NAME = "torchvision"
TORCHVISION_NOTE = (
    "torchvision's VGG-19 weights: the paper's loss weights were tuned for the Caffe VGG-19 "
    "and are not calibrated for these (another input scale and other activations)"
)
CAFFE_FILE = "vgg19-d01eb7cb.pth"
CAFFE_URL = "https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth"

_CAFFE_HINTS = ("d01eb7cb", "caffe")
_TORCHVISION_HINTS = ("dcbb9e9d",)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(path, weights_only=True)`` on the CPU, or a one-line InputError.

    Zip-format files (torch >= 1.6) are memory-mapped, so the ~400 MB classifier we ignore is
    never read; jcjohnson's 2017 file is in the legacy format and is read whole.
    """
    try:
        mmap = zipfile.is_zipfile(path)
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first = (str(err).splitlines() or [""])[0][:120]
        raise InputError(
            f"{path}: not a readable PyTorch state dict ({type(err).__name__}: {first})"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: not a state dict of tensors (got {type(obj).__name__})")
    return obj


def detect_format(state: dict, path: Path, sha256: str) -> tuple[str, str]:
    """``(format, rule)``: ``"caffe"``/``"torchvision"`` and which rule decided it."""
    if "classifier.1.weight" in state:
        return "caffe", "keys"
    if sha256.startswith(_CAFFE_HINTS[0]):
        return "caffe", "hash"
    if sha256.startswith(_TORCHVISION_HINTS[0]):
        return "torchvision", "hash"
    name = path.name.lower()
    if any(hint in name for hint in _CAFFE_HINTS):
        return "caffe", "filename"
    if any(hint in name for hint in _TORCHVISION_HINTS):
        return "torchvision", "filename"
    warnings.warn(
        f"{path}: cannot tell Caffe from torchvision VGG-19 weights; assuming torchvision "
        "preprocessing (set the backbone format to caffe if the file is the Caffe model)",
        UserWarning,
        stacklevel=3,
    )
    return "torchvision", "default"


def read_conv_weights(
    path: Path,
    sha256: str,
    channels: dict[str, tuple[int, int]],
    fmt: str = "auto",
) -> tuple[dict[str, torch.Tensor], str, str]:
    """The convolution weights up to conv5_1 under our layer names, the format and its rule.

    ``channels``: ``{conv name: (in, out)}`` in layout order, as from
    ``vgg_layout.conv_channels()``; the file's key for a conv is ``features.N`` with N its
    position in the layout (or ``N`` alone for a saved ``vgg.features``). Extra keys
    (classifier, deeper convs) are ignored; a missing or mis-shaped key is a one-line
    InputError.
    """
    state = load_state_dict_file(path)
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    weights: dict[str, torch.Tensor] = {}
    for name, (c_in, c_out) in channels.items():
        for param, shape in (("weight", (c_out, c_in, 3, 3)), ("bias", (c_out,))):
            key = f"{prefix}{VGG19_LAYER_INDEX[name]}.{param}"
            if key not in state:
                raise InputError(f"{path}: not a VGG-19 state dict: no key {key} ({name})")
            tensor = state[key]
            if tuple(tensor.shape) != shape:
                raise InputError(
                    f"{path}: {key} ({name}) has shape {tuple(tensor.shape)}, VGG-19 needs {shape}"
                )
            weights[f"{name}.{param}"] = tensor.float().clone()
    if fmt == "auto":
        fmt, rule = detect_format(state, path, sha256)
    else:
        rule = "given"
    return weights, fmt, rule
