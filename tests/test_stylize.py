"""The reference optimiser end to end, with the random backbone on tiny images."""

import json

import numpy as np
import pytest
import torch

from dpst.cli import main
from dpst.imageio import read_image, write_image
from dpst.optim_reference.optimize import mean_init, run_lbfgs
from dpst.optim_reference.postfilter import PostFilterConfig
from dpst.optim_reference.stylize import StylizeConfig, multiscale_schedule, stylize
from dpst.optim_reference.vgg import BackboneConfig
from tests.conftest import sample_photo

RANDOM = BackboneConfig(name="random", seed=0)


def _pair(size=64):
    return sample_photo("chelsea", size), sample_photo("coffee", size)


@pytest.fixture(scope="module")
def two_stage_run():
    content, style = _pair()
    cfg = StylizeConfig(size=64, iters=60, post=PostFilterConfig(mode="fast"))
    torch.set_num_threads(2)
    return content, stylize(content, style, config=cfg, backbone=RANDOM)


@pytest.mark.slow  # 52 s: the module's two-stage optimiser run, which the next test shares
def test_two_stage_run_lowers_the_objective(two_stage_run):
    content, result = two_stage_run
    stage1, stage2 = result.report["stages"]
    assert (stage1["stage"], stage2["stage"]) == (1, 2)
    # Stage 1 starts from a flat image, whose total variation is 0 and can only grow.
    for term in ("content", "style", "total"):
        assert stage1["end"][term] < stage1["start"][term], term
    assert stage2["end"]["total"] < stage2["start"]["total"]
    # The photorealism stage lowers the matting energy of stage 1's result.
    assert stage2["end"]["photorealism"] < stage2["start"]["photorealism"]
    assert result.image.shape == content.shape
    assert np.isfinite(result.image).all()
    assert result.image.min() >= 0 and result.image.max() <= 1


@pytest.mark.slow  # uses the module's two-stage optimiser run, paid by the test above
def test_report_names_the_random_backbone(two_stage_run):
    _, result = two_stage_run
    report = result.report
    assert report["backbone"]["random"] is True and report["backbone"]["seed"] == 0
    assert report["interrupted"] is False
    assert report["config"]["weights"]["photorealism"] == 1e4
    json.dumps(report)  # JSON-ready


def test_deterministic_for_a_seed():
    content, style = _pair(32)
    cfg = StylizeConfig(size=32, iters=3, postfilter=False)
    a = stylize(content, style, config=cfg, backbone=RANDOM)
    b = stylize(content, style, config=cfg, backbone=RANDOM)
    np.testing.assert_array_equal(a.image, b.image)


