"""Containers and codecs dpst video once refused wrongly or crashed on (issue 25, items 5
and 7): MPEG-TS holds H.264 (FFmpeg's list for it says MPEG-2 alone), an MJPEG clip is
written with another encoder (MJPEG's refused the frames: avcodec_open2), a photo named
.mp4 is no clip, and an encoder that cannot take the frames is one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dpst.cli import main
from dpst.errors import InputError

av = pytest.importorskip("av")
from dpst.serve.runtime.video import check_output_format  # noqa: E402
from tests.test_video import make_clip  # noqa: E402


@pytest.fixture
def style(tmp_path):
    path = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), np.uint8)).save(path)
    return path


def _video(*argv):
    return main(["video", *map(str, argv), "--threads", "1"])


def _codec(path) -> str:
    with av.open(str(path)) as clip:
        return clip.streams.video[0].codec_context.name


def _one_line(capsys, code, *words):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_mpeg_ts_holds_h264(tmp_path, style):
    clip = make_clip(tmp_path / "in.mp4", audio=False)
    assert check_output_format(tmp_path / "o.ts") == "mpegts"
    assert _video(clip, style, "-o", tmp_path / "o.ts") == 0
    assert _codec(tmp_path / "o.ts") == "h264"


def test_an_mjpeg_clip_is_written_with_an_encoder_that_takes_its_frames(tmp_path, style):
    source = tmp_path / "in.avi"
    with av.open(str(source), "w") as out:
        stream = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuvj420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), "rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert _video(source, style, "-o", tmp_path / "o.avi") == 0
    with av.open(str(tmp_path / "o.avi")) as clip:
        assert sum(1 for _ in clip.decode(video=0)) == 5


def test_a_photo_named_mp4_is_not_a_clip(tmp_path, style, capsys):
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "x.jpg")
    (tmp_path / "photo.mp4").write_bytes((tmp_path / "x.jpg").read_bytes())
    code = _video(tmp_path / "photo.mp4", style, "-o", tmp_path / "o.mp4")
    _one_line(capsys, code, "photo.mp4 is a still image")
    assert not (tmp_path / "o.mp4").exists()


def test_a_container_whose_encoders_refuse_the_frames_is_one_line(tmp_path, style, capsys):
    # MXF's MPEG-2 takes standard frame rates only; the clip is 10 fps.
    clip = tmp_path / "in.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 60 * i, np.uint8), "rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    code = _video(clip, style, "-o", tmp_path / "o.mxf")
    _one_line(capsys, code, "no encoder of this FFmpeg writes 32x24 video at 10 fps")
    assert [p.name for p in tmp_path.iterdir() if "o." in p.name] == []


def test_a_container_without_its_encoder_names_the_codec():
    try:
        av.codec.Codec("libtheora", "w")
    except (av.error.FFmpegError, ValueError):
        with pytest.raises(InputError, match=r"no encoder for the video a ogg file holds \(theora"):
            check_output_format("a.ogg")
    else:
        assert check_output_format("a.ogg") == "ogg"


def test_a_clip_whose_time_goes_back_is_written_without_those_frames(tmp_path, style, capsys,
                                                                     monkeypatch):  # fmt: skip
    """A clip damaged mid-stream decoded a frame back in time; the muxer refused it at the
    end (EINVAL, a traceback, the whole clip lost)."""
    import dpst.serve.runtime.video as video

    clip = make_clip(tmp_path / "in.mp4", audio=False)
    real = video._timestamp

    def damaged(frame, index, rate):
        pts, time_base = real(frame, index, rate)
        return (0, time_base) if index == 5 else (pts, time_base)  # frame 5 back at the start

    monkeypatch.setattr(video, "_timestamp", damaged)
    assert _video(clip, style, "-o", tmp_path / "o.mp4") == 0
    err = capsys.readouterr().err
    assert "1 frame(s) or packet(s) whose time went back" in err and "Traceback" not in err
    with av.open(str(tmp_path / "o.mp4")) as out:
        assert sum(1 for _ in out.decode(video=0)) == 11  # of 12
