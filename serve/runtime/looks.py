"""Looks (presets): a style photo encoded once, kept in one file, applied without the photo.

Torch-free (NumPy, Pillow). ``dpst look STYLE -o look.dpst`` writes one, ``dpst fast
--look look.dpst`` and ``dpst look export --look`` apply it; the demo calls
:func:`look_bytes` and :func:`read_look`.

File format ``dpst-look``, version 1: a zip archive holding

- ``manifest.json``: ``format`` ("dpst-look"), ``format_version`` (1), ``dpst_version``,
  ``model_id`` (the ``model_id`` of the ONNX model that encoded it: a look applies only with
  that model, since the code is its encoder's features), ``label_ids`` (the style mask's label
  ids in code order: label ``label_ids[i]`` of a content mask takes entry i of the code;
  ``null`` for a look made without masks), ``label_source`` (where those labels come from:
  ``"mask"``, a mask file; ``"segmenter groups"``, the segmenter's ADE20K groups of the style
  photo, so that ``dpst fast --look`` can segment a content alike; ``"weight-free"``, the
  weight-free regions of :mod:`dpst.labels.weight_free` (rest and the style's background,
  named by its role: ``sky`` or ``backdrop``), found alike in a content; ``null`` without
  labels), ``label_names`` (with ``"segmenter groups"`` or
  ``"weight-free"``: the name of each label id, in order),
  ``style`` (the style file's name, for people), ``code`` (the file of each style-code array,
  by name: ``style_mean`` ...);
- one NumPy ``.npy`` file per style-code array (float32, shapes as the model's inputs),
  read with ``allow_pickle=False``: a look file never runs code;
- ``thumbnail.jpg``: the style photo, at most :data:`THUMBNAIL_SIDE` px on the long side.

A damaged, truncated, foreign or newer file is refused with one line (InputError). The
label fields came after version 1 was first written and stay optional both ways: a file
without them reads as a look whose labels (if any) are a mask file's, as before; an older
dpst ignores them (its reader skips unknown keys) and reads any look as a mask file's.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dpst import __version__
from dpst.constants import DEFAULT_STRENGTH, UNLABELLED
from dpst.errors import InputError, first_line
from dpst.imageio import atomic_write, resize_long_side, to_uint8
from dpst.labels.numbering import keep_largest_labels, renumber
from dpst.labels.policy import orphan_target
from dpst.labels.regions import FROM_MASK_FILES, FROM_SEGMENTER, FROM_WEIGHT_FREE, ONE_REGION
from dpst.models.onnx_format import STYLE_CODE

LOOK_FORMAT = "dpst-look"
LOOK_FORMAT_VERSION = 1
LOOK_SUFFIX = ".dpst"
MANIFEST = "manifest.json"
THUMBNAIL = "thumbnail.jpg"
THUMBNAIL_SIDE = 256
# Real looks are tens of KB; a member claiming more is damage or a zip bomb.
MAX_MEMBER_BYTES = 16 << 20
# Where a look's labels come from (the manifest's ``label_source``).
LABELS_FROM_MASK = "mask"
LABELS_FROM_SEGMENTER = "segmenter groups"
LABELS_FROM_WEIGHT_FREE = FROM_WEIGHT_FREE
# The region source (dpst.labels.regions, as reports name it) of each label source.
REGION_SOURCES = {
    LABELS_FROM_MASK: FROM_MASK_FILES,
    LABELS_FROM_SEGMENTER: FROM_SEGMENTER,
    LABELS_FROM_WEIGHT_FREE: FROM_WEIGHT_FREE,
}
# The label source a look records for regions of each source (the inverse).
LABEL_SOURCES = {region: label for label, region in REGION_SOURCES.items()}
# Label sources whose labels have names a content's finder gives alike.
NAMED_SOURCES = (LABELS_FROM_SEGMENTER, LABELS_FROM_WEIGHT_FREE)


@dataclass(frozen=True)
class Look:
    """A style photo's encoding for one model.

    Attributes:
        code: the style code, float32 arrays in ``STYLE_CODE`` order (read-only).
        model_id: the model that encoded it.
        label_ids: the style mask's labels in code order (None: made without masks).
        thumbnail: the style photo as JPEG bytes.
        style_name: the style file's name ("" when unknown).
        dpst_version: the dpst that wrote it.
        label_source: where ``label_ids`` come from: ``LABELS_FROM_MASK``,
            ``LABELS_FROM_SEGMENTER``, ``LABELS_FROM_WEIGHT_FREE`` (or a later dpst's word,
            treated as a mask's); None without labels.
        label_names: with a source of ``NAMED_SOURCES``, the name of each of ``label_ids``.
    """

    code: tuple[np.ndarray, ...]
    model_id: str
    label_ids: tuple[int, ...] | None
    thumbnail: bytes
    style_name: str = ""
    dpst_version: str = __version__
    label_source: str | None = None
    label_names: tuple[str, ...] | None = None


def _thumbnail(style: np.ndarray) -> bytes:
    small = resize_long_side(style, min(THUMBNAIL_SIDE, max(style.shape[:2])))
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(small)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def encode_look(
    stylizer,
    style: np.ndarray,
    style_labels: np.ndarray | None = None,
    style_name: str = "",
    group_names: tuple[str, ...] | None = None,
    label_source: str = LABELS_FROM_SEGMENTER,
) -> Look:
    """Encode ``style`` (``(H, W, 3)`` in [0, 1]) with a :class:`FastStylizer
    <dpst.serve.runtime.stylizer.FastStylizer>`; ``style_labels``: its mask as read from a file
    (any label ids, -1 unlabelled), or None for one region. ``group_names``: when the labels
    were found (the segmenter's groups, or ``label_source`` ``LABELS_FROM_WEIGHT_FREE``), the
    name of each label id (label ``i`` is ``group_names[i]``); the look then records them, so
    that a content's are found alike."""
    from dpst.serve.runtime.stylizer import check_image

    style = check_image(style, "style")
    label_ids = source = label_names = None
    if style_labels is not None:
        style_labels = np.asarray(style_labels, dtype=np.int64)
        ids = np.unique(style_labels)
        ids = ids[ids != UNLABELLED]
        if len(ids) == 0:
            raise InputError("the style mask labels no pixel (every pixel is unlabelled)")
        if len(ids) > stylizer.max_labels:
            raise InputError(
                f"the style mask uses {len(ids)} labels but the model handles at most "
                f"{stylizer.max_labels}; merge some regions"
            )
        label_ids = tuple(int(i) for i in ids)
        style_labels = renumber(style_labels, ids)
        source = LABELS_FROM_MASK
        if group_names is not None:
            if ids[-1] >= len(group_names):
                raise InputError(f"group label {ids[-1]} has no name ({len(group_names)} given)")
            source = label_source
            label_names = tuple(str(group_names[i]) for i in label_ids)
    code = stylizer.encode_style(style, style_labels)
    return Look(
        code=tuple(code),
        model_id=str(stylizer.metadata["model_id"]),
        label_ids=label_ids,
        thumbnail=_thumbnail(style),
        style_name=style_name,
        label_source=source,
        label_names=label_names,
    )


def describe_regions(look: Look) -> str:
    """A look's regions in words (the command's report, the demo's status)."""
    if look.label_names is not None:
        weight_free = look.label_source == LABELS_FROM_WEIGHT_FREE
        kind = "weight-free regions" if weight_free else "segmenter groups"
        return f"{kind} {', '.join(look.label_names)}"
    if look.label_ids is not None:
        return f"mask labels {', '.join(str(i) for i in look.label_ids)}"
    return "one region"


def style_groups(
    groups: np.ndarray, names: tuple[str, ...], max_labels: int
) -> tuple[np.ndarray, str | None]:
    """A segmented style's group labels as a look keeps them: the ``max_labels`` largest
    (:func:`keep_largest_labels`), and a note naming the groups left out, or None."""
    labels, dropped = keep_largest_labels(groups, max_labels)
    if not dropped:  # their pixels leave the style's statistics; a content's go elsewhere
        return labels, None
    left = ", ".join(names[i] for i in dropped)
    return labels, f"the model takes {max_labels} regions; left out the smallest: {left}"


def look_to_bytes(look: Look) -> bytes:
    """The ``.dpst`` file's bytes."""
    manifest = {
        "format": LOOK_FORMAT,
        "format_version": LOOK_FORMAT_VERSION,
        "dpst_version": look.dpst_version,
        "model_id": look.model_id,
        "label_ids": None if look.label_ids is None else list(look.label_ids),
        "label_source": look.label_source,
        "label_names": None if look.label_names is None else list(look.label_names),
        "style": look.style_name,
        "code": {name: f"{name}.npy" for name in STYLE_CODE},
        "thumbnail": THUMBNAIL,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2) + "\n")
        for name, array in zip(STYLE_CODE, look.code, strict=True):
            npy = io.BytesIO()
            np.save(npy, np.asarray(array, dtype=np.float32), allow_pickle=False)
            archive.writestr(f"{name}.npy", npy.getvalue())
        archive.writestr(THUMBNAIL, look.thumbnail)
    return buffer.getvalue()


def write_look(path: str | os.PathLike, look: Look) -> Path:
    """Write ``look`` to ``path`` atomically; returns the path."""
    data = look_to_bytes(look)
    atomic_write(path, lambda fh: fh.write(data))
    return Path(path)


def look_bytes(
    stylizer,
    style: np.ndarray,
    style_labels: np.ndarray | None = None,
    style_name: str = "",
    group_names: tuple[str, ...] | None = None,
    label_source: str = LABELS_FROM_SEGMENTER,
) -> bytes:
    """The ``.dpst`` file of ``style`` for this stylizer (what the demo offers to download);
    arguments as :func:`encode_look`'s."""
    look = encode_look(stylizer, style, style_labels, style_name, group_names, label_source)
    return look_to_bytes(look)


def _read_bytes(path: str | os.PathLike, name: str) -> bytes:
    """The file's bytes; a file that cannot be read is said so (it is not "damaged")."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: a folder, not a look file") from None
    except OSError as err:
        raise InputError(f"{name}: cannot read ({err.strerror or err})") from None


def read_look(source: str | os.PathLike | bytes, name: str | None = None) -> Look:
    """A look from a ``.dpst`` file's path or bytes; InputError (one line) if it is not one,
    naming it ``name`` (default: its path, or "the look"; a server names an upload so, not by
    its temporary file)."""
    name = name or ("the look" if isinstance(source, bytes) else str(source))
    if not isinstance(source, bytes):
        source = _read_bytes(source, name)
    try:
        with zipfile.ZipFile(io.BytesIO(source)) as archive:
            return _parse(archive, name)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: a folder, not a look file") from None
    except zipfile.BadZipFile:
        raise InputError(f"{name}: not a dpst look file (not a zip archive)") from None
    except (OSError, EOFError, zipfile.LargeZipFile, NotImplementedError) as err:
        detail = " ".join(str(getattr(err, "strerror", None) or err).split())
        raise InputError(f"{name}: damaged look file ({type(err).__name__}: {detail})") from None


def _member(archive: zipfile.ZipFile, member: str, name: str) -> bytes:
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise InputError(f"{name}: damaged look file (no {member})") from None
    if info.file_size > MAX_MEMBER_BYTES:
        raise InputError(f"{name}: damaged look file ({member} claims {info.file_size} bytes)")
    try:
        return archive.read(member)  # checks the CRC: a flipped byte fails here
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        # A flipped byte in a compressed member fails the CRC, or the inflate itself first.
        raise InputError(f"{name}: damaged look file ({member}: {first_line(err)})") from None


def _parse(archive: zipfile.ZipFile, name: str) -> Look:
    try:
        manifest = json.loads(_member(archive, MANIFEST, name))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{name}: damaged look file (manifest is not JSON)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != LOOK_FORMAT:
        raise InputError(f"{name}: not a dpst look file (format {LOOK_FORMAT!r} expected)")
    version = manifest.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= LOOK_FORMAT_VERSION:
        raise InputError(
            f"{name}: look format version {version!r} (written by dpst "
            f"{manifest.get('dpst_version', '?')}); this dpst reads up to "
            f"{LOOK_FORMAT_VERSION}: upgrade dpst or make the look again"
        )
    model_id, labels = manifest.get("model_id"), manifest.get("label_ids")
    files = manifest.get("code")
    valid_labels = labels is None or (
        isinstance(labels, list)
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in labels)
        and labels == sorted(set(labels))
        and len(labels) > 0
    )
    if not isinstance(model_id, str) or not valid_labels or not isinstance(files, dict):
        raise InputError(f"{name}: damaged look file (manifest fields model_id, label_ids, code)")
    if set(files) != set(STYLE_CODE) or not all(isinstance(f, str) for f in files.values()):
        raise InputError(f"{name}: damaged look file (the style code is {STYLE_CODE})")
    source, names = _label_source(manifest, labels, name)
    code = tuple(_array(_member(archive, files[key], name), name, key) for key in STYLE_CODE)
    thumbnail = _member(archive, str(manifest.get("thumbnail", THUMBNAIL)), name)
    return Look(
        code=code,
        model_id=model_id,
        label_ids=None if labels is None else tuple(labels),
        thumbnail=thumbnail,
        style_name=str(manifest.get("style", "")),
        dpst_version=str(manifest.get("dpst_version", "?")),
        label_source=source,
        label_names=names,
    )


def _label_source(manifest: dict, labels: list | None, name: str):
    """``(label_source, label_names)`` of a manifest whose ``label_ids`` are ``labels``.

    A file from before these fields (or with ``null``) that has labels got them from a mask
    file, the only way such a look was made; a word this dpst does not know (a later one's)
    is kept and treated as a mask file's.
    """
    source, names = manifest.get("label_source"), manifest.get("label_names")
    if source is not None and not isinstance(source, str):
        raise InputError(f"{name}: damaged look file (manifest field label_source)")
    if labels is None:
        if source is not None:
            raise InputError(f"{name}: damaged look file (label_source {source!r} without labels)")
        return None, None
    if source not in NAMED_SOURCES:
        return source or LABELS_FROM_MASK, None
    valid_names = (
        isinstance(names, list)
        and len(names) == len(labels)
        and all(isinstance(n, str) and n for n in names)
    )
    if not valid_names:
        raise InputError(f"{name}: damaged look file (label_names, one per label id)")
    return source, tuple(names)


def _array(data: bytes, name: str, key: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # pickled objects are a ValueError here
        problem = " ".join(str(err).split())[:120]
        raise InputError(f"{name}: damaged look file ({key}: {problem})") from None
    if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim < 2:
        raise InputError(f"{name}: damaged look file ({key} is not a float32 array)")
    if not np.isfinite(array).all():
        raise InputError(f"{name}: damaged look file ({key} holds non-finite values)")
    array.flags.writeable = False
    return array


def check_model(look: Look, stylizer, name: str = "the look") -> None:
    """A look applies only with the model that encoded it; InputError otherwise."""
    model_id = str(stylizer.metadata["model_id"])
    if look.model_id != model_id:
        raise InputError(
            f"{name} was made with model {look.model_id}, not this one ({model_id}, "
            f"{stylizer.model_path}): make it again with dpst look STYLE --model "
            f"{stylizer.model_path}"
        )


def look_group_relation(look: Look, name: str = "the look") -> dict[int, tuple[int, ...]]:
    """The group relation table (:func:`dpst.models.ade20k.relation_ids`) for a look whose
    labels are the segmenter's groups; InputError if they are not this dpst's groups (a look
    made with another grouping would pair unlike regions)."""
    from dpst.models.ade20k import GROUP_NAMES, relation_ids

    ids, names = look.label_ids or (), look.label_names or ()
    ours = tuple(GROUP_NAMES[i] if i < len(GROUP_NAMES) else "?" for i in ids)
    if look.label_source != LABELS_FROM_SEGMENTER or ours != tuple(names):
        found = ", ".join(names) or "from a mask file"
        raise InputError(
            f"{name}: its labels ({found}) are not this dpst's segmenter groups: give "
            "--content-mask or --masks none, or make the look again with dpst look"
        )
    return relation_ids()


def look_regions(look: Look, name: str = "the look") -> tuple[str, dict | None]:
    """Where a content's regions come from for ``look`` (a region source: the segmenter, the
    weight-free finder, mask files, or one region) and, for segmenter groups, the groups'
    relation; InputError when the look's names are not this dpst's (a look made with another
    grouping would pair unlike regions)."""
    if look.label_ids is None:
        return ONE_REGION, None
    if look.label_source == LABELS_FROM_SEGMENTER:
        return FROM_SEGMENTER, look_group_relation(look, name)
    if look.label_source == LABELS_FROM_WEIGHT_FREE:
        from dpst.labels.weight_free import BACKGROUND, BACKGROUND_NAMES, NAMES, REST

        names = tuple(look.label_names or ())
        ours = tuple(look.label_ids) == (REST, BACKGROUND) and len(names) == 2
        if not (ours and names[0] == NAMES[REST] and names[1] in BACKGROUND_NAMES):
            raise InputError(
                f"{name}: its regions ({', '.join(look.label_names or ())}) are not this "
                "dpst's weight-free regions: give --content-mask or --masks none, or make the "
                "look again with dpst look"
            )
        return FROM_WEIGHT_FREE, None
    return FROM_MASK_FILES, None


def content_labels_for_look(
    look: Look,
    content: np.ndarray,
    content_labels: np.ndarray,
    relation: dict[int, tuple[int, ...]] | None = None,
):
    """A content mask as read from a file (any ids, -1 unlabelled) in the look's numbering.

    The paper's rule as :mod:`dpst.labels.one_pass` applies it: a content label the
    style has takes that label's look; one it lacks takes, first, the first label of
    ``relation[label]`` the look has (the segmenter groups' table, as
    :func:`~dpst.labels.policy.remap_orphans`), else the style region of the closest
    mean colour (the style's colours are the code's per-label colour means).
    """
    if look.label_ids is None:
        raise InputError(
            "this look was made without a style mask: drop --content-mask, or make the look "
            "again with --style-mask"
        )
    labels = np.asarray(content_labels, dtype=np.int64)
    ids = np.asarray(look.label_ids, dtype=np.int64)
    style_means = np.asarray(look.code[STYLE_CODE.index("style_colour_mean")][0, : len(ids)])
    out = renumber(labels, ids)
    pixels = np.asarray(content)
    # 8-bit photos, as dpst fast reads them, matched on the [0, 1] scale; only each orphan's
    # pixels are made float (a whole 50-megapixel photo in float64 is 1.2 GB).
    scale = 255.0 if pixels.dtype == np.uint8 else 1.0
    present = ids.tolist()
    colours = {label: style_means[i].astype(np.float64) for i, label in enumerate(present)}
    for orphan in sorted(set(np.unique(labels).tolist()) - set(present) - {UNLABELLED}):
        region = labels == orphan

        def colour(region=region):
            return (pixels[region].astype(np.float64) / scale).mean(axis=0)

        target = orphan_target(orphan, present, relation, colour, colours)
        out[region] = present.index(target)
    if not (out != UNLABELLED).any():
        raise InputError("the content mask labels no pixel (every pixel is unlabelled)")
    return out


def apply_look(
    stylizer,
    look: Look,
    content: np.ndarray,
    content_labels: np.ndarray | None = None,
    name: str = "the look",
    dtype=np.float32,
    strength: float = DEFAULT_STRENGTH,
    relation: dict[int, tuple[int, ...]] | None = None,
) -> np.ndarray:
    """``content`` in ``look`` (``(H, W, 3)`` in [0, 1], float32 or uint8 as ``dtype``);
    ``content_labels`` as read from a mask file or segmented (with the groups' ``relation``,
    :func:`look_group_relation`), or None for one region; ``strength`` of the look in [0, 2]
    (:meth:`FastStylizer.stylize`). Refuses a look of another model."""
    check_model(look, stylizer, name)
    if content_labels is not None:
        content_labels = content_labels_for_look(look, content, content_labels, relation)
    return stylizer.stylize_with_code(
        content, look.code, content_labels, dtype=dtype, strength=strength
    )
