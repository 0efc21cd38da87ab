"""VGG-19's layer layout up to relu5_1, by name: no torch, no weights.

Layer names follow Caffe (``conv4_2``, ``relu4_2``, ``pool4``); indices appear in one place
only, the position of a layer in :data:`VGG19_LAYOUT`, which is also its index in
torchvision's ``vgg19().features`` and in the Caffe port's state dict (``features.N.*``).

Kept apart from the network (:mod:`vgg`) so that what only needs the layout (reading a
weights file, propagating masks through the layers) imports no network module.
"""

from __future__ import annotations


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


def conv_channels() -> dict[str, tuple[int, int]]:
    """``{conv name: (in_channels, out_channels)}`` for every convolution of the layout."""
    channels, c_in = {}, 3
    for name, kind in VGG19_LAYOUT:
        if kind == "conv":
            c_out = VGG19_BLOCK_CHANNELS[int(name[4]) - 1]
            channels[name] = (c_in, c_out)
            c_in = c_out
    return channels
