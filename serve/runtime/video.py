"""A video restyled frame by frame, streaming, with PyAV: audio copied, timing kept.

:func:`process_video` decodes the first video stream, passes each frame through a callable
(``(H, W, 3)`` uint8 RGB in and out, e.g. :class:`dpst.serve.runtime.video_frames.ModelFrames`),
encodes it, and copies every audio and subtitle stream's packets as they are (no
re-encoding), interleaved as read; subtitles the output's container cannot hold, and data
streams, are left out and listed. Decoding, stylising and encoding run on three threads
(:mod:`dpst.serve.runtime.stages`), with two frames queued between them, so memory does not
grow with the clip's length.

The output keeps the input's frame rate, time base and timestamps, and its codec when this
FFmpeg can encode it into the output's container (h264 -> libx264, hevc -> libx265, vp9 ->
libvpx-vp9, ...), else the first of :data:`FALLBACK_ENCODERS` the container takes; pixels are
yuv420p (yuv444p for odd sizes when the encoder has it). The container follows the output's
extension.

It is written to a hidden temporary file beside the output and renamed over it at the end;
on any error or interrupt the temporary file is deleted, so the output's name never holds a
partial video (only a killed process, SIGKILL, can leave ``.NAME.*.partial.EXT`` behind).

Torch-free. Errors in the input (no video stream, unreadable or corrupt data, a codec this
FFmpeg cannot decode, audio the output's container cannot hold) are InputErrors.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from dpst.errors import InputError, first_line
from dpst.imageio import current_umask
from dpst.serve.runtime.stages import run_stages

# Tried in order when the input's codec cannot be written: widely played, and in every
# PyAV wheel (libx264 for .mp4/.mkv/.mov, VP9 for .webm, MPEG-4 part 2 for .avi and others).
FALLBACK_ENCODERS = ("libx264", "libvpx-vp9", "mpeg4")
# Codecs a container holds that FFmpeg's muxer does not list (PyAV's supported_codecs asks
# avformat_query_codec, which the MPEG-TS muxer answers for MPEG-2 alone): H.264 and H.265
# are the usual content of a .ts file.
UNLISTED_CODECS = {"mpegts": frozenset({"h264", "hevc"})}
# What an audio container's "video" is (an album cover), not a codec for a clip.
STILL_CODECS = frozenset({"png", "mjpeg", "bmp", "gif", "tiff", "webp", "apng", "none"})
# Quality of the x264/x265 encodes (constant rate factor): 18 is near-transparent, so the
# re-encode adds little loss to the input's own.
CRF = "18"
# x264's own default, "medium", took a quarter to a third of the CPU of a 1080p frame here
# (0.48-0.58 CPU s per frame in all, against 0.37 with "veryfast": bench.video, 2 threads);
# at CRF 18 the quality stays, the file is larger.
X264_PRESET = "veryfast"
# Bits per pixel per frame for encoders without a CRF when the input's bit rate is unknown
# (0.1 is about 5 Mbit/s at 1080p25).
BITS_PER_PIXEL = 0.1
# MPEG-4 part 2 cannot count time in finer units than this.
MAX_TIME_BASE_DENOMINATOR = 65535

Frames = Callable[[np.ndarray], np.ndarray]


@dataclass
class VideoReport:
    """What :func:`process_video` did."""

    frames: int = 0
    width: int = 0
    height: int = 0
    rate: Fraction | None = None
    decoder: str = ""
    encoder: str = ""
    same_codec: bool = False
    pix_fmt: str = ""
    audio_streams: int = 0
    subtitle_streams: int = 0
    dropped_streams: list[str] = field(default_factory=list)
    rotation: int = 0  # the display rotation carried over (degrees, counter-clockwise)
    # Frames and packets left out because their time did not advance (a damaged clip).
    out_of_time: int = 0
    seconds: float = 0.0


def _av():
    try:
        import av
    except ImportError:
        raise InputError("dpst video needs PyAV: pip install 'dpst[video]'") from None
    return av


def _ffmpeg_reason(err: BaseException) -> str:
    # FFmpeg's errors carry the file name and errno in str(); strerror is the reason alone.
    return getattr(err, "strerror", None) or first_line(err, 200)


def check_output_format(path: str | os.PathLike) -> str:
    """The FFmpeg container ``path``'s extension names, if it can hold video; else InputError.

    Nothing is created: an output container with no stream writes no file.
    """
    av = _av()
    try:
        container = av.open(os.fspath(path), "w")
    except ValueError:
        raise InputError(f"{path}: unknown video format (use .mp4, .mkv, .mov or .webm)") from None
    try:
        name = container.format.name
        if name == "image2":
            raise InputError(
                f"{path}: an image file cannot hold video (use .mp4, .mkv, .mov or .webm)"
            )
        if not _encoders_for(container):
            wanted = _default_video(container)
            raise InputError(
                f"{path}: a {name} file cannot hold video (use .mp4, .mkv, .mov or .webm)"
                if wanted is None
                else f"{path}: this FFmpeg has no encoder for the video a {name} file holds "
                f"({wanted}); use .mp4, .mkv, .mov or .webm"
            )
        return name
    finally:
        container.close()


def _codec_name(context) -> str:
    """The codec's name (mp3), not its decoder's (mp3float, libdav1d): what containers list
    and users know."""
    return context.codec.canonical_name or context.name


def _holds(output, context) -> bool:
    """Whether the output's container lists the stream's codec, by either of its names."""
    takes = output.supported_codecs
    return _codec_name(context) in takes or context.name in takes


def _default_video(container) -> str | None:
    """The container's own video codec, None for an audio container (whose is a cover)."""
    codec = container.default_video_codec
    return None if not codec or codec in STILL_CODECS else codec


