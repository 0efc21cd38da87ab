"""The cost of the two ADE20K segmenters considered for ``--masks auto``, without their weights.

SegFormer-B0 (``nvidia/segformer-b0-finetuned-ade-512-512``'s config) and UperNet-ConvNeXt-T
(``openmmlab/upernet-convnext-tiny``'s config) are built with random weights from
transformers' configs, exported to ONNX (opset 17) and timed on ONNX Runtime at 512x512,
one thread: parameters, ONNX file size and seconds per forward (median of ``--runs``).
Random weights cost what trained ones cost; only the labels are meaningless.

    python -m bench.segmenter_cost --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def segformer_b0(transformers):
    config = transformers.SegformerConfig(  # the b0 ADE20K config's architecture
        depths=[2, 2, 2, 2],
        hidden_sizes=[32, 64, 160, 256],
        decoder_hidden_size=256,
        num_labels=150,
    )
    return transformers.SegformerForSemanticSegmentation(config)


def upernet_convnext_tiny(transformers):
    backbone = transformers.ConvNextConfig(
        depths=[3, 3, 9, 3],
        hidden_sizes=[96, 192, 384, 768],
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = transformers.UperNetConfig(
        backbone_config=backbone, hidden_size=512, num_labels=150, use_auxiliary_head=True
    )
    return transformers.UperNetForSemanticSegmentation(config)


class _Logits:  # pixel_values -> logits, as the exported graphs are
    def __new__(cls, model):
        import torch

        class Wrap(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixel_values):
                return self.model(pixel_values=pixel_values).logits

        return Wrap().eval()


def measure(name: str, model, size: int, runs: int, folder: Path) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch

    params = sum(p.numel() for p in model.parameters())
    path = folder / f"{name}.onnx"
    x = torch.rand(1, 3, size, size)
    exporter = "torchscript"
    with torch.no_grad():
        try:
            torch.onnx.export(
                _Logits(model.eval()), (x,), str(path), input_names=["pixel_values"],
                output_names=["logits"], opset_version=17, dynamo=False,
            )  # fmt: skip
        except Exception:  # UperNet's pooling pyramid (1, 2, 3, 6 bins of 16x16): torch.export
            exporter = "dynamo"
            torch.onnx.export(
                _Logits(model.eval()), (x,), str(path), input_names=["pixel_values"],
                output_names=["logits"], opset_version=18, dynamo=True, external_data=False,
            )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"pixel_values": np.random.default_rng(0).random((1, 3, size, size), np.float32)}
    out = session.run(None, feed)[0]  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return {
        "model": name,
        "parameters_m": round(params / 1e6, 2),
        "onnx_mb": round(path.stat().st_size / 1e6, 1),
        "exporter": exporter,
        "logits": list(out.shape),
        "seconds_per_forward": round(statistics.median(times), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    import torch
    import transformers

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (
            ("segformer-b0-ade", segformer_b0),
            ("upernet-convnext-tiny-ade", upernet_convnext_tiny),
        ):
            print(json.dumps(measure(name, build(transformers), args.size, args.runs, Path(tmp))))


if __name__ == "__main__":
    main()
