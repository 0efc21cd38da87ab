"""A look applied to a whole folder of photos: resumable, bad files listed, memory flat.

Torch-free (the one-pass runtime's path). ``dpst fast FOLDER STYLE --out-dir OUT`` is a thin
layer over :func:`run_folder`; a notebook can call it with any ``stylize`` function that maps
8-bit pixels to 8-bit pixels.

- Outputs keep their photo's name (and so its format) in ``out_dir``; a photo whose format
  cannot be written (a GIF) gets a ``.png``.
- A photo whose output exists is skipped, so a rerun after an interruption or a crash does only
  what is left (writes are atomic: an output is whole or absent). ``out_dir/dpst-fast.json``
  records what made the outputs (style, model, masks); a rerun with other settings is refused
  in one line rather than mixing two looks in one folder. Its ``photos`` entry holds what the
  stylize function said of each photo written (``dpst fast``: the regions used and their
  source), kept across reruns.
- A photo that cannot be read or written is listed and skipped; the others are done.
- One run at a time writes a folder (:func:`folder_lock`: ``dpst-fast.lock`` holds the
  writer's process id under an OS lock that dies with it, so a killed run's lock is stale at
  once); the record is checked and the temporaries a killed run left are removed under it.
- Photos are read one ahead and written behind on worker threads (Pillow releases the GIL),
  so decoding and encoding overlap the model's work; at most three photos are in memory.
"""

from __future__ import annotations

import errno
import glob
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dpst.errors import DpstError, InputError, OutputError, first_line
from dpst.image_formats import IMAGE_FORMATS
from dpst.imageio import Photo, atomic_write, read_photo, write_photo

RECORD_FILE = "dpst-fast.json"
LOCK_FILE = "dpst-fast.lock"
RECORD_FORMAT = "dpst-fast-folder"
# A changed setting is shown with its old and new values when they are this short together.
SHOWN_VALUE_CHARS = 40
# Extensions taken from a folder (what Pillow reads and photographers keep); a glob takes
# whatever it matches.
PHOTO_SUFFIXES = frozenset({*IMAGE_FORMATS, ".gif"})
FALLBACK_SUFFIX = ".png"
GLOB_CHARACTERS = frozenset("*?[")
# Write errors of the folder, not of one photo: the run stops at the first.
FOLDER_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


@dataclass
class FolderReport:
    """What :func:`run_folder` did, photo by photo (paths of the inputs)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs already there
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (photo, one-line reason)
    # What ``stylize`` said of each photo written (its regions), by output file name.
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)


def is_many(spec: str) -> bool:
    """Whether a CONTENT argument names several photos (a folder or a glob pattern)."""
    if not spec.strip():  # Path("") is the current folder, which no one named
        raise InputError("CONTENT is empty: name a photo, a folder or a quoted glob")
    return os.path.isdir(spec) or bool(GLOB_CHARACTERS & set(spec))


def content_files(spec: str) -> list[Path]:
    """The photos a folder holds (by extension, not recursive) or a glob matches, sorted."""
    if not spec.strip():  # as in is_many
        raise InputError("CONTENT is empty: name a photo, a folder or a quoted glob")
    if os.path.isdir(spec):
        try:
            found = [p for p in Path(spec).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES]
        except OSError as err:
            raise InputError(f"cannot read the folder {spec} ({err.strerror or err})") from None
    else:
        found = [Path(p) for p in glob.glob(spec, recursive=True)]
    # A broken symlink is kept, to be listed as failed: silently leaving out a photo the
    # user named is how one goes missing from a delivery.
    files = sorted(
        p for p in found if (p.is_file() or p.is_symlink()) and not p.name.startswith(".")
    )
    if not files:
        raise InputError(f"{spec}: no photos found")
    return files


def output_path(photo: Path, out_dir: Path) -> Path:
    """Where a photo's result goes: its name in ``out_dir`` (``.png`` if unwritable)."""
    if photo.suffix.lower() in IMAGE_FORMATS:
        return out_dir / photo.name
    return out_dir / (photo.stem + FALLBACK_SUFFIX)


