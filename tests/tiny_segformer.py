"""A tiny SegFormer with random weights, saved in Hugging Face's format, for fast tests.

It has ADE20K's 150 class names, so it goes through exactly the loading and grouping path of
the real ``nvidia/segformer-b0-finetuned-ade-512-512``; only its sizes are small.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dpst.models.ade20k import ADE20K_CLASSES


def save_tiny_segformer(folder: Path, input_size: int | None = 64, seed: int = 0) -> Path:
    """Write config.json + model.safetensors (+ preprocessor_config.json) into ``folder``.

    ``input_size`` None writes no preprocessor config, so the 512 px default applies.
    """
    transformers = pytest.importorskip("transformers")
    # Hugging Face's ADE20K SegFormers spell class 7 "bed " (trailing space); so do we.
    id2label = {i: ("bed " if name == "bed" else name) for i, name in enumerate(ADE20K_CLASSES)}
    config = transformers.SegformerConfig(
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 1],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        num_labels=len(ADE20K_CLASSES),
        id2label=id2label,
        label2id={name: i for i, name in id2label.items()},
    )
    torch.manual_seed(seed)
    model = transformers.SegformerForSemanticSegmentation(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if input_size is not None:
        prep = {
            "image_processor_type": "SegformerImageProcessor",
            "size": {"height": input_size, "width": input_size},
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
        }
        (folder / "preprocessor_config.json").write_text(json.dumps(prep))
    return folder
