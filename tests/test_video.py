"""dpst video: timing, size and audio kept; interrupts and bad inputs leave no output; the
grid's moving average steadies a flickering clip. Clips are made here with PyAV, 48x32."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.errors import InputError
from dpst.serve.runtime.render_plan import RenderPlan
from dpst.serve.runtime.video import check_output_format, process_video
from dpst.serve.runtime.video_frames import LutFrames, ModelFrames, SmoothedGrid, TemporalConfig

WIDTH, HEIGHT, FRAMES, RATE = 48, 32, 12, 25
SAMPLE_RATE, AUDIO_FRAME = 16000, 1024


def _gradient(index: int, blink: bool = False) -> np.ndarray:
    """A gradient; with ``blink``, a yellow square in a corner on odd frames."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    image = np.stack([xx * 255 / WIDTH, yy * 255 / HEIGHT, np.full_like(xx, 96.0 + index)], -1)
    if blink and index % 2:
        image[:10, :10] = (255, 255, 0)
    return image.astype(np.uint8)


SUBTITLE_LINES = (b"one", b"two", b"three")


def make_clip(
    path, video: bool = True, audio: bool = True, rotation: int = 0, subtitles: bool = False
):
    """FRAMES frames of a gradient at RATE fps (h264), with half a second of AAC sine; with
    ``rotation``, a display rotation as phones record portrait clips; with ``subtitles``, a
    SubRip stream of SUBTITLE_LINES (for .mkv)."""
    with av.open(str(path), "w") as out:
        if video:
            stream = out.add_stream("libx264", rate=RATE)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            if rotation:
                stream.set_display_rotation(rotation)
        if audio:
            sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        if subtitles:
            text = out.add_mux_stream("subrip")  # packets as they are, no encoder
        for index in range(FRAMES if video else 0):
            frame = av.VideoFrame.from_ndarray(_gradient(index), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
            if subtitles and index % 4 == 0:
                packet = av.Packet(SUBTITLE_LINES[index // 4])
                packet.stream, packet.time_base = text, Fraction(1, 1000)
                packet.pts = packet.dts = index * 40
                packet.duration = 120
                out.mux(packet)
        if audio:
            for start in range(0, SAMPLE_RATE // 2, AUDIO_FRAME):
                t = (start + np.arange(AUDIO_FRAME)) / SAMPLE_RATE
                wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
        if video:
            out.mux(stream.encode(None))
    return path


def _summary(path):
    with av.open(str(path)) as clip:
        video = clip.streams.video[0]
        rate, codec = video.average_rate, video.codec_context.name  # read while open
        decoded = list(clip.decode(video=0))
        frames = [f.to_ndarray(format="rgb24") for f in decoded]
        stamps = [f.pts * f.time_base for f in decoded]
    with av.open(str(path)) as clip:
        sound = clip.streams.audio
        packets = [bytes(p) for p in clip.demux(sound[0]) if p.dts is not None] if sound else []
    return {
        "frames": np.stack(frames),
        "stamps": stamps,
        "rate": rate,
        "codec": codec,
        "audio_packets": packets,
    }


def _invert_cube(path):
    """A 2-node .cube that maps each colour to its negative (red fastest, as .cube lists)."""
    rows = [f"{1 - r} {1 - g} {1 - b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]
    path.write_text("LUT_3D_SIZE 2\n" + "\n".join(rows) + "\n")
    return path


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "in.mp4")


def test_frames_size_rate_timestamps_and_audio_are_kept(tmp_path, clip, capsys):
    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)).save(style)
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), str(style), "-o", str(out), "--threads", "1"]) == 0
    assert "12 frames at 25 fps, libx264, 1 audio and 0 subtitle stream(s) copied" in (
        capsys.readouterr().out
    )
    given, written = _summary(clip), _summary(out)
    assert written["frames"].shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert written["rate"] == Fraction(RATE) and written["codec"] == "h264"
    assert written["stamps"] == given["stamps"]
    # Copied, not re-encoded: the same packets, byte for byte.
    assert written["audio_packets"] == given["audio_packets"] and given["audio_packets"]
    assert _files(tmp_path) == ["in.mp4", "out.mp4", "style.png"]  # no temporary file left


def test_a_lut_grades_every_frame(tmp_path, clip):
    out = tmp_path / "out.mkv"
    report = process_video(clip, out, LutFrames(_invert_cube(tmp_path / "neg.cube")))
    assert (report.frames, report.width, report.height, report.audio_streams) == (12, 48, 32, 1)
    given, written = _summary(clip)["frames"], _summary(out)["frames"]
    # The oracle is the negative itself; the gap is the two lossy encodes (CRF 18 here).
    gap = np.abs(written.astype(float) - (255 - given.astype(float)))
    assert gap.mean() < 3