def output_paths(photos: Iterable[Path], out_dir: Path) -> list[Path]:
    """:func:`output_path` of every photo; InputError when two would share a name (photos of
    one name in different folders, from a recursive glob), which would skip one as done."""
    outputs, seen = [], {}
    for photo in photos:
        out = output_path(photo, out_dir)
        key = out.name.lower()  # apart on this file system, maybe one on the user's next
        if key in seen:
            raise InputError(
                f"{seen[key]} and {photo} would both be written as {out}: give photos of "
                "different names, or run each folder into its own --out-dir"
            )
        seen[key] = photo
        outputs.append(out)
    return outputs


def _change(name: str, old: Any, new: Any) -> str:
    """``name old -> new``, or the name alone when a value is long (a style's digest)."""
    if len(repr(old)) + len(repr(new)) > SHOWN_VALUE_CHARS:
        return f"{name} differs"
    return f"{name} {old!r} -> {new!r}"


def check_record(
    out_dir: Path, settings: dict[str, Any], defaults: dict[str, Any] | None = None
) -> None:
    """Refuse an ``out_dir`` whose results another style, model or setting made; record
    ``settings`` when it has none. ``defaults``: the values to assume for settings a record
    lacks (one written before those settings existed, whose results used their defaults)."""
    path = out_dir / RECORD_FILE
    record = {"format": RECORD_FORMAT, "settings": settings}
    if path.is_file():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8")).get("settings")
            earlier = {**(defaults or {}), **(earlier or {})}
        except (OSError, ValueError, AttributeError, TypeError):
            raise InputError(f"{path}: unreadable; remove it to start this folder again") from None
        changed = sorted(k for k in {*settings, *earlier}
                         if earlier.get(k) != settings.get(k))  # fmt: skip
        if changed:
            said = "; ".join(_change(k, earlier.get(k), settings.get(k)) for k in changed)
            raise InputError(
                f"{out_dir} holds results made with other settings ({said}): give another "
                f"--out-dir, or remove {path.name} and the results"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, indent=2) + "\n").encode()
    try:
        atomic_write(path, lambda fh: fh.write(data))
    except OSError as err:
        raise OutputError(f"could not write in {out_dir} ({err.strerror or err}): nothing "
                          "written; make room and run again") from None  # fmt: skip


@contextmanager
def folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s lock for the block, or raise a one-line InputError naming the
    process that holds it.

    An advisory ``flock`` on ``dpst-fast.lock``, which the kernel drops when its holder dies
    (``kill -9``, a crash): a lock file left behind is then free, never stale. The file holds
    the holder's process id, for the message. Where ``fcntl`` is missing (Windows) the block
    runs unlocked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InputError(
                f"{out_dir} is being written by another dpst fast (process {holder}): wait "
                "for it to end, or give another --out-dir"
            ) from None
        # The holder before us may have removed the file between our open and our lock:
        # then we locked a name no one else sees, so start again on the current file.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
            break
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # a full disk: the lock holds all the same, only its message lacks the id
        yield
    finally:
        path.unlink(missing_ok=True)  # before the unlock: a waiter then sees a new file
        os.close(fd)


def remove_temporaries(out_dir: Path, names: Iterable[str]) -> list[Path]:
    """Remove the hidden temporaries (``.NAME.*.tmp``, :func:`dpst.imageio.atomic_write`'s)
    that a run killed mid-write left for these output names; only under the folder's lock,
    when no other run can be writing them."""
    removed = []
    for name in names:
        for tmp in out_dir.glob(f".{glob.escape(name)}.*.tmp"):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass  # not ours to worry about: the run goes on
    return removed


