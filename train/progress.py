"""A progress bar over the pairs that every rank finished, for rank 0 to show.

The ranks share nothing while they work but their log files (one line per finished pair),
so rank 0 polls those from a thread instead of the ranks talking to each other per pair.
"""

from __future__ import annotations

import threading
from pathlib import Path


class LogProgress:
    """Counts the lines of ``<stem>.rank*.jsonl`` files into a tqdm bar of ``total``."""

    POLL_SECONDS = 0.5

    def __init__(self, stem: Path, total: int, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.stem = stem
        self.bar = tqdm(total=total, unit="pair", disable=not enabled, dynamic_ncols=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        if enabled:
            self._thread.start()

    def _count(self) -> int:
        folder, prefix = self.stem.parent, self.stem.name
        n = 0
        for path in folder.glob(f"{prefix}.rank*.jsonl"):
            try:
                n += path.read_bytes().count(b"\n")
            except OSError:
                pass
        return n

    def _poll(self) -> None:
        while not self._stop.wait(self.POLL_SECONDS):
            self.refresh()

    def refresh(self) -> None:
        n = min(self._count(), self.bar.total)
        if n > self.bar.n:
            self.bar.update(n - self.bar.n)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.refresh()
        self.bar.close()