def _subtitles(path):
    with av.open(str(path)) as clip:
        if not clip.streams.subtitles:
            return []
        stream = clip.streams.subtitles[0]
        return [(bytes(p), p.pts * p.time_base) for p in clip.demux(stream) if p.dts is not None]


def test_subtitles_are_copied_as_they_are(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", subtitles=True)
    given = _subtitles(clip)
    assert [text for text, _ in given] == list(SUBTITLE_LINES)
    report = process_video(clip, tmp_path / "out.mkv", lambda frame: 255 - frame)
    assert (report.audio_streams, report.subtitle_streams, report.dropped_streams) == (1, 1, [])
    assert _subtitles(tmp_path / "out.mkv") == given  # same text, same times


def test_subtitles_a_container_cannot_hold_are_left_out_and_said(tmp_path, capsys):
    clip = make_clip(tmp_path / "in.mkv", subtitles=True)
    lut = _invert_cube(tmp_path / "neg.cube")
    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), "--lut", str(lut), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "1 audio and 0 subtitle stream(s) copied" in captured.out
    warning = [line for line in captured.err.splitlines() if "not copied" in line]
    assert warning == [
        "dpst video: warning: not copied: subtitle #2 (subrip cannot go in a mp4 file; write .mkv)"
    ]
    assert _summary(out)["frames"].shape == (FRAMES, HEIGHT, WIDTH, 3)


def test_an_interrupt_leaves_the_output_as_it_was_and_a_rerun_writes_it(tmp_path, clip):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    seen = []

    def stop_midway(frame):
        seen.append(1)
        if len(seen) == 5:
            raise KeyboardInterrupt
        return frame

    with pytest.raises(KeyboardInterrupt):
        process_video(clip, out, stop_midway)
    assert out.read_bytes() == b"an earlier result"
    assert _files(tmp_path) == ["in.mp4", "out.mp4"]
    process_video(clip, out, lambda frame: frame)
    assert len(_summary(out)["frames"]) == FRAMES


