"""Where a command writes: checked before any work, and the result kept if writing fails.

Every command that writes an image (``stylize``, ``fast``, ``demo``) or a model (``export``)
checks its outputs here first, so that a bad ``-o`` costs one line and exit status 2 instead
of hours of optimisation: the output must not be (through symlinks, ``./`` or hard links) one
of the command's input files, must not be a folder, must have one of the extensions of
:data:`dpst.image_formats.IMAGE_FORMATS` (the table :func:`dpst.imageio.write_image` writes
from and every ``-o`` help quotes), and its folder must exist or be creatable, and be
writable. Torch-free.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dpst import imageio
from dpst.errors import InputError, OutputError, first_line

Inputs = Mapping[str, "str | os.PathLike | None"]


def check_image_output(path: str | os.PathLike, inputs: Inputs, side_files: Iterable = ()) -> Path:
    """``path`` as a Path, once it is a writable image file that replaces no input.

    ``inputs`` maps what each input is ("content photo", "--config") to its path (None: not
    given); ``side_files`` are the other files written with it (its report), also checked
    against the inputs.
    """
    check_not_a_folder(path)
    out = Path(path)
    imageio.image_format(out)
    check_writable_folder(out.parent)
    check_no_clash([out, *side_files], inputs)
    return out


def check_output_folder(folder: Path, pattern: str, inputs: Inputs) -> None:
    """A folder of outputs named by ``pattern`` (a glob; snapshots, frames) can be written,
    and none of the files of that pattern already in it is an input: a run writes over its
    earlier outputs, never over a photo it was given (issue 25, item 1)."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"cannot create the folder {folder}: it is a file")
    check_writable_folder(folder)
    if folder.is_dir():
        check_no_clash(sorted(folder.glob(pattern)), inputs)


def check_output_dir(out_dir: Path, flag: str = "--out-dir") -> None:
    """A folder to write results in: a folder or nothing yet, and writable (or creatable)."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"{flag} {out_dir} is a file, not a folder")
    check_writable_folder(out_dir)


def check_not_a_folder(path: str | os.PathLike) -> None:
    # Checked on the text as given: Path("new/") drops the slash that says "a folder".
    # os.path.isdir, not Path.is_dir: a folder on the way that cannot be searched is then
    # check_writable_folder's one line, not a PermissionError.
    if os.path.isdir(path) or str(path).endswith(("/", os.sep)):
        raise InputError(f"{path} is a folder: name the output file (e.g. out.png in it)")


def check_writable_folder(folder: Path) -> None:
    """``folder`` exists or can be created, and a file can be created in it.

    Probed with a real temporary file rather than ``os.access``: access() says yes to root
    on a read-only mount, and knows nothing of a full quota.
    """
    existing = folder if str(folder) else Path(".")
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except PermissionError as err:  # a folder on the way cannot be searched (not as root)
        raise InputError(
            f"cannot reach {folder}: a folder on its way cannot be searched ({err.strerror})"
        ) from None
    if not existing.is_dir():
        raise InputError(f"cannot create the folder {folder}: {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(prefix=".dpst-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"cannot write in {existing} ({err.strerror or err})") from None


def check_no_clash(outputs: Iterable[Path], inputs: Inputs) -> None:
    """No output is one of the input files, however the two paths are spelled."""
    for out in outputs:
        for what, given in inputs.items():
            if given is not None and _same_file(out, Path(given)):
                # An input named by its path alone (a folder's photo) is said once.
                which = f"the {what} ({given})" if what != str(given) else f"the input {given}"
                raise InputError(f"{out} would replace {which}: choose another output path")


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:  # hard links: different names, one file
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


@contextmanager
def write_errors(*paths: str | os.PathLike) -> Iterator[None]:
    """A write of ``paths`` that fails (a full disk, a folder removed meanwhile) as one line,
    exit 2, rather than a traceback. For outputs written atomically (every one of dpst's), so
    that "nothing written" is true: a look, a LUT and its Hald CLUT, a video."""
    try:
        yield
    except OSError as err:
        named = " and ".join(str(p) for p in paths if p is not None)
        raise OutputError(
            f"could not write {named} ({err.strerror or first_line(err)}): nothing was written"
        ) from None


def write_image_or_rescue(out: Path, image, report: dict | None = None) -> None:
    """Write ``out`` (an array or a :class:`dpst.imageio.Photo`; and ``out.json`` when a
    report is given), atomically; if that fails after all (a full disk, a folder removed
    meanwhile), save them in the system temp folder (else the current one) and raise an
    OutputError saying where: hours of work are kept."""
    try:
        _write(out, image)
        if report is not None:
            imageio.write_json(out.with_name(out.name + ".json"), report)
    except OSError as err:
        saved = _rescue(out, image, report)
        where = f"saved as {saved} instead" if saved else "and no copy could be saved"
        raise OutputError(
            f"could not write {out} ({err.strerror or err}): the result is {where}"
        ) from None


def _rescue(out: Path, image, report: dict | None) -> Path | None:
    for folder in (tempfile.gettempdir(), os.getcwd()):
        try:
            fd, name = tempfile.mkstemp(prefix=f"dpst-{out.stem}-", suffix=out.suffix, dir=folder)
            os.close(fd)
            _write(name, image)
            if report is not None:
                imageio.write_json(name + ".json", report)
            return Path(name)
        except OSError:
            continue
    return None


def _write(path, image) -> None:
    """An array, or a :class:`dpst.imageio.Photo` (with its colour profile and EXIF data)."""
    if isinstance(image, imageio.Photo):
        imageio.write_photo(path, image)
    else:
        imageio.write_image(path, image)
