"""User messages that said the wrong thing (issue 25, item 8): each says it once, in the
project's words, width first."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dpst.commands.outputs import check_no_clash
from dpst.errors import InputError


def test_an_input_named_by_its_path_is_said_once(tmp_path):
    photo = tmp_path / "g2" / "x.jpg"
    with pytest.raises(InputError) as caught:
        check_no_clash([photo], {str(photo): photo})
    assert (
        str(caught.value) == f"{photo} would replace the input {photo}: choose another output path"
    )
    with pytest.raises(InputError, match=r"replace the style photo \(s.png\)"):
        check_no_clash([Path("s.png")], {"style photo": "s.png"})


def test_sizes_are_width_by_height():
    from dpst.optim_reference.matting import as_image_batch

    with pytest.raises(InputError, match=r"got 1x64 \(width x height"):
        as_image_batch(np.zeros((64, 1, 3), np.float32))


def test_a_look_that_cannot_be_read_is_not_called_damaged(tmp_path, monkeypatch):
    from dpst.serve.runtime.looks import read_look

    look = tmp_path / "l.dpst"
    look.write_bytes(b"PK")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(InputError) as caught:
        read_look(look)
    assert str(caught.value) == f"{look}: cannot read (Permission denied)"


def test_the_mask_warning_speaks_of_regions_not_losses(tmp_path):
    from dpst.labels.mask_files import read_mask

    mask = np.zeros((8, 8, 3), np.uint8)
    mask[:, :4] = (0, 0, 255)  # blue: a palette colour
    mask[:, 4:] = (123, 45, 67)  # no palette colour: half the pixels
    Image.fromarray(mask).save(tmp_path / "m.png")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        read_mask(tmp_path / "m.png", (8, 8), "colour")
    text = " ".join(str(w.message) for w in said)
    assert "belong to no region" in text and "loss" not in text


def test_codecs_are_named_as_users_know_them_not_by_decoder():
    av = pytest.importorskip("av")
    from dpst.serve.runtime.video import _codec_name

    try:
        context = av.CodecContext.create("mp3float", "r")
    except (av.error.FFmpegError, ValueError):
        pytest.skip("this FFmpeg has no mp3float decoder")
    assert _codec_name(context) == "mp3"


def test_an_audio_codec_a_container_refuses_names_mkv_once(tmp_path, capsys):
    av = pytest.importorskip("av")
    from dpst.cli import main

    clip = tmp_path / "in.mkv"
    with av.open(str(clip), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=8000)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 60 * i, np.uint8), "rgb24")
            out.mux(video.encode(frame))
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), "s16", "mono")
        sound.sample_rate = 8000
        out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
        out.mux(video.encode(None))
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "s.png")
    code = main(["video", str(clip), str(tmp_path / "s.png"), "-o", str(tmp_path / "o.webm"),
                 "--threads", "1"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "pcm_s16le audio cannot go in a webm file" in err, err
    assert err.endswith("write .mkv") and ".mkv or .mkv" not in err


def test_the_demo_refuses_an_animation_as_the_commands_do(tmp_path):
    """Issue 25, item 7: the demo took frame 0 of an animated GIF the CLI refuses, and its
    messages named the server's temporary files."""
    from dpst.serve.app.inputs import read_photo

    frames = [Image.new("RGB", (16, 12), colour) for colour in ("red", "blue")]
    upload = tmp_path / "gradio-tmp-123" / "clip.gif"
    upload.parent.mkdir()
    frames[0].save(upload, save_all=True, append_images=frames[1:])
    with pytest.raises(InputError) as caught:
        read_photo(str(upload), "content photo", 10**6)
    assert str(caught.value).startswith("content photo: an animation (2 frames)")
    assert str(upload.parent) not in str(caught.value)


def test_a_damaged_look_upload_is_named_not_by_its_temporary_file(tmp_path):
    from dpst.serve.runtime.looks import read_look

    upload = tmp_path / "gradio-tmp-123" / "look.dpst"
    upload.parent.mkdir()
    upload.write_bytes(b"not a zip")
    with pytest.raises(InputError) as caught:
        read_look(upload, name="the look file")
    assert str(caught.value).startswith("the look file: not a dpst look file")
    assert str(upload.parent) not in str(caught.value)
