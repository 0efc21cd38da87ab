"""What the fault tests share: the one-line error check and an injected full disk."""

from __future__ import annotations

import errno
import os


def one_line_error(capsys, code: int, *words: str) -> str:
    """The run exited 2 with one line on stderr, no traceback, naming each of ``words``."""
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def fill_disk_for(monkeypatch, part: str) -> None:
    """Writing a file whose path contains ``part`` fails as on a full disk, when its data is
    flushed (as a real one fails at the latest). Finds the file's path through /proc."""
    real = os.fsync

    def fsync(fd):
        if part in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
