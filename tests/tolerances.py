"""One tolerance table keyed by dtype, for comparisons against float64 oracles."""

import torch

# (rtol, atol) for elementwise comparisons of results computed in the given dtype.
DTYPE_TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-6),
}