def test_masks_condition_the_style():
    content, style = _pair(32)
    cl = np.zeros(content.shape[:2], np.int64)
    cl[:, content.shape[1] // 2 :] = 1
    sl = np.zeros(style.shape[:2], np.int64)
    sl[style.shape[0] // 2 :] = 1
    cfg = StylizeConfig(size=32, iters=2, postfilter=False)
    result = stylize(content, style, cl, sl, cfg, RANDOM)
    assert result.report["labels"]["label_ids"] == [0, 1]
    with pytest.raises(ValueError, match="both"):
        stylize(content, style, cl, None, cfg, RANDOM)


def test_multiscale_schedule_ends_at_working_size():
    cfg = StylizeConfig(size=256, iters=1000, multiscale=True, levels=3)
    plan = multiscale_schedule(cfg, (256, 192))
    assert plan[0][:2] == (2, 1) and plan[1][:2] == (2, 2)
    assert plan[-1][0] == 0 and all(stage == 2 for _, stage, _ in plan[2:])
    single = multiscale_schedule(StylizeConfig(iters=10), (256, 192))
    assert single == [(0, 1, 10), (0, 2, 10)]


def test_non_finite_objective_keeps_last_finite_iterate():
    calls = {"n": 0}

    class Exploding(torch.nn.Module):
        def forward(self, x, weights):
            calls["n"] += 1
            value = (x**2).flatten(1).sum(1)
            if calls["n"] >= 4:
                value = value * float("nan")
            return {"total": value}

    init = torch.ones(1, 3, 4, 4)
    from dpst.optim_reference.losses import LossWeights

    result = run_lbfgs(Exploding(), init, 10, LossWeights())
    assert result.status == "non-finite"
    assert result.iterations == 3
    assert torch.isfinite(result.image).all()


def test_mean_init_is_the_caffe_mean_colour():
    x = mean_init((1, 3, 64, 64), seed=0, device="cpu", dtype=torch.float64)
    mean = torch.tensor([123.68, 116.779, 103.939], dtype=torch.float64).view(1, 3, 1, 1) / 255
    np.testing.assert_allclose(x.mean((0, 2, 3)).numpy(), mean.flatten().numpy(), atol=1e-6)
    # Published: torch.randn * 1e-4 in the network's input units (x * 255 here).
    assert ((x - mean) * 255).std().item() == pytest.approx(1e-4, rel=0.05)


def test_stage_two_starts_from_the_quantised_stage_one_result(monkeypatch):
    """Published: stage 1 saves an 8-bit PNG (clipped, truncated), stage 2 starts from it;
    the post-filter is fitted to the unclamped optimiser output."""
    import dpst.optim_reference.stylize as stylize_module

    real_lbfgs, real_filter = stylize_module.run_lbfgs, stylize_module.smooth_local_affine
    stages, filtered = [], []

    def recording_lbfgs(objective, init, *args, **kwargs):
        result = real_lbfgs(objective, init, *args, **kwargs)
        stages.append((init.clone(), result.image.clone()))
        return result

    def recording_filter(content, output, *args, **kwargs):
        filtered.append(output.clone())
        return real_filter(content, output, *args, **kwargs)

    monkeypatch.setattr(stylize_module, "run_lbfgs", recording_lbfgs)
    monkeypatch.setattr(stylize_module, "smooth_local_affine", recording_filter)
    content, style = _pair(32)
    cfg = StylizeConfig(size=32, iters=4, post=PostFilterConfig(mode="fast"))
    stylize(content, style, config=cfg, backbone=RANDOM)
    (_, stage1), (start2, stage2) = stages
    # Oracle: numpy's floor of the clipped values times 255, as the PNG writer's C cast.
    oracle = np.floor(np.clip(stage1.double().numpy(), 0, 1) * 255) / 255
    np.testing.assert_array_equal(start2.numpy(), oracle.astype(np.float32))
    assert not torch.equal(start2, stage1)  # the quantisation did something
    (fitted,) = filtered
    assert torch.equal(fitted, stage2)  # unclamped: not stage2.clamp(0, 1)


def test_cli_end_to_end(tmp_path, capsys):
    content, style = _pair(40)
    write_image(tmp_path / "c.png", content)
    write_image(tmp_path / "s.jpg", style)
    out = tmp_path / "out" / "o.png"
    code = main(
        [
            "stylize",
            str(tmp_path / "c.png"),
            str(tmp_path / "s.jpg"),
            "-o",
            str(out),
            "--size",
            "32",
            "--iters",
            "2",
            "--backbone",
            "random",
            "--postfilter-mode",
            "fast",
            "--quiet",
            "--masks",
            "none",
        ]
    )
    assert code == 0
    assert read_image(out).shape == content.shape
    report = json.loads(out.with_name("o.png.json").read_text())
    assert report["backbone"]["random"] is True
    assert report["config"]["iters"] == 2 and report["config"]["size"] == 32
    assert "RANDOM backbone" in capsys.readouterr().out
    # The report reproduces the run through --config.
    again = tmp_path / "again.png"
    assert (
        main(
            [
                "stylize",
                str(tmp_path / "c.png"),
                str(tmp_path / "s.jpg"),
                "-o",
                str(again),
                "--config",
                str(out.with_name("o.png.json")),
                "--quiet",
                "--masks",
                "none",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(read_image(again), read_image(out))


@pytest.mark.parametrize(
    "make_bad, needle",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello"), "not a readable image"),
    ],
)
def test_cli_bad_content_file_exits_2_with_one_line(tmp_path, capsys, make_bad, needle):
    bad = tmp_path / "bad.png"
    make_bad(bad)
    write_image(tmp_path / "s.png", sample_photo("coffee", 16))
    code = main(
        [
            "stylize",
            str(bad),
            str(tmp_path / "s.png"),
            "-o",
            str(tmp_path / "o.png"),
            "--backbone",
            "random",
            "--quiet",
            "--masks",
            "none",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err and str(bad) in err and len(err.splitlines()) == 1


def test_cli_rejects_one_mask_and_bad_settings(tmp_path, capsys):
    write_image(tmp_path / "c.png", sample_photo("chelsea", 16))
    args = [
        "stylize",
        str(tmp_path / "c.png"),
        str(tmp_path / "c.png"),
        "-o",
        str(tmp_path / "o.png"),
        "--backbone",
        "random",
        "--quiet",
        "--masks",
        "none",
    ]
    assert main([*args, "--content-mask", str(tmp_path / "c.png")]) == 2
    assert "together" in capsys.readouterr().err
    assert main([*args, "--size", "4"]) == 2
    assert "size" in capsys.readouterr().err
    assert main([*args, "--min-region", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--min-region" in err and "[0, 1)" in err and len(err.splitlines()) == 1


def test_cli_min_region_reaches_the_label_policy(tmp_path):
    paths = _write_pair(tmp_path, 24)
    mask = np.zeros((24, 24, 3), np.float32)  # blue everywhere...
    mask[..., 2] = 1.0
    mask[0, 0] = [1.0, 0.0, 0.0]  # ...and one red pixel, in both masks
    for name in ("cm.png", "sm.png"):
        write_image(tmp_path / name, mask[: sample_photo("chelsea", 24).shape[0]])
    out = tmp_path / "o.png"
    args = ["stylize", *paths, "-o", str(out), *FAST, "--quiet"]
    args += ["--content-mask", str(tmp_path / "cm.png"), "--style-mask", str(tmp_path / "sm.png")]
    assert main(args) == 0  # the default keeps the one-pixel region, as published
    report = json.loads(out.with_name("o.png.json").read_text())
    assert report["config"]["labels"]["min_fraction"] == 0.0
    assert report["labels"]["merged"] == {} and len(report["labels"]["label_ids"]) == 2
    assert main([*args, "--min-region", "0.01"]) == 0
    report = json.loads(out.with_name("o.png.json").read_text())
    assert report["config"]["labels"]["min_fraction"] == 0.01
    assert len(report["labels"]["merged"]) == 1 and len(report["labels"]["label_ids"]) == 1


def _write_pair(tmp_path, size=24):
    write_image(tmp_path / "c.png", sample_photo("chelsea", size))
    write_image(tmp_path / "s.png", sample_photo("coffee", size))
    return [str(tmp_path / "c.png"), str(tmp_path / "s.png")]


FAST = ["--size", "24", "--iters", "1", "--backbone", "random", "--no-postfilter"]


def test_cli_automatic_masks_with_a_segmenter(tmp_path, capsys):
    from tests.tiny_segformer import save_tiny_segformer

    weights = save_tiny_segformer(tmp_path / "tiny")
    out = tmp_path / "o.png"
    args = ["stylize", *_write_pair(tmp_path), "-o", str(out), *FAST, "--seg-weights"]
    assert main([*args, str(weights)]) == 0
    report = json.loads(out.with_name("o.png.json").read_text())
    assert report["masks"]["source"] == "segmenter"
    assert report["regions"] and all(isinstance(name, str) for name in report["regions"])
    assert report["labels"]["label_ids"]
    assert "masks: segmenter" in capsys.readouterr().out


def test_cli_automatic_masks_fall_back_to_weight_free_then_one_region(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "o.png"
    assert main(["stylize", *_write_pair(tmp_path), "-o", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    # No segmenter: the weight-free regions, which find no sure sky or backdrop in these
    # photos.
    assert "no automatic masks" in captured.err and "using weight-free regions" in captured.err
    assert "dpst stylize: weight-free regions: no sure sky or backdrop in the " in captured.err
    one = json.loads(out.with_name("o.png.json").read_text())
    assert one["masks"]["source"] == "one region" and one["regions"] == []
    assert one["masks"]["finder"] == "weight-free"
    assert main(["stylize", *_write_pair(tmp_path), "-o", str(out), *FAST, "--masks", "none"]) == 0
    assert "no automatic masks" not in capsys.readouterr().err


def test_ctrl_c_writes_the_result_so_far_marked_interrupted(tmp_path, monkeypatch):
    """Ctrl-C during the run: the current iterate is post-filtered and written, exit 130."""
    import dpst.optim_reference.optimize as optimize

    real = optimize.run_lbfgs

    def interrupted_after_two(*args, on_iteration=None, **kwargs):
        def hook(it, terms, image):
            if on_iteration is not None:
                on_iteration(it, terms, image)
            if it == 2:
                raise KeyboardInterrupt

        return real(*args, on_iteration=hook, **kwargs)

    monkeypatch.setattr("dpst.optim_reference.stylize.run_lbfgs", interrupted_after_two)
    out = tmp_path / "o.png"
    args = ["stylize", *_write_pair(tmp_path), "-o", str(out), *FAST, "--iters", "5"]
    assert main([*args, "--masks", "none", "--quiet"]) == 130
    report = json.loads(out.with_name("o.png.json").read_text())
    assert report["interrupted"] is True
    assert report["stages"][0]["status"] == "interrupted"
    assert report["stages"][0]["iterations"] == 2
    assert read_image(out).shape == sample_photo("chelsea", 24).shape


def test_resized_images_stay_in_range():
    from dpst.optim_reference.stylize import _resize

    image = torch.zeros(1, 3, 37, 53)
    image[..., ::2, :] = 1.0  # sharp stripes make the antialiasing filter overshoot
    out = _resize(image, (19, 27))
    assert out.min() >= 0 and out.max() <= 1
