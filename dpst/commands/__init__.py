"""The one command layer: every ``dpst`` subcommand, its flags, and how flags become configs.

One module per subcommand (``add_arguments(parser)`` and ``run(args) -> int``, nothing heavy
imported before ``run``), shared flag groups in :mod:`options`, and one resolution function,
:func:`resolve.resolve`: dataclass defaults, then ``--config FILE``, then the flags given.
The packages below (``optim_reference``, ``models``, ``data``, ``train``, ``serve``) are
plain libraries: they take config dataclasses and hold no argument parsing.
"""
