"""The manifest: one content/style pair per line of a JSON Lines file (see ``data/README.md``).

    {"id": "chelsea__rocket", "content": "photos/chelsea.png", "style": "photos/rocket.png",
     "content_mask": "masks/chelsea.png", "style_mask": "masks/rocket.png"}

Relative paths are relative to the manifest's folder, so a manifest and its photos move
together. Reading never stops at a bad line: every problem is collected with its line number,
so ``dpst data check`` can list them all and ``dpst targets`` can skip them and go on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpst.errors import InputError

REQUIRED_KEYS = ("id", "content", "style")
PATH_KEYS = ("content", "style", "content_mask", "style_mask", "target")
OPTIONAL_KEYS = ("content_mask", "style_mask", "target", "meta")
# Ids name output files (``<id>.png``) on every platform: no separators, no leading dot.
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")
# A mask (or a target) may be stored at another resolution than its photo, but not with
# another shape: aspect ratios further apart than this mean the files do not belong together.
ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class Entry:
    """One pair. Paths are absolute (resolved against the manifest's folder)."""

    id: str
    content: Path
    style: Path
    content_mask: Path | None = None
    style_mask: Path | None = None
    target: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # 1-based line in the manifest it came from; 0 when built in memory

    @property
    def has_masks(self) -> bool:
        return self.content_mask is not None

    def to_json(self, base: Path | None = None) -> dict[str, Any]:
        """The manifest line, with paths relative to ``base`` when they lie under it."""
        out: dict[str, Any] = {"id": self.id}
        for key in PATH_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = _relative(value, base)
        if self.meta:
            out["meta"] = self.meta
        return out


@dataclass(frozen=True)
class Problem:
    """Something wrong with one manifest line (``id`` is None when the line has none)."""

    line: int
    message: str
    id: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" ({self.id})" if self.id else "")
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "error": self.message}


def _relative(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return Path(os.path.relpath(path, base)).as_posix()
        except ValueError:  # another drive on Windows
            pass
    return Path(path).as_posix()


def parse_line(text: str, line: int, base: Path) -> Entry:
    """One manifest line as an :class:`Entry`; raises ValueError saying what is wrong."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in obj]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        known = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {known})")
    pair_id = obj["id"]
    if not isinstance(pair_id, str) or not ID_PATTERN.fullmatch(pair_id):
        raise ValueError(
            f"id must be 1-200 characters from A-Z a-z 0-9 _ . - not starting with . or -, "
            f"got {pair_id!r}"
        )
    paths: dict[str, Path | None] = {}
    for key in PATH_KEYS:
        value = obj.get(key)
        if value is None:
            paths[key] = None
        elif isinstance(value, str) and value:
            # normpath: "../photos/a.png" from two manifests names one file, one key.
            paths[key] = Path(os.path.normpath(base / Path(value).expanduser()))
        else:
            raise ValueError(f"{key} must be a non-empty path string, got {value!r}")
    if paths["content"] is None or paths["style"] is None:
        raise ValueError("content and style must be paths, got null")
    if (paths["content_mask"] is None) != (paths["style_mask"] is None):
        raise ValueError("give content_mask and style_mask together, or neither")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"meta must be a JSON object, got {type(meta).__name__}")
    return Entry(pair_id, meta=meta, line=line, **paths)


def read_manifest(path: str | os.PathLike) -> tuple[list[Entry], list[Problem]]:
    """Parse every line; bad lines and repeated ids become problems, never exceptions.

    Blank lines are skipped. A missing or unreadable manifest file is an :class:`InputError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable manifest ({err})") from None
    base = path.resolve().parent
    entries: list[Entry] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            entry = parse_line(raw, number, base)
        except ValueError as err:
            problems.append(Problem(number, str(err)))
            continue
        if entry.id in first_line:
            problems.append(Problem(number, f"id repeats line {first_line[entry.id]}'s", entry.id))
            continue
        first_line[entry.id] = number
        entries.append(entry)
    return entries, problems


def write_manifest(path: str | os.PathLike, entries: Iterable[Entry]) -> None:
    """Write ``entries`` as JSON Lines (atomically), paths relative to the manifest's folder."""
    from dpst.imageio import atomic_write

    path = Path(path)
    base = path.resolve().parent
    lines = [json.dumps(e.to_json(base), ensure_ascii=False) for e in entries]
    data = ("\n".join(lines) + "\n" if lines else "").encode()
    atomic_write(path, lambda fh: fh.write(data))


def _image_size(path: Path, cache: dict[Path, tuple[int, int] | str]) -> tuple[int, int]:
    """(H, W) of an image file, decoded in full (a truncated file fails here, not later)."""
    if path not in cache:
        from dpst.imageio import open_image

        try:
            img = open_image(path)
            cache[path] = (img.height, img.width)
        except InputError as err:
            cache[path] = str(err)
    value = cache[path]
    if isinstance(value, str):
        raise InputError(value)
    return value


def _aspect_mismatch(a: tuple[int, int], b: tuple[int, int]) -> bool:
    ra, rb = a[1] / a[0], b[1] / b[0]
    return abs(ra - rb) > ASPECT_TOLERANCE * max(ra, rb)


def check_entry(entry: Entry, cache: dict[Path, tuple[int, int] | str] | None = None) -> list[str]:
    """Problems with an entry's files: missing, unreadable, or of mismatched shapes.

    ``cache`` (path -> size or error) lets many pairs that share photos decode each once.
    """
    cache = {} if cache is None else cache
    messages: list[str] = []
    sizes: dict[str, tuple[int, int]] = {}
    for key in PATH_KEYS:
        path = getattr(entry, key)
        if path is None:
            continue
        try:
            sizes[key] = _image_size(path, cache)
        except InputError as err:
            messages.append(f"{key}: {err}")
    for key, image in (("content_mask", "content"), ("style_mask", "style"), ("target", "content")):
        if key in sizes and image in sizes and _aspect_mismatch(sizes[key], sizes[image]):
            messages.append(
                f"{key} is {sizes[key][1]}x{sizes[key][0]} but {image} is "
                f"{sizes[image][1]}x{sizes[image][0]} (another aspect ratio)"
            )
    return messages


def check_manifest(
    path: str | os.PathLike, files: bool = True
) -> tuple[list[Entry], list[Problem]]:
    """Parse a manifest and (``files``) check every file it names.

    Returns the entries without problems and every problem, in line order.
    """
    entries, problems = read_manifest(path)
    if not files:
        return entries, problems
    good: list[Entry] = []
    cache: dict[Path, tuple[int, int] | str] = {}
    for entry in entries:
        messages = check_entry(entry, cache)
        problems.extend(Problem(entry.line, m, entry.id) for m in messages)
        if not messages:
            good.append(entry)
    problems.sort(key=lambda p: p.line)
    return good, problems