def _encoders_for(container, codec: str | None = None) -> list[str]:
    """Encoder names for ``codec`` then the fallbacks, those this container takes."""
    av = _av()
    found = []
    takes = container.supported_codecs | UNLISTED_CODECS.get(container.format.name, set())
    # The container's own default last: MPEG-2 for .mxf, Theora for .ogg.
    default = [] if _default_video(container) is None else [_default_video(container)]
    for name in ([codec] if codec else []) + list(FALLBACK_ENCODERS) + default:
        try:
            encoder = av.codec.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):  # no encoder of that name in this FFmpeg
            continue
        if encoder.type == "video" and (encoder.name in takes or name in takes):
            if encoder.name not in found:
                found.append(encoder.name)
    return found


def _open_input(path: str | os.PathLike):
    av = _av()
    if not Path(path).is_file():
        raise InputError(f"video not found: {path}")
    try:
        source = av.open(os.fspath(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{path} is not a readable video ({_ffmpeg_reason(err)})") from None
    if source.format.name == "image2" or source.format.name.endswith("_pipe"):
        source.close()  # FFmpeg reads a photo as a clip of one frame, whatever its name
        raise InputError(f"{path} is a still image ({source.format.name}), not a video")
    if not source.streams.video:
        source.close()
        raise InputError(f"{path} has no video stream")
    video = source.streams.video[0]
    if video.codec_context is None:
        source.close()
        raise InputError(f"{path}: its video codec is not one this FFmpeg decodes")
    return source, video


def probe(path: str | os.PathLike) -> VideoReport:
    """The input's size, frame count (0 if the container does not say), rate and codec,
    read from its header only; InputError for a file :func:`process_video` would refuse."""
    source, video = _open_input(path)
    with source:
        return VideoReport(
            frames=int(video.frames or 0),
            width=video.codec_context.width,
            height=video.codec_context.height,
            rate=video.average_rate or video.guessed_rate,
            decoder=_codec_name(video.codec_context),
            audio_streams=len(source.streams.audio),
        )


def process_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    frames: Frames,
    progress: Callable[[int], None] | None = None,
) -> VideoReport:
    """Write ``dst``: ``src`` with every frame passed through ``frames``, its audio copied.

    When ``frames`` has a ``prepare(frame)`` method, it runs on the decoding thread and its
    result is passed on as ``frames(frame, prepared)``: work that needs only the frame then
    runs beside the model. ``progress(n)`` is called after each frame written (n so far), from
    the writing thread.
    Raises InputError for a bad input (module docstring); the output's name is written only
    when the whole video is.
    """
    av = _av()
    start = time.perf_counter()
    source, video = _open_input(src)
    dst = Path(dst)
    with source:
        # Named first, created inside the ``try``: an interrupt (Ctrl-C, or SIGTERM raised as
        # one by dpst video) that lands between the file's creation and the next statement
        # still finds the cleanup. mkstemp before the ``try`` left that gap open: a SIGTERM
        # sent as soon as the file appears, as a test does, left it behind.
        temp = _partial_name(dst)
        try:
            _create(temp)
            report = _transcode(av, source, video, temp, frames, progress, src)
            os.chmod(temp, 0o666 & ~current_umask())  # the usual permissions, not _create's 0600
            os.replace(temp, dst)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    report.seconds = time.perf_counter() - start
    return report


def _partial_name(dst: Path) -> Path:
    """A hidden name beside ``dst`` for the video being written, ``.NAME.<random>.partial.EXT``
    (the extension picks the container); nothing is created."""
    return dst.parent / f".{dst.stem}.{secrets.token_hex(8)}.partial{dst.suffix}"


def _create(temp: Path) -> None:
    """Create ``temp``, empty and private (0600, as mkstemp), or fail if it exists: 64 random
    bits make that someone else's file only by a collision never seen."""
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _transcode(av, source, video, temp: Path, frames: Frames, progress, src) -> VideoReport:
    report = VideoReport(decoder=_codec_name(video.codec_context))
    # PyAV guesses the container from the temporary name's extension, the output's.
    with av.open(os.fspath(temp), "w") as output:
        # Every stream exists before the first packet is muxed (the header is written then).
        width, height = video.codec_context.width, video.codec_context.height
        if not (width and height):
            raise InputError(f"{src}: its video stream does not say its frame size")
        rate = _rate(video)
        listed = _encoders_for(output, _codec_name(video.codec_context))
        # A codec the container takes may still refuse these frames (MJPEG with yuv420p,
        # MPEG-2 at 10 fps): each is tried before the first frame, and the next one taken.
        time_base = _time_base(video)
        encoders = [n for n in listed if _opens(av, n, width, height, rate, time_base)]
        if not encoders:
            raise InputError(
                f"no encoder of this FFmpeg writes {width}x{height} video at {float(rate):g} "
                f"fps in a {output.format.name} file (tried {', '.join(listed) or 'none'}); "
                "use .mp4 or .mkv"
            )
        report.encoder = encoders[0]
        report.same_codec = av.codec.Codec(report.encoder, "w").id == video.codec_context.codec.id
        out_video = _add_video(output, video, (height, width), report)
        # Phones store portrait clips on their side with a display rotation: the frames are
        # stylised as stored and the output carries the same rotation, so players turn it
        # upright as they did the input. Set before the first packet writes the header.
        report.rotation = _display_rotation(av, src)
        if report.rotation:
            out_video.set_display_rotation(report.rotation)
        copied = _copied_streams(output, source, src, report)
        counted = [0]  # frames decoded, on the reader's thread
        prepare = getattr(frames, "prepare", None)

        def read():
            """Audio packets and decoded frames as RGB arrays with their timestamps."""
            for packet, frame in _decoded(av, source, video, list(copied), src):
                if frame is None:
                    yield packet
                    continue
                if (frame.width, frame.height) == (width, height):
                    rgb = frame.to_ndarray(format="rgb24")
                else:  # a size change mid-stream: one output size
                    rgb = frame.to_ndarray(format="rgb24", width=width, height=height)
                prepared = (prepare(rgb),) if prepare is not None else ()
                yield rgb, prepared, _timestamp(frame, counted[0], report.rate)
                counted[0] += 1

        def stylise(item):
            if not isinstance(item, tuple):
                return item  # an audio or subtitle packet, passed through in order
            rgb, prepared, stamp = item
            styled = frames(rgb, *prepared)
            if styled.shape != rgb.shape or styled.dtype != np.uint8:
                raise ValueError(f"frames() returned {styled.shape} {styled.dtype}")
            return styled, stamp

        # A damaged clip can repeat or go back in time; the muxer refuses that (EINVAL at the
        # end, the whole clip lost), so such frames and packets are left out and counted.
        last: dict = {}

        def in_time(key, when) -> bool:
            if when is None:
                return True
            if key in last and when <= last[key]:
                report.out_of_time += 1
                return False
            last[key] = when
            return True

        def write(item):
            if not isinstance(item, tuple):
                when = item.dts * item.time_base if item.dts is not None else None
                if in_time(item.stream.index, when):
                    item.stream = copied[item.stream.index]
                    output.mux(item)
                return
            styled, (pts, time_base) = item
            if not in_time("video", pts * time_base):
                return
            new = av.VideoFrame.from_ndarray(styled, format="rgb24")
            new.pts, new.time_base = pts, time_base
            output.mux(out_video.encode(new))
            report.frames += 1
            if progress is not None:
                progress(report.frames)

        # The next frame is decoded and the last one encoded while this one is stylised.
        run_stages(read(), stylise, write)
        if report.frames == 0:
            raise InputError(f"{src}: its video stream holds no frame")
        output.mux(out_video.encode(None))
    return report


def _display_rotation(av, src) -> int:
    """The input's display rotation in degrees (counter-clockwise), read from its first
    frame (PyAV's VideoFrame.rotation); 0 when there is none or it cannot be read."""
    try:
        with av.open(os.fspath(src)) as probe:
            for frame in probe.decode(video=0):
                return round(frame.rotation or 0)
    except (av.error.FFmpegError, ValueError):
        return 0
    return 0


def _copied_streams(output, source, src, report: VideoReport) -> dict:
    """Output streams for the input's audio and subtitle streams, by input index, copied as
    they are (no re-encoding). Audio the output's container cannot hold is an InputError (a
    silent film is not what was asked); subtitles it cannot hold (SubRip in MP4) are left out
    and listed in ``report.dropped_streams``, as are data streams."""
    copied = {}
    for stream in source.streams.audio:
        codec = _codec_name(stream.codec_context)
        if not _holds(output, stream.codec_context):
            # .mkv holds every audio codec; the input's own extension holds its audio.
            choices = " or ".join(dict.fromkeys([Path(src).suffix.lower() or ".mkv", ".mkv"]))
            raise InputError(
                f"{src}: its {codec} audio cannot go in a {output.format.name} file (copied "
                f"as it is): write {choices}"
            )
        copied[stream.index] = output.add_stream_from_template(stream)
    report.audio_streams = len(copied)
    video_index = source.streams.video[0].index
    for stream in source.streams:
        if stream.index == video_index or stream.index in copied:
            continue
        codec = _codec_name(stream.codec_context) if stream.codec_context is not None else None
        if stream.type == "subtitle" and _holds(output, stream.codec_context):
            copied[stream.index] = output.add_stream_from_template(stream)
            report.subtitle_streams += 1
        elif stream.type == "subtitle":
            report.dropped_streams.append(
                f"subtitle #{stream.index} ({codec} cannot go in a {output.format.name} "
                f"file; write .mkv)"
            )
        else:
            report.dropped_streams.append(f"{stream.type} #{stream.index}")
    return copied


def _decoded(av, source, video, copied: list[int], src):
    """``(packet, None)`` for each packet of the streams ``copied`` (input indices) and
    ``(None, frame)`` for each decoded video frame, in file order. FFmpeg's errors here are
    the input's (corrupt data, a codec without a decoder): InputError; the encoders' are not
    caught."""
    packets = source.demux([video, *(source.streams[i] for i in copied)])
    while True:
        try:
            packet = next(packets, None)
            if packet is None:
                return
            if packet.stream.index != video.index:
                if packet.dts is not None:  # else the demuxer's empty end-of-stream packet
                    yield packet, None
                continue
            decoded = packet.decode()
        except av.error.FFmpegError as err:
            raise InputError(f"{src}: cannot decode its video ({_ffmpeg_reason(err)})") from None
        for frame in decoded:
            yield None, frame


def _rate(video) -> Fraction:
    return video.average_rate or video.guessed_rate or Fraction(25)


def _pixel_format(codec, width: int, height: int) -> str:
    names = [f.name for f in (codec.video_formats or ())]
    if (width % 2 or height % 2) and "yuv444p" in names:
        return "yuv444p"  # 4:2:0 needs even sizes
    if names and "yuv420p" not in names:
        return names[0]
    return "yuv420p"


def _time_base(video) -> Fraction | None:
    """The input's time base when the output can keep it (its timestamps, exactly)."""
    if video.time_base and video.time_base.denominator <= MAX_TIME_BASE_DENOMINATOR:
        return video.time_base
    return None


def _opens(av, name: str, width: int, height: int, rate: Fraction, time_base) -> bool:
    """Whether this FFmpeg opens encoder ``name`` for such frames (as :func:`_add_video`
    would set it up), on a throwaway context."""
    try:
        context = av.CodecContext.create(name, "w")
        context.width, context.height = width, height
        context.pix_fmt = _pixel_format(context.codec, width, height)
        context.time_base = time_base or 1 / Fraction(rate)
        context.framerate = Fraction(rate)
        if name not in ("libx264", "libx265"):
            context.bit_rate = int(BITS_PER_PIXEL * width * height * float(rate))
        context.open()
    except (av.error.FFmpegError, ValueError):
        return False
    return True


def _add_video(output, video, shape, report: VideoReport):
    height, width = shape[:2]
    rate = _rate(video)
    stream = output.add_stream(report.encoder, rate=rate)
    stream.width, stream.height = width, height
    pix_fmt = _pixel_format(stream.codec_context.codec, width, height)
    stream.pix_fmt = pix_fmt
    if _time_base(video) is not None:
        stream.codec_context.time_base = video.time_base  # the input's timestamps, exactly
    if report.encoder in ("libx264", "libx265"):
        stream.codec_context.options = {"crf": CRF, "preset": X264_PRESET}
    else:
        bit_rate = video.bit_rate or video.codec_context.bit_rate
        stream.bit_rate = int(bit_rate or BITS_PER_PIXEL * width * height * float(rate))
    report.width, report.height, report.rate, report.pix_fmt = width, height, rate, pix_fmt
    return stream


def _timestamp(frame, index: int, rate: Fraction) -> tuple[int, Fraction]:
    """The decoded frame's own timestamp, or its place at the frame rate when it has none."""
    if frame.pts is not None and frame.time_base is not None:
        return frame.pts, frame.time_base
    return index, 1 / rate
