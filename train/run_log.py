"""What a training run logs into its folder, shared by both loops.

``metrics.jsonl`` holds one JSON object per logged step or validation, each with its
``step``; a resumed run first forgets the lines past its checkpoint (they are logged again).
TensorBoard gets a grid of content, style, output and target per logged batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dpst.imageio import atomic_write

SHOWN_SAMPLES = 4  # samples per TensorBoard image grid


def append_jsonl(path: Path, record: dict) -> None:
    """One line of JSON at the end of ``path``."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def drop_lines_after(path: Path, step: int) -> None:
    """Forget metrics logged after the checkpoint a run resumes from (they are redone)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
    data = "".join(line + "\n" for line in kept).encode()
    atomic_write(path, lambda fh: fh.write(data))


def image_grid(batch: dict, output: torch.Tensor) -> torch.Tensor:
    """Rows of content, style, output and target for the first samples of a batch."""
    from torchvision.utils import make_grid

    n = min(SHOWN_SAMPLES, output.shape[0])
    rows = [batch["content"][:n], batch["style"][:n], output[:n], batch["target"][:n]]
    return make_grid(torch.cat([r.detach().float().cpu() for r in rows]), nrow=n, padding=2)
