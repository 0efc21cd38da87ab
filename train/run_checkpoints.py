"""A training run's two checkpoints, ``last.pt`` and ``prev.pt``, for both training loops.

Every save moves ``last.pt`` to ``prev.pt`` and writes the new one atomically, so a run
folder holds the last two checkpoints. A resume takes ``last.pt``; when that one cannot be
used (damaged on disk, cut short by a full disk, or missing because a kill fell between the
move and the write) it takes ``prev.pt`` and says so in one warning line. The next save then
overwrites the bad ``last.pt`` instead of moving it over the good ``prev.pt``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from dpst.errors import InputError
from dpst.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dpst.models.generator import Generator

LAST, PREVIOUS = "last.pt", "prev.pt"
T = TypeVar("T")


class RunStateError(InputError):
    """A loadable generator checkpoint whose ``extra`` is no training state of this kind."""


@dataclass
class Resumed(Generic[T]):
    """What a run resumes from: the file, its generator and its parsed training state."""

    path: Path
    model: Generator
    state: T


class RunCheckpoints:
    """``RUN/last.pt`` and ``RUN/prev.pt`` of one run folder.

    Args:
        parse: turns a checkpoint's ``extra`` into the loop's training state, or raises
            :class:`RunStateError` (e.g. another loop's checkpoint, an incomplete state).
    """

    def __init__(self, run_dir: str | Path, parse: Callable[[Path, Any], T]) -> None:
        self.run_dir = Path(run_dir)
        self.last, self.previous = self.run_dir / LAST, self.run_dir / PREVIOUS
        self._parse = parse
        self._last_is_bad = False

    def exists(self) -> bool:
        return self.last.exists() or self.previous.exists()

    def load(
        self, map_location: str | torch.device = "cpu", *, warn: bool = True
    ) -> Resumed[T] | None:
        """The newest usable checkpoint, None in a new run folder.

        Raises:
            InputError: neither checkpoint can be used (one line naming both and why).
        """
        problems: list[str] = []
        for path in (self.last, self.previous):
            if not path.exists():
                continue
            try:
                model, extra = load_checkpoint(path, map_location)
                resumed = Resumed(path, model, self._parse(path, extra))
            except CheckpointError as error:
                problems.append(error.problem)
                continue
            except RunStateError as error:
                problems.append(str(error))
                continue
            if path == self.previous:
                self._last_is_bad = self.last.exists()
                if warn:
                    why = problems[0] if problems else f"{self.last} is missing"
                    print(f"warning: {why}; resuming from {path}", file=sys.stderr, flush=True)
            return resumed
        if not problems:
            return None
        raise InputError(
            f"{'; '.join(problems)}; no usable checkpoint is left in {self.run_dir}: start "
            f"again in another --run-dir (or remove {LAST} and {PREVIOUS} to start over here)"
        )

    def save(self, model: Generator, extra: dict[str, Any]) -> None:
        """Keep the current ``last.pt`` as ``prev.pt`` (unless it was the bad one a resume
        fell back from), then write ``last.pt`` atomically."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.last.exists() and not self._last_is_bad:
            os.replace(self.last, self.previous)
        save_checkpoint(self.last, model, extra)
        self._last_is_bad = False