def run_folder(
    photos: Iterable[Path],
    out_dir: str | os.PathLike,
    stylize: Callable[[np.ndarray], np.ndarray | tuple[np.ndarray, dict[str, Any]]],
    progress: Callable[[Path, str], None] | None = None,
    settings: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> FolderReport:
    """Stylise every photo into ``out_dir``, skipping those already done.

    Args:
        photos: input paths (see :func:`content_files`).
        stylize: 8-bit ``(H, W, 3)`` pixels -> 8-bit pixels of the same size, or ``(pixels,
            notes)``: a JSON-ready dict recorded under the output's name in the record's
            ``photos`` once the output is written (:func:`record_notes`).
        progress: called after each photo with its path and "done", "skipped" or "failed".
        settings, defaults: what made the results, checked against the folder's record (and
            recorded) by :func:`check_record` under the folder's lock, so that two runs
            started together cannot both pass the check and mix their results.

    The folder is locked for the run (:func:`folder_lock`: another run at once is refused in
    one line) and the temporaries of a killed run are removed first. Only errors of the photo
    itself (unreadable, unwritable: :class:`DpstError`, OSError) are listed and skipped;
    anything else (a broken model, Ctrl-C) stops the run, and the photos written so far stay.
    """
    out_dir = Path(out_dir)
    photos = list(photos)
    outputs = output_paths(photos, out_dir)  # no two photos onto one file
    with folder_lock(out_dir):
        if settings is not None:
            check_record(out_dir, settings, defaults)
        remove_temporaries(out_dir, [RECORD_FILE, *(out.name for out in outputs)])
        report = FolderReport()
        try:
            _run_locked(photos, out_dir, stylize, progress, report)
        finally:  # also after Ctrl-C or a full disk: the photos written keep their notes
            if settings is not None and report.notes:
                record_notes(out_dir, report.notes)
        return report


def record_notes(out_dir: Path, notes: dict[str, dict[str, Any]]) -> None:
    """Add ``notes`` (output name -> dict) to the record's ``photos``, rewritten atomically;
    under the folder's lock. Best effort: the results are written already, and a record that
    cannot be rewritten (a full disk) keeps its settings, which is what guards the folder."""
    path = out_dir / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["photos"] = {**record.get("photos", {}), **notes}
        data = (json.dumps(record, indent=2) + "\n").encode()
        atomic_write(path, lambda fh: fh.write(data))
    except (OSError, ValueError, AttributeError, TypeError):
        pass


def _run_locked(photos, out_dir: Path, stylize, progress, report: FolderReport) -> None:
    todo = []
    for photo in photos:
        out = output_path(photo, out_dir)
        if out.is_dir():  # not a result: it would be "already there" for ever
            report.failed.append((photo, f"{out} is a folder, not a result: rename it"))
            _tell(progress, photo, "failed")
        elif out.exists():
            report.skipped.append(photo)
            _tell(progress, photo, "skipped")
        else:
            todo.append(photo)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dpst-io") as pool:
        writing: list[tuple[Path, Future, dict | None]] = []
        try:
            _stylize_all(todo, out_dir, stylize, progress, report, pool, writing)
        except BaseException:
            # Ctrl-C or a broken model: the writes under way finish (the pool waits for
            # them), and those that succeed keep their notes.
            for photo, future, notes in writing:
                if future.exception() is None and notes is not None:
                    report.notes[output_path(photo, out_dir).name] = notes
            raise


def _stylize_all(todo, out_dir, stylize, progress, report, pool, writing) -> None:
    """Read ahead, stylise and queue each write; ``writing`` holds the writes under way."""
    reading = pool.submit(read_photo, todo[0]) if todo else None
    for index, photo in enumerate(todo):
        current = reading
        reading = pool.submit(read_photo, todo[index + 1]) if index + 1 < len(todo) else None
        try:
            source = current.result()
            pixels = stylize(source.pixels)
        except (DpstError, OSError) as error:
            report.failed.append((photo, first_line(error)))
            _tell(progress, photo, "failed")
            continue
        pixels, notes = pixels if isinstance(pixels, tuple) else (pixels, None)
        result = Photo(pixels, source.icc_profile, source.exif)
        out = output_path(photo, out_dir)
        writing.append((photo, pool.submit(write_photo, out, result), notes))
        writing = _collect(writing, report, progress, 1, out_dir)
    _collect(writing, report, progress, 0, out_dir)


def _collect(writing, report: FolderReport, progress, keep: int, out_dir: Path):
    """Wait for all but the last ``keep`` writes, recording each outcome."""
    while len(writing) > keep:
        photo, future, notes = writing.pop(0)
        try:
            future.result()
        except OSError as error:
            if error.errno in FOLDER_FULL:
                # Every photo after would fail alike: stop, and say what is kept.
                raise OutputError(
                    f"could not write in {out_dir} ({error.strerror}): {len(report.done)} "
                    "written and kept; make room and run again to do the rest"
                ) from None
            report.failed.append((photo, first_line(error)))
            _tell(progress, photo, "failed")
        except DpstError as error:
            report.failed.append((photo, first_line(error)))
            _tell(progress, photo, "failed")
        else:
            report.done.append(photo)
            if notes is not None:
                report.notes[output_path(photo, out_dir).name] = notes
            _tell(progress, photo, "done")
    return writing


def _tell(progress, photo: Path, outcome: str) -> None:
    if progress is not None:
        progress(photo, outcome)