def test_the_cli_returns_130_on_ctrl_c_and_leaves_nothing(tmp_path, clip, monkeypatch, capsys):
    def interrupted(self, frame):
        raise KeyboardInterrupt

    monkeypatch.setattr(LutFrames, "__call__", interrupted)
    cube = _invert_cube(tmp_path / "neg.cube")
    assert main(["video", str(clip), "--lut", str(cube), "-o", str(tmp_path / "o.mp4")]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert _files(tmp_path) == ["in.mp4", "neg.cube"]


def _unknown_codec(tmp_path, clip):
    """A Matroska file whose video codec id FFmpeg does not know (the id's bytes changed)."""
    mkv = tmp_path / "known.mkv"
    process_video(clip, mkv, lambda frame: frame)
    data = mkv.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    mkv.unlink()
    unknown = tmp_path / "unknown.mkv"
    unknown.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XYZ"))
    return unknown


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("audio only", "has no video stream"),
        ("not a video", "is not a readable video"),
        ("unknown codec", "its video codec is not one this FFmpeg decodes"),
        ("corrupt LUT", "not a valid .cube file"),
        ("corrupt look", "not a dpst look file"),
        ("audio output", "a wav file cannot hold video"),
        ("image output", "an image file cannot hold video"),
        ("output is the input", "would replace the input video"),
    ],
)
def test_bad_inputs_cost_one_line_and_exit_2_with_no_output(tmp_path, clip, capsys, case, message):
    source, out = clip, tmp_path / "out.mp4"
    cube = _invert_cube(tmp_path / "neg.cube")
    if case == "audio only":
        source = make_clip(tmp_path / "sound.m4a", video=False)
    elif case == "not a video":
        source = tmp_path / "broken.mp4"
        source.write_bytes(clip.read_bytes()[:2000])  # the index (moov) is at the end
    elif case == "unknown codec":
        source = _unknown_codec(tmp_path, clip)
    elif case == "corrupt LUT":
        cube.write_text("LUT_3D_SIZE 3\n0 0 0\n1 0\n")
    elif case == "audio output":
        out = tmp_path / "out.wav"
    elif case == "image output":
        out = tmp_path / "out.png"
    elif case == "output is the input":
        out = clip
    look = ["--lut", str(cube)]
    if case == "corrupt look":
        (tmp_path / "bad.dpst").write_bytes(b"PK not really a zip")
        look = ["--look", str(tmp_path / "bad.dpst")]
    before = _files(tmp_path)
    assert main(["video", str(source), *look, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert _files(tmp_path) == before  # nothing under the output's name, no temporary file


def test_one_of_style_look_and_lut(tmp_path, clip, capsys):
    cube = _invert_cube(tmp_path / "neg.cube")
    assert main(["video", str(clip), str(cube), "--lut", str(cube), "-o", "x.mp4"]) == 2
    assert "not STYLE and --lut" in capsys.readouterr().err
    assert main(["video", str(clip), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "give one of STYLE (a photo), --look LOOK.dpst or --lut" in capsys.readouterr().err


def test_a_look_file_gives_what_its_style_photo_gives(tmp_path, clip):
    from dpst.serve.runtime.looks import encode_look, write_look
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

    style = np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)
    stylizer = FastStylizer(BUNDLED_MODEL, threads=1)
    write_look(tmp_path / "look.dpst", encode_look(stylizer, style.astype(np.float32) / 255))
    by_photo, by_look = tmp_path / "photo.mp4", tmp_path / "look.mp4"
    code = stylizer.encode_style(style)
    process_video(clip, by_photo, ModelFrames(stylizer, code, TemporalConfig()))
    look = ["--look", str(tmp_path / "look.dpst")]
    assert main(["video", str(clip), *look, "-o", str(by_look)]) == 0
    np.testing.assert_array_equal(_summary(by_photo)["frames"], _summary(by_look)["frames"])


def test_output_formats():
    assert check_output_format("a.mp4") == "mp4" and check_output_format("a.mkv") == "matroska"
    with pytest.raises(InputError, match="unknown video format"):
        check_output_format("a.xyz")


def test_the_moving_average_is_an_exponential_average_restarted_at_cuts():
    rng = np.random.default_rng(0)
    grids = rng.normal(size=(6, 1, 12, 2, 3, 3)).astype(np.float32)
    still = np.full((4, 4, 3), 0.5, np.float32)
    cut = np.zeros((4, 4, 3), np.float32)  # 0.5 away from `still`
    smooth = SmoothedGrid(TemporalConfig(smoothing=0.75, scene_cut=0.1))
    images = [still, still, still, cut, cut, cut]
    maps = rng.normal(size=(6, 1, 2, 3, 4)).astype(np.float32)
    weights = np.ones((1, 2, 1, 1), np.float32) / 2
    plans = [RenderPlan(g, m, weights) for g, m in zip(grids, maps, strict=True)]
    got = [smooth(image, plan) for image, plan in zip(images, plans, strict=True)]
    # The label maps are averaged as the grids are; a bare grid is a plan without maps.
    assert all(p.label_weights is weights for p in got)
    got_maps = np.stack([p.label_maps for p in got])
    got = [p.grid.copy() for p in got]
    bare = SmoothedGrid(TemporalConfig(smoothing=0.75, scene_cut=0.1))
    assert bare(still, grids[0]).label_maps is None
    # The oracle: the recurrence written out, a new start at frame 3.
    expected = [grids[0]]
    for index in range(1, 6):
        past = 0.0 if index == 3 else 0.75
        previous = expected[-1] if index != 3 else 0.0
        expected.append(past * previous + (1 - past) * grids[index])
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-6, atol=1e-6)
    expected_maps = [maps[0]]
    for index in range(1, 6):
        past = 0.0 if index == 3 else 0.75
        expected_maps.append(past * expected_maps[-1] + (1 - past) * maps[index])
    np.testing.assert_allclose(got_maps, np.stack(expected_maps), rtol=1e-6, atol=1e-6)
    assert smooth.cuts == 1
    with pytest.raises(InputError):
        TemporalConfig(smoothing=1.0).validate()


def _frame_change(frames: np.ndarray) -> float:
    return float(np.abs(np.diff(frames.astype(np.float64), axis=0)).mean())


def test_smoothing_steadies_a_flickering_clip():
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

    stylizer = FastStylizer(BUNDLED_MODEL, threads=1)
    style = np.zeros((32, 32, 3), np.uint8)
    style[..., 0], style[16:, :, 2] = 200, 180
    code = stylizer.encode_style(style)
    # A square blinks in a corner: the colour statistics, so a per-frame grid, flicker, and
    # the whole frame with them, though the rest of the picture stands still.
    clip = np.stack([_gradient(index, blink=True) for index in range(FRAMES)])

    def run(smoothing):
        frames = ModelFrames(stylizer, code, TemporalConfig(smoothing=smoothing))
        return np.stack([frames(frame) for frame in clip]), frames.smoothed.cuts

    alone, _ = run(0.0)
    smoothed, cuts = run(0.8)
    assert cuts == 0  # a blink is not a scene cut
    # Away from the square the input barely changes (its blue rises a level a frame).
    still = np.s_[:, 10:, 10:]
    assert _frame_change(clip[still]) < 0.5
    assert _frame_change(smoothed[still]) < 0.3 * _frame_change(alone[still])


def test_dpst_video_runs_without_torch(tmp_path, clip):

    style = tmp_path / "style.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(style)
    code = f"""
import sys
sys.modules["torch"] = None  # any "import torch" now raises ImportError
from dpst.cli import main
code = main(["video", {str(clip)!r}, {str(style)!r}, "-o", {str(tmp_path / "o.mp4")!r}])
assert sys.modules.get("torch") is None, "torch was imported"
sys.exit(code)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o.mp4").is_file()


def test_sigterm_exits_143_and_leaves_no_file(tmp_path):

    source = tmp_path / "long.mkv"
    with av.open(str(source), "w") as out:  # long enough to be caught midway
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        rng = np.random.default_rng(0)
        for index in range(400):
            pixels = rng.integers(0, 256, (120, 160, 3), np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    style = tmp_path / "style.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(style)
    argv = ["video", str(source), str(style), "-o", str(tmp_path / "o.mkv"), "--threads", "1"]
    code = f"import sys; from dpst.cli import main; sys.exit(main({argv!r}))"
    process = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".o.*.partial.mkv")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "interrupted (SIGTERM)" in err
    assert _files(tmp_path) == ["long.mkv", "style.png"]


def test_a_phone_clips_display_rotation_is_carried_over(tmp_path):
    clip = make_clip(tmp_path / "portrait.mp4", rotation=90)
    out = tmp_path / "out.mp4"
    report = process_video(clip, out, LutFrames(_invert_cube(tmp_path / "invert.cube")))
    assert report.rotation == 90
    with av.open(str(out)) as result:
        first = next(result.decode(video=0))
        assert first.rotation == 90 and (first.width, first.height) == (WIDTH, HEIGHT)


def test_strength_0_gives_the_input_frames_and_half_is_halfway(tmp_path, clip, capsys):
    from dpst.serve.runtime.stylizer import BUNDLED_MODEL, FastStylizer

    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)).save(style)
    out = tmp_path / "out.mp4"
    argv = ["video", str(clip), str(style), "-o", str(out), "--threads", "1"]
    assert main([*argv, "--model", str(BUNDLED_MODEL), "--strength", "0"]) == 0
    given, written = _summary(clip)["frames"], _summary(out)["frames"]
    # The oracle is the input itself; the gap is one more lossy encode of this tiny 4:2:0
    # clip: 2.0 levels, as an identity LUT's video measured (the full look: 26).
    assert np.abs(written.astype(float) - given).mean() < 3
    # The frame pipeline without a codec: halfway between the frame and its full look
    # (after the smoothing), within the rounding of two 8-bit results.
    stylizer = FastStylizer(BUNDLED_MODEL, threads=1)
    code = stylizer.encode_style(np.asarray(Image.open(style)))
    clip_frames = [_gradient(index, blink=True) for index in range(FRAMES)]
    full = ModelFrames(stylizer, code, TemporalConfig())
    half = ModelFrames(stylizer, code, TemporalConfig(), strength=0.5)
    for frame in clip_frames:
        whole, halfway = full(frame).astype(float), half(frame).astype(float)
        inside = np.all((whole > 0) & (whole < 255), axis=-1)
        assert np.abs(halfway - (frame + whole) / 2)[inside].max() <= 1.0
    capsys.readouterr()
    out.unlink()
    assert main([*argv, "--strength", "3"]) == 2
    err = capsys.readouterr().err
    assert "--strength must be between 0 and 2" in err and err.count("\n") == 1
    cube = _invert_cube(tmp_path / "neg.cube")
    lut = ["video", str(clip), "--lut", str(cube), "-o", str(out), "--strength", "0.5"]
    assert main(lut) == 2
    assert "--strength is for the model" in capsys.readouterr().err
    assert not out.exists()


def test_an_interrupt_just_after_the_partial_file_is_created_deletes_it(
    tmp_path, clip, monkeypatch
):
    # The gap test_sigterm_exits_143_and_leaves_no_file can hit on a loaded machine (its
    # SIGTERM follows the file's appearance): the signal arrives as soon as the hidden file
    # exists, before any later statement runs. Made certain here.
    import dpst.serve.runtime.video as video

    created = video._create

    def create_then_interrupted(temp):
        created(temp)
        raise KeyboardInterrupt

    monkeypatch.setattr(video, "_create", create_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        process_video(clip, tmp_path / "o.mkv", LutFrames(_invert_cube(tmp_path / "i.cube")))
    assert _files(tmp_path) == ["i.cube", "in.mp4"]
