"""The ADE20K segmenter on ONNX Runtime: NumPy, Pillow and onnxruntime only, no torch.

One ONNX file maps ``pixel_values (B,3,H,W)`` to ``logits (B,classes,h,w)`` (Hugging Face's
exports: Xenova's Transformers.js builds, and :mod:`dpst.models.segmenter_export`'s).
:class:`OnnxSegmenter` prepares a photo as :func:`dpst.models.segformer.preprocess` does
(antialiased bilinear resize to the model's square input, as Pillow's, then ImageNet mean and
std), upsamples the logits bilinearly to the photo's size before the argmax, keeping only the
classes that can win (:func:`candidate_classes`, as :func:`dpst.models.segmenter.upsample_argmax`),
and groups ADE20K's classes as the torch path does (:mod:`dpst.models.ade20k`). So both paths
give the same labels for the same weights (tested on a tiny SegFormer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dpst.errors import WeightsNotFoundError
from dpst.hashing import file_sha256
from dpst.models.ade20k import ADE20K_CLASSES, GROUP_NAMES, class_to_group_table
from dpst.models.segmenter_download import SegmenterFile

# Metadata keys written by the exporter (a file without them is read with its table entry's
# preprocessing and ADE20K's classes).
META_ID2LABEL = "id2label"
META_INPUT_SIZE = "input_size"
META_MEAN = "image_mean"
META_STD = "image_std"
META_SOURCE = "source"


def preprocess(image: np.ndarray, size: tuple[int, int], mean, std) -> np.ndarray:
    """``(H,W,3)`` float in [0,1] (or uint8) -> ``(1,3,*size)`` float32 network input.

    Each channel is resized in 32-bit float by Pillow (bilinear, antialiased when shrinking:
    what the image processor and the torch path's ``antialias=True`` do).
    """
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / np.float32(255)
    height, width = size
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F").resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(3)
    ]
    x = np.stack(chans, axis=0)
    x = (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[
        :, None, None
    ]
    return x[None].astype(np.float32)


def linear_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(i0, i1, w1)`` of bilinear resampling along one axis, ``align_corners=False``
    (:func:`dpst.models.segmenter.linear_taps` in NumPy)."""
    dst = np.arange(out_size, dtype=np.float64)
    src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


def candidate_classes(logits: np.ndarray) -> np.ndarray:
    """The classes of ``(C,h,w)`` logits that can win the argmax anywhere after bilinear
    upsampling (:func:`dpst.models.segmenter.candidate_classes` in NumPy)."""
    pad = np.pad(logits.astype(np.float32), ((0, 0), (0, 1), (0, 1)), mode="edge")
    corners = (pad[:, :-1, :-1], pad[:, 1:, :-1], pad[:, :-1, 1:], pad[:, 1:, 1:])
    hi = np.maximum.reduce(corners)
    lo = np.minimum.reduce(corners)
    floor = lo.max(axis=0, keepdims=True)
    margin = 1e-5 * (1.0 + np.abs(floor))
    return np.flatnonzero((hi >= floor - margin).reshape(len(logits), -1).any(axis=1))


def upsample_argmax(logits: np.ndarray, size: tuple[int, int], chunk: int = 16) -> np.ndarray:
    """``(C,h,w)`` logits bilinearly upsampled to ``size`` = (H, W), then argmax: ``(H,W)``
    int64. Only the classes that can win are upsampled, ``chunk`` at a time (memory stays at
    a few ``chunk``-plane arrays), each as torch's bilinear kernel weighs its two taps along
    a row, then along a column; ties go to the lower class, as ``argmax`` does."""
    keep = candidate_classes(logits)
    r0, r1, wy1 = linear_taps(size[0], logits.shape[1])
    c0, c1, wx1 = linear_taps(size[1], logits.shape[2])
    wy0, wx0 = (1 - wy1)[None, :, None], (1 - wx1)[None, None, :]
    wy1, wx1 = wy1[None, :, None], wx1[None, None, :]
    best = np.full(size, -np.inf, np.float32)
    labels = np.zeros(size, np.int64)
    for start in range(0, len(keep), chunk):
        ids = keep[start : start + chunk]
        sub = logits[ids].astype(np.float32)
        cols = np.take(sub, c0, axis=2)  # (k, h, W): w0 * left + w1 * right, in place
        cols *= wx0
        cols += wx1 * np.take(sub, c1, axis=2)
        up = np.take(cols, r0, axis=1)  # (k, H, W): w0 * top + w1 * bottom
        up *= wy0
        up += wy1 * np.take(cols, r1, axis=1)
        for k, plane in zip(ids, up, strict=True):  # ascending: a tie keeps the lower class
            better = plane > best
            np.maximum(best, plane, out=best)
            labels[better] = k
    return labels


class OnnxSegmenter:
    """A segmenter ONNX file loaded on ONNX Runtime: photos -> ADE20K classes and groups."""

    group_names = GROUP_NAMES

    def __init__(
        self, path: str | Path, spec: SegmenterFile, origin: str, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.spec = spec
        self.sha256 = file_sha256(self.path)
        # An export made here carries its own digest beside it; a download, the table's.
        expected = _sidecar_sha256(self.path) or spec.sha256
        if expected is not None and self.sha256 != expected:
            raise WeightsNotFoundError(
                f"{self.path}: SHA-256 {self.sha256[:16]}... is not the pinned {expected[:16]}..."
                " (damaged or replaced; delete it and run again to fetch it)"
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime's own errors: a damaged or foreign file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise WeightsNotFoundError(
                f"{self.path}: not a segmenter ONNX file ({first})"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.input_name = self.session.get_inputs()[0].name
        self.size = (
            tuple(json.loads(meta[META_INPUT_SIZE])) if META_INPUT_SIZE in meta else spec.input_size
        )
        self.mean = tuple(json.loads(meta[META_MEAN])) if META_MEAN in meta else spec.mean
        self.std = tuple(json.loads(meta[META_STD])) if META_STD in meta else spec.std
        if META_ID2LABEL in meta:
            id2label = json.loads(meta[META_ID2LABEL])
            names = tuple(str(id2label[str(i)]).strip() for i in range(len(id2label)))
        else:
            names = ADE20K_CLASSES
        self.class_names = names
        self.class_to_group = class_to_group_table(names)
        self.origin = origin

    def predict(self, image: np.ndarray) -> np.ndarray:
        """ADE20K class labels ``(H,W)`` int64 of an ``(H,W,3)`` photo, at its size."""
        x = preprocess(image, self.size, self.mean, self.std)
        logits = self.session.run(None, {self.input_name: x})[0][0]
        if logits.shape[0] != len(self.class_names):
            raise WeightsNotFoundError(
                f"{self.path}: {logits.shape[0]} classes out, not ADE20K's {len(self.class_names)}"
            )
        return upsample_argmax(logits, image.shape[:2])

    def predict_groups(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class labels and group labels of a photo, both ``(H,W)`` int64."""
        classes = self.predict(image)
        return classes, self.class_to_group[classes]

    def image_groups(self, image: np.ndarray, long_side: int) -> np.ndarray:
        """Group labels at the photo's size, segmented on a copy of at most ``long_side`` px
        (as :func:`dpst.models.auto_labels.image_groups_resized` does on the torch path)."""
        from dpst.imageio import resize_long_side
        from dpst.labels.mask_files import resize_labels

        small = resize_long_side(image, min(long_side, max(image.shape[:2])))
        _, groups = self.predict_groups(small)
        return resize_labels(groups, image.shape[:2])

    def describe(self) -> dict[str, Any]:
        """What produced the labels, for reports."""
        return {
            "backend": "segformer-onnx",
            "model": self.spec.model,
            "weights_from": self.origin,
            "weights_file": str(self.path),
            "weights_sha256": self.sha256,
            "licence": self.spec.licence,
            "input_size": list(self.size),
            "runtime": "onnxruntime",
        }


def _sidecar_sha256(path: Path) -> str | None:
    """The digest in ``PATH.sha256`` (``sha256sum`` format, as the exporter writes), if any."""
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return None
    text = sidecar.read_text().split()
    return text[0] if text else None
