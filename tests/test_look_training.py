"""Training on looks: the loss falls, a resumed run continues exactly, bad files are skipped."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from dpst.cli import main as dpst_main
from dpst.data.look_pairs import LookPairConfig
from dpst.errors import InputError
from dpst.imageio import write_image
from dpst.models.generator import GeneratorConfig
from dpst.train.look_loss import LookLossWeights, look_loss, statistics_distance, to_lab
from dpst.train.look_training import LookTrainConfig, train_looks
from tests.conftest import sample_photo

TINY_MODEL = GeneratorConfig(
    working_size=32, grid_size=4, luma_bins=4, max_labels=4, encoder_widths=(4, 8, 8),
    head_width=8, global_levels=1, guide_hidden=4,
)  # fmt: skip
TINY = LookTrainConfig(
    steps=6, batch_size=2, lr=3e-3, warmup_steps=1, photo_side=64, validation_fraction=0.6,
    val_pairs=2, val_size=32, val_every=3, checkpoint_every=2, log_every=1, image_every=0,
    num_workers=0, threads=1, model=TINY_MODEL,
    pairs=LookPairConfig(size=32, num_labels=4, max_regions=3),
)  # fmt: skip


def _cube(path, size, fn) -> None:
    axis = np.linspace(0, 1, size)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")  # red fastest in file order
    rgb = np.stack([r, g, b], axis=-1).reshape(-1, 3)
    rows = "\n".join(" ".join(f"{v:.6f}" for v in fn(c)) for c in rgb)
    path.write_text(f"LUT_3D_SIZE {size}\n{rows}\n")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("looks_run")
    photos, looks = root / "photos", root / "looks"
    photos.mkdir()
    looks.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        write_image(photos / f"{name}.jpg", sample_photo(name, 64))
    (photos / "truncated.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (photos / "PROVENANCE.csv").write_text(
        "file,source_repository,source_path,licence,notes\n"
        "chelsea.jpg,scikit-image/scikit-image,skimage/data/chelsea.png,CC0,a cat\n"
    )
    _cube(looks / "warm.cube", 5, lambda c: [c[0] ** 0.7, c[1], c[2] ** 1.5])
    _cube(looks / "fade.cube", 5, lambda c: 0.1 + 0.8 * c)
    _cube(looks / "mono.cube", 5, lambda c: [c.mean()] * 3)
    (looks / "bad.cube").write_text("LUT_3D_SIZE 5\n0 0 0\n")
    return photos, looks


def test_lab_and_statistics_terms_against_direct_computations():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 8, 8, generator=gen, dtype=torch.float64)
    from skimage.color import rgb2lab

    expected = rgb2lab(image[0].permute(1, 2, 0).numpy()) / 100
    np.testing.assert_allclose(to_lab(image)[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    same = statistics_distance(to_lab(image), to_lab(image), labels, labels, 2)
    assert float(same) < 1e-20
    moved = statistics_distance(to_lab(image), to_lab(image * 0.5), labels, labels, 2)
    assert float(moved) > 1e-3


def test_a_few_steps_on_one_batch_lower_the_loss(folders, one_thread):
    from dpst.data.look_pairs import LookSampler
    from dpst.data.luts import LookLibrary
    from dpst.data.photo_pool import PhotoPool
    from dpst.models.generator import Generator
    from dpst.train.config import lr_factor
    from dpst.train.look_training import collate, train_step

    photos, looks = folders
    sampler = LookSampler(PhotoPool.from_folder(photos, 64),
                          LookLibrary.from_folder(looks).luts, TINY.pairs)  # fmt: skip
    batch = collate([sampler.sample(i) for i in range(4)])
    config = dataclasses.replace(TINY, steps=40, lr=1e-2, loss=LookLossWeights(photorealism=0))
    torch.manual_seed(0)
    model = Generator(config.model).train()
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    losses = [train_step(model, batch, config, optimizer, scheduler)[1]["loss"]
              for _ in range(config.steps)]  # fmt: skip
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses


def test_the_loss_is_the_weighted_sum_of_its_terms():
    gen = torch.Generator().manual_seed(0)
    output = torch.rand(2, 3, 8, 8, generator=gen)
    batch = {
        "content": torch.rand(2, 3, 8, 8, generator=gen),
        "style": torch.rand(2, 3, 8, 8, generator=gen),
        "target": torch.rand(2, 3, 8, 8, generator=gen),
        "content_labels": torch.full((2, 8, 8), -1),
        "style_labels": torch.full((2, 8, 8), -1),
        "has_target": torch.tensor([True, False]),
    }
    weights = LookLossWeights(colour=2.0, statistics=3.0, photorealism=0.0, range_penalty=5.0)
    overshoot = torch.tensor([0.1, 0.3])
    loss, logs = look_loss(output, overshoot, batch, weights, 4)
    colour = float((to_lab(output[:1]) - to_lab(batch["target"][:1])).abs().mean())
    assert logs["colour_l1_lab"] == pytest.approx(colour, rel=1e-5)  # only the paired one
    expected = 2 * colour + 3 * logs["statistics"] + 5 * 0.2
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def _losses(run_dir) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_resume_continues_exactly_and_bad_files_are_listed(folders, tmp_path, one_thread):
    photos, looks = folders
    whole = train_looks(TINY, photos, looks, tmp_path / "whole", progress=False)
    assert whole["finished"] and len(whole["skipped_files"]) == 2
    assert any("truncated.png" in p for p in whole["skipped_files"])
    assert any("bad.cube" in p for p in whole["skipped_files"])
    assert "val/psnr" in whole["validation"]
    credits = (tmp_path / "whole" / "credits.csv").read_text().splitlines()
    assert credits[0].startswith("set,file,") and credits[1].startswith("photos,chelsea.jpg,")

    first = train_looks(TINY, photos, looks, tmp_path / "split", stop_at=3, progress=False)
    assert first["steps"] == 3 and not first["finished"]
    # A damaged last.pt (step 3): the run resumes from prev.pt (step 2), still exactly.
    (tmp_path / "split" / "last.pt").write_bytes(b"PK\x03\x04 cut short")
    second = train_looks(TINY, photos, looks, tmp_path / "split", progress=False)
    assert second["finished"] and second["steps"] == 6 and second["resumed_from_step"] == 2
    expected, got = _losses(tmp_path / "whole"), _losses(tmp_path / "split")
    assert sorted(got) == list(range(1, 7))
    for step in range(1, 7):
        assert got[step] == pytest.approx(expected[step], rel=1e-6, abs=1e-9), step


def test_cli_bad_folder_is_one_line(tmp_path, capsys):
    code = dpst_main(["train-looks", str(tmp_path / "none"), str(tmp_path),
                      "--run-dir", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a folder of photos" in err


def test_a_changed_setting_on_resume_is_refused_unless_reconfigured(
    folders, tmp_path, one_thread, capsys
):
    photos, looks = folders
    run_dir = tmp_path / "run"
    quick = dataclasses.replace(TINY, val_pairs=0, steps=3)
    train_looks(quick, photos, looks, run_dir, stop_at=1, progress=False)
    longer = dataclasses.replace(quick, steps=5, pairs=dataclasses.replace(quick.pairs, size=48))
    with pytest.raises(InputError, match=r"steps 3 -> 5, pairs.size 32 -> 48; .*--reconfigure"):
        train_looks(longer, photos, looks, run_dir, progress=False)
    # How often it logs may change; through the command, unnamed settings are the run's own.
    code = dpst_main(["train-looks", str(photos), str(looks), "--run-dir", str(run_dir),
                      "--log-every", "2", "--stop-at", "2", "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = train_looks(longer, photos, looks, run_dir, progress=False, reconfigure=True)
    assert summary["resumed_from_step"] == 2 and summary["steps"] == 5
    assert summary["reconfigured"] == {"steps": [3, 5], "pairs.size": [32, 48]}
    history = [json.loads(x) for x in (run_dir / "config_history.jsonl").read_text().splitlines()]
    assert [(h["step"], h["config"]["steps"]) for h in history] == [(0, 3), (1, 3), (2, 5)]
    assert history[1]["config"]["log_every"] == 2
    assert history[2]["reconfigured"]["pairs.size"] == {"old": 32, "new": 48}
