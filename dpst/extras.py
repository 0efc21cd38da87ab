"""Which install extra a missing module belongs to, for the one-line error of a command.

``pip install dpst`` is the core (one pass of the model on ONNX Runtime: ``dpst fast``,
``dpst look``, ``dpst demo``); the rest comes in extras (``pyproject.toml``'s
optional-dependencies). A command that reaches for a module of an extra that is not installed
ends in a ModuleNotFoundError; :func:`install_hint` turns it into the line that says what to
install, and :mod:`dpst.cli` prints it and exits 2 instead of a traceback. Torch-free and
import-light.
"""

from __future__ import annotations

from types import MappingProxyType

_OPTIMISER = frozenset({"torch", "torchvision", "kornia", "safetensors"})
_EXPORT = frozenset({"onnx", "onnxscript"})

# Extra -> the top-level modules dpst imports from the packages it adds (cv2 comes with
# albumentations; huggingface_hub with transformers, listed because dpst imports it too).
EXTRA_MODULES = MappingProxyType(
    {
        "optimiser": _OPTIMISER,
        "train": _OPTIMISER | _EXPORT | {"tensorboard", "albumentations", "cv2"},
        "serve": frozenset({"gradio"}),
        "video": frozenset({"av"}),
        "seg": frozenset({"torch", "transformers", "huggingface_hub"}) | _EXPORT,
    }
)

# The extra a command needs beyond the core (a command not named here needs none). A module
# missing for a command is named with the command's extra when that extra has it (dpst segment
# without torch: seg, which brings torch and transformers), else with the smallest extra that
# has it (dpst serve's Quality mode without torch: optimiser).
COMMAND_EXTRAS = MappingProxyType(
    {
        "stylize": "optimiser",
        "targets": "optimiser",
        "demo": "optimiser",  # --quality
        "segment": "seg",
        "data": "seg",  # pairs with segmenter masks
        "train": "train",
        "train-looks": "train",
        "eval": "train",
        "export": "train",
        "serve": "serve",
        "video": "video",
    }
)


def install_command(extra: str) -> str:
    """The shell command that installs ``extra`` (quoted for the shells that glob brackets)."""
    return f"pip install 'dpst[{extra}]'"


def extra_of(module: str, command: str | None = None) -> str | None:
    """The extra to install for top-level ``module`` (for ``command``), or None when no
    extra installs it."""
    own = COMMAND_EXTRAS.get(command or "")
    if own is not None and module in EXTRA_MODULES[own]:
        return own
    having = [name for name, modules in EXTRA_MODULES.items() if module in modules]
    return min(having, key=lambda name: len(EXTRA_MODULES[name]), default=None)


def install_hint(error: BaseException, command: str | None = None) -> str | None:
    """For a ModuleNotFoundError of a module that an extra installs: one line naming the
    module and the install command; None for anything else (a bug keeps its traceback). Only
    a missing top-level module counts: a submodule missing from an installed package (a broken
    install) is not a missing extra."""
    if not isinstance(error, ModuleNotFoundError) or not error.name or "." in error.name:
        return None
    module = error.name
    extra = extra_of(module, command)
    if extra is None:
        return None
    return f"{module} is not installed: {install_command(extra)}"
