"""dpst: photorealistic style transfer (Deep Photo Style Transfer, Luan et al., CVPR 2017).

The installed package maps the repository's folders to subpackages:
``dpst.optim_reference`` (the paper's optimiser), ``dpst.models`` (networks used at
inference), ``dpst.data``, ``dpst.train`` and ``dpst.serve``. This top-level package holds
only what all of them share and that needs no torch: the version, errors, constants, image
I/O, config layering, and the one command layer (:mod:`dpst.commands`, dispatched by
:mod:`dpst.cli`), the only place where arguments are parsed.
"""

__version__ = "0.1.0"

# Before any library that phones home on import (albumentations, Gradio) can be imported
# through dpst: see dpst.network. setdefault only, so a user's own setting wins.
from dpst import network as _network

_network.apply_defaults()
