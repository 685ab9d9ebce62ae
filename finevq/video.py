"""Open, probe and sample videos: the one place the library decodes frames, decord first with a
PyAV fallback, only the sampled frames, in bounded memory, and a VideoError for every bad file."""

from __future__ import annotations

import array
import dataclasses
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import av
import av.logging
import numpy as np
from av.video.reformatter import VideoReformatter

from finevq.errors import VideoError

BACKENDS = ("auto", "decord", "pyav")
DEFAULT_FPS = 25.0
# Container frame rates outside this range are treated as broken metadata (FineVD has 1e6).
PLAUSIBLE_FPS = (1.0, 240.0)
# A truncated file is sampled over its readable frames only if at least this share is left.
MIN_READABLE_FRACTION = 0.25
# Demuxers that read still images: a renamed PNG/JPEG opens as a one-frame "video" otherwise.
_IMAGE_DEMUXERS = ("image2", "_pipe")
# A seek (with the decoder's flush and restart) costs about as much as decoding 8-16 frames
# (measured, 720p H.264, frame threads): nearer keyframes are reached by decoding through.
_SEEK_COST_FRAMES = 16
# Larger frames are decoded by PyAV (auto mode) with slice threads only: see VideoReader.
_LARGE_FRAME_PIXELS = 2560 * 1440
# Decoder names that differ from the codec's name.
_CODEC_NAMES = {"libdav1d": "av1", "libaom-av1": "av1", "libvpx-vp9": "vp9", "libvpx": "vp8"}


@dataclass(frozen=True)
class VideoInfo:
    """What probe() measured: frame count from the stream's packets, fps checked for sanity,
    display size after rotation, and the backend that will actually read the frames."""

    path: str
    backend: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str
    rotation: int
    declared_frames: int = 0  # what the container header claims (0: not stated)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class VideoSample:
    """The frames a model asks for from one video (or one window of it); keyframe_indices and
    motion_indices are the frames actually used (under seek="keyframe", stream keyframes)."""

    info: VideoInfo
    keyframes: np.ndarray
    keyframe_indices: list[int]
    motion: np.ndarray
    motion_indices: list[int]
    fragments: np.ndarray | None = None
    start_frame: int = 0
    stop_frame: int = 0

    @property
    def start_seconds(self) -> float:
        return self.start_frame / self.info.fps

    @property
    def stop_seconds(self) -> float:
        return self.stop_frame / self.info.fps


class TruncatedVideoError(VideoError):
    """The stream ended (or broke off) before a requested frame: only `readable_frames` decode."""

    def __init__(self, message: str, readable_frames: int):
        super().__init__(message)
        self.readable_frames = readable_frames


@dataclass(frozen=True)
class _StreamIndex:
    """Presentation timestamps of the video packets (sorted) and the positions of keyframes,
    as compact arrays: an hour of video costs under a megabyte."""

    timestamps: np.ndarray  # int64, one per frame, increasing
    keyframes: np.ndarray  # int64 frame positions, starting with 0
    timed: bool = True  # False: the packets carry no timestamps, frames are counted in order

    def __len__(self) -> int:
        return len(self.timestamps)

    def position_of(self, timestamp: int | None) -> int | None:
        if timestamp is None:
            return None
        position = int(np.searchsorted(self.timestamps, timestamp))
        if position < len(self.timestamps) and self.timestamps[position] == timestamp:
            return position
        return None

    def keyframe_before(self, position: int) -> int:
        return int(self.keyframes[max(int(np.searchsorted(self.keyframes, position, side="right")) - 1, 0)])

    def first(self, count: int) -> _StreamIndex:
        """The index of the first `count` frames only."""
        return _StreamIndex(self.timestamps[:count], self.keyframes[self.keyframes < count], self.timed)


# ---------------------------------------------------------------- index arithmetic


SEEK_MODES = ("keyframe", "exact", "official")
MIN_EVERY_FRAME = 32
"""Reading every frame (num_motion_frames=0), a shorter video's frames are repeated up to this many,
as the official FineVQ feeds SlowFast (whose slow pathway takes every 4th)."""


def _segments(start: int, stop: int, count: int) -> list[tuple[int, int, int]]:
    """(begin, end, centre) of `count` equal segments of [start, stop); segments of a range
    shorter than `count` are empty (begin == end) and their centres repeat frames."""
    if count < 1:
        raise VideoError(f"frame count to sample must be at least 1, got {count}")
    if stop <= start:
        raise VideoError(f"empty frame range [{start}, {stop})")
    length = stop - start
    return [
        (
            start + segment * length // count,
            start + (segment + 1) * length // count,
            start + (2 * segment + 1) * length // (2 * count),
        )
        for segment in range(count)
    ]


def _nearest_stream_keyframe(stream_keyframes, low: int, high: int, target: int) -> int | None:
    """The stream keyframe in [low, high] nearest `target` (the earlier one on a tie), if any."""
    keyframes = np.asarray(stream_keyframes if stream_keyframes is not None else [], dtype=np.int64)
    first, last = np.searchsorted(keyframes, low, "left"), np.searchsorted(keyframes, high, "right")
    if first >= last:
        return None
    candidates = keyframes[first:last]
    return int(candidates[np.argmin(np.abs(candidates - target), axis=0)])


def keyframe_indices(
    num_frames: int, count: int = 8, stream_keyframes=None, start: int = 0, stop: int | None = None
) -> list[int]:
    """The paper's keyframes: the frame at the centre of each of `count` equal segments of
    [start, stop) (default: the whole video). Always `count` indices; a shorter range repeats frames.

    stream_keyframes (the keyframe-aligned rule, the one the model is trained and evaluated with):
    sorted positions of the stream's keyframes (I-frames); each segment that holds one takes the one
    nearest its centre instead of the centre, which then costs no decoding of the frames before it."""
    stop = num_frames if stop is None else min(stop, num_frames)
    return [
        centre if (snapped := _nearest_stream_keyframe(stream_keyframes, begin, end - 1, centre)) is None else snapped
        for begin, end, centre in _segments(start, stop, count)
    ]


def motion_clip_indices(
    num_frames: int, count: int = 16, start: int = 0, stop: int | None = None, burst: int = 1, stream_keyframes=None
) -> list[int]:
    """`count` frames spread evenly over [start, stop) for a motion encoder: a hard budget,
    never every frame, however long the video (short ranges repeat frames).

    burst > 1 takes runs of `burst` consecutive frames, one run centred in each of
    ceil(count / burst) equal segments: consecutive frames show real motion (shaking, stutter),
    and fewer, denser runs cost fewer seeks, so sampling time stops growing with duration sooner.
    stream_keyframes (the keyframe-aligned rule): a run starts instead at the stream keyframe
    nearest its planned start among those that keep the whole run inside its segment, so that
    decoding the run costs only its own frames."""
    stop = num_frames if stop is None else min(stop, num_frames)
    if burst < 1:
        raise VideoError(f"motion burst must be at least 1 frame, got {burst}")
    last_start = max(start, stop - burst)
    run_starts = []
    for begin, end, centre in _segments(start, stop, -(-count // burst)):
        planned = min(max(centre - burst // 2, start), last_start)
        aligned = _nearest_stream_keyframe(stream_keyframes, begin, min(end - burst, last_start), planned)
        run_starts.append(planned if aligned is None else aligned)
    indices = [min(run_start + offset, stop - 1) for run_start in run_starts for offset in range(burst)]
    return sorted(indices[:count])


def official_keyframe_indices(count: int, start: int, stop: int) -> list[int]:
    """The official FineVQ's (InternVL's) keyframes over [start, stop): int(s/2 + round(s * i)) with
    s = (frames - 1) / count, Python's (and NumPy's) round-half-to-even included."""
    if count < 1:
        raise VideoError(f"frame count to sample must be at least 1, got {count}")
    if stop <= start:
        raise VideoError(f"empty frame range [{start}, {stop})")
    step = (stop - start - 1) / count
    return [start + int(step / 2 + round(step * index)) for index in range(count)]


def every_frame_indices(start: int, stop: int, minimum: int = MIN_EVERY_FRAME) -> list[int]:
    """Every frame of [start, stop); a range shorter than `minimum` has its frames repeated evenly up to it."""
    if stop <= start:
        raise VideoError(f"empty frame range [{start}, {stop})")
    length = stop - start
    if length >= minimum:
        return list(range(start, stop))
    return [start + index * length // minimum for index in range(minimum)]


def sample_indices(
    start: int, stop: int, num_keyframes: int, num_motion_frames: int, motion_burst: int = 1,
    seek: str = "exact", stream_keyframes=None,
) -> tuple[list[int], list[int]]:
    """(keyframe, motion) frame indices of [start, stop) under a sampling rule (see sample_video);
    num_motion_frames=0 reads every frame."""
    if seek not in SEEK_MODES:
        raise VideoError(f"unknown seek mode {seek!r}; choose one of {', '.join(SEEK_MODES)}")
    stream_keyframes = stream_keyframes if seek == "keyframe" else None
    if seek == "official":
        keyframes = official_keyframe_indices(num_keyframes, start, stop)
    else:
        keyframes = keyframe_indices(stop, num_keyframes, stream_keyframes, start, stop)
    if num_motion_frames == 0:
        return keyframes, every_frame_indices(start, stop)
    return keyframes, motion_clip_indices(stop, num_motion_frames, start, stop, motion_burst, stream_keyframes)


def window_bounds(info: VideoInfo, window_seconds: float) -> list[tuple[int, int]]:
    """Consecutive [start, stop) frame ranges of `window_seconds` each, covering the video;
    a last piece shorter than half a window joins the window before it."""
    if not window_seconds > 0:
        raise VideoError(f"window length must be positive, got {window_seconds} s")
    length = max(1, round(window_seconds * info.fps))
    bounds = [(start, min(start + length, info.num_frames)) for start in range(0, info.num_frames, length)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < length / 2:
        bounds[-2:] = [(bounds[-2][0], bounds[-1][1])]
    return bounds


# ---------------------------------------------------------------- frame transforms


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"frames must be shaped (T, H, W, 3), got {frames.shape}")
    return frames


def _scaled_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the long side is `long_side`, aspect kept."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_frames(frames, size: int | tuple[int, int], keep_aspect: bool = False) -> np.ndarray:
    """Resize (T, H, W, 3) frames (antialiased bicubic).

    size int: a size x size square, or with keep_aspect the long side becomes `size`;
    size (height, width): exactly that, or with keep_aspect the largest size that fits in it."""
    from PIL import Image

    frames = _check_frames(frames)
    height, width = frames.shape[1:3]
    if isinstance(size, int):
        target = _scaled_size(height, width, size) if keep_aspect else (size, size)
    else:
        box_height, box_width = size
        scale = min(box_height / height, box_width / width)
        fitted = (max(1, round(height * scale)), max(1, round(width * scale)))
        target = fitted if keep_aspect else (box_height, box_width)
    if min(target) < 1:
        raise VideoError(f"cannot resize frames to {size}")
    if target == (height, width):
        return frames.astype(np.uint8, copy=False)
    resized = [
        np.asarray(Image.fromarray(frame).resize(target[::-1], Image.Resampling.BICUBIC)) for frame in frames
    ]
    return np.stack(resized)


def _largest(sides) -> int | None:
    """The largest of several long-side limits, where None (native size) is the largest."""
    sides = list(sides)
    return None if None in sides else max(sides)


def _limit_long_side(frames: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None or max(frames.shape[1:3]) <= max_side:
        return frames
    return resize_frames(frames, max_side, keep_aspect=True)


def _fragment_origins(height: int, width: int, grid: int, patch: int) -> list[tuple[int, int, int, int]]:
    """(row, column, top, left) of the patch centred in each cell of a grid x grid partition."""
    cell_height, cell_width = height // grid, width // grid
    return [
        (row, column, row * cell_height + (cell_height - patch) // 2, column * cell_width + (cell_width - patch) // 2)
        for row in range(grid)
        for column in range(grid)
    ]


def _check_fragment_shape(grid: int, patch: int) -> None:
    if grid < 1 or patch < 1:
        raise VideoError(f"fragment grid and patch must be positive, got grid={grid}, patch={patch}")


def fragments(frames, grid: int = 4, patch: int = 32) -> np.ndarray:
    """FAST-VQA style fragments: from each cell of a grid x grid partition, the centred
    patch x patch crop at native resolution, stitched into (T, grid*patch, grid*patch, 3).

    Frames smaller than grid*patch are first upscaled (aspect kept) so that every cell holds a
    whole patch. The same positions are used in every frame, so fragments stay aligned in time."""
    frames = _check_frames(frames)
    _check_fragment_shape(grid, patch)
    side = grid * patch
    height, width = frames.shape[1:3]
    if min(height, width) < side:
        scale = side / min(height, width)
        frames = resize_frames(frames, (max(side, round(height * scale)), max(side, round(width * scale))))
        height, width = frames.shape[1:3]
    out = np.empty((frames.shape[0], side, side, 3), dtype=np.uint8)
    for row, column, top, left in _fragment_origins(height, width, grid, patch):
        out[:, row * patch:(row + 1) * patch, column * patch:(column + 1) * patch] = (
            frames[:, top:top + patch, left:left + patch]
        )
    return out


# ---------------------------------------------------------------- probing


def _checked_path(path) -> str:
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VideoError(f"{name}: no such file")
    if os.path.isdir(name):
        raise VideoError(f"{name}: is a directory, not a video file")
    if os.path.getsize(name) == 0:
        raise VideoError(f"{name}: the file is empty (0 bytes)")
    return name


def _open_container(path: str) -> av.container.InputContainer:
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(f"{path}: cannot open as a video ({_reason(error)})") from None
    if any(marker in container.format.name for marker in _IMAGE_DEMUXERS):
        container.close()
        raise VideoError(f"{path}: is a still image ({container.format.name}), not a video")
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["no streams"]
        container.close()
        raise VideoError(f"{path}: has no video stream (found: {', '.join(kinds)})")
    return container


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0]


def _packet_timestamp(packet: av.Packet) -> int | None:
    return packet.pts if packet.pts is not None else packet.dts


def _scan_packets(container, stream, path: str) -> tuple[_StreamIndex, av.VideoFrame]:
    """One pass over the video packets: demux (not decode) them all for the honest frame count
    and keyframe positions, decoding only until the first frame (for rotation and size)."""
    timestamps = array.array("q")
    flags = bytearray()  # per packet: keyframe, corrupt, no timestamp
    first = None
    try:
        for packet in container.demux(stream):
            if first is None:
                try:
                    first = next(iter(packet.decode()), None)
                except av.error.FFmpegError:
                    pass  # a damaged first packet: the decoder resynchronises on a later one
            if packet.size == 0 or packet.is_discard:
                continue  # the end-of-stream marker, or a frame an edit list hides from display
            timestamp = _packet_timestamp(packet)
            timestamps.append(0 if timestamp is None else timestamp)
            flags.append(packet.is_keyframe | packet.is_corrupt << 1 | (timestamp is None) << 2)
    except (av.error.FFmpegError, OSError):
        pass  # a cut-off file: keep the packets that were read
    flags = np.frombuffer(bytes(flags), dtype=np.uint8)
    count = len(flags)
    while count and flags[count - 1] & 2:
        count -= 1  # the last packet of a truncated file is marked corrupt
    if not count:
        raise VideoError(f"{path}: the video stream holds no frames")
    if first is None:
        raise VideoError(f"{path}: no frame of the video stream can be decoded")
    if (flags[:count] & 4).any():
        # Without timestamps frames can only be counted and read in order, from the start.
        return _StreamIndex(np.arange(count), np.zeros(1, dtype=np.int64), timed=False), first
    order = np.argsort(np.frombuffer(timestamps, dtype=np.int64)[:count], kind="stable")
    keyframes = np.flatnonzero(flags[:count][order] & 1)
    if not keyframes.size or keyframes[0] != 0:
        keyframes = np.concatenate([[0], keyframes])
    return _StreamIndex(np.frombuffer(timestamps, dtype=np.int64)[:count][order], keyframes.astype(np.int64)), first


def _measured_fps(index: _StreamIndex, time_base, stream) -> float:
    """Frames per second from packet timestamps, else the container's rate, else a default;
    each candidate is used only if plausible, since broken files claim rates up to 1e6."""
    candidates = []
    if len(index) > 1 and time_base and index.timed:
        span = float(int(index.timestamps[-1] - index.timestamps[0]) * time_base)
        if span > 0:
            candidates.append((len(index) - 1) / span)
    candidates += [float(rate) for rate in (stream.average_rate, stream.guessed_rate) if rate]
    low, high = PLAUSIBLE_FPS
    return next((fps for fps in candidates if low <= fps <= high), DEFAULT_FPS)


def _thread_type(pixels: int) -> str:
    """Frame threading is fastest, but it holds a frame per thread, which above 1440p costs
    hundreds of MB (8K: 343 vs 139 MB with 3 threads, measured). And any threading deadlocks
    while PyAV's Python log callback is on (threads wait for the GIL on close)."""
    if av.logging.get_level() is not None:
        return "NONE"
    return "SLICE" if pixels > _LARGE_FRAME_PIXELS else "AUTO"


def _inspect(path: str) -> tuple[VideoInfo, _StreamIndex, av.container.InputContainer, av.VideoFrame]:
    """Probe with PyAV: metadata, packet index and rotation (from the first decoded frame); the
    container stays open, its decoder set up for reading, and the first frame is kept."""
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = _thread_type(stream.codec_context.width * stream.codec_context.height)
        index, first = _scan_packets(container, stream, path)
    except BaseException:
        container.close()
        raise
    # PyAV gives the display matrix's angle counter-clockwise; keep the nearest quarter turn, clockwise.
    rotation = round(-(first.rotation or 0) / 90) % 4 * 90
    width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    fps = _measured_fps(index, stream.time_base, stream)
    codec = stream.codec_context.name
    info = VideoInfo(
        path=path,
        backend="pyav",
        num_frames=len(index),
        fps=fps,
        duration=len(index) / fps,
        width=width,
        height=height,
        codec=_CODEC_NAMES.get(codec, codec),
        rotation=rotation,
        declared_frames=max(stream.frames, 0),
    )
    return info, index, container, first


def _decoded_frames(container, stream, wanted: set[int] | None = None) -> Iterator[av.VideoFrame]:
    """Decoded frames from the current position; a packet that fails to decode is skipped
    (the decoder resynchronises), and a read error ends the stream as a truncated file would.

    wanted: if given, the timestamps of the frames the caller needs; any other frame that no
    frame references (a non-reference B-frame) is not decoded at all, which changes no pixel of
    the others and saves a large share of the work on streams with B-frames."""
    context = stream.codec_context
    try:
        for packet in container.demux(stream):
            if wanted is not None:
                context.skip_frame = "DEFAULT" if _packet_timestamp(packet) in wanted else "NONREF"
            try:
                yield from packet.decode()
            except av.error.FFmpegError:
                continue
    except (av.error.FFmpegError, OSError):
        return


# ---------------------------------------------------------------- reading

# decord2 3.4 reports these only in its log and then returns a frame other than the one asked
# for (measured on low-bitrate videos with long GOPs), so they must become errors.
_DECORD_SILENT_FAILURES = ("Failed to skip frames",)
_STDERR_LOCK = threading.Lock()


def _decord_call(call, *args, **kwargs):
    """Run one decord call with the process's stderr (fd 2) captured, since decord's C++ code
    logs there; a silent-failure line raises VideoError, anything else is passed on. One call at
    a time: fd 2 is process-wide."""
    sys.stderr.flush()
    with _STDERR_LOCK, tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            result = call(*args, **kwargs)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            text = log.read().decode(errors="replace")
    failures = [line for line in text.splitlines() if any(marker in line for marker in _DECORD_SILENT_FAILURES)]
    if failures:
        raise VideoError(f"decord: {failures[0].strip()}")
    if text:
        sys.stderr.write(text)
    return result


# Pixel formats whose swscale conversion to RGB gives a crop the same pixels as the whole frame
# (measured: 8-bit planar YUV, gray, planar RGB); 10-bit YUV and NV12 interpolate chroma by
# position, so their fragments are cut from the whole frame converted at native size.
_CROPPABLE_FORMATS = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gray", "gbrp"})


class _RGBFrame:
    """A frame decoded to RGB (by decord, at the size the reader was opened with): each view
    is derived from that array."""

    def __init__(self, image: np.ndarray):
        self.image = image

    def rgb(self, max_side: int | None) -> np.ndarray:
        return _limit_long_side(self.image[None], max_side)[0]

    def fragments(self, grid: int, patch: int) -> np.ndarray:
        return fragments(self.image[None], grid, patch)[0]


class _YUVFrame:
    """A frame as the decoder left it (YUV): each view is converted to RGB on its own, the whole
    picture scaled down by swscale on the way and fragments from their patch regions only, so a
    large frame never exists in RGB at full size when the model wants it small."""

    def __init__(self, frame: av.VideoFrame, rotation: int, converters: dict[tuple, VideoReformatter]):
        self.frame = frame
        self.turns = rotation // 90
        self.converters = converters

    def _upright(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(image, k=-self.turns)) if self.turns else image

    def _to_rgb(self, frame: av.VideoFrame, height: int, width: int) -> np.ndarray:
        """RGB at (height, width) by swscale, through a converter kept per pair of sizes: setting
        one up for a scaled conversion costs about as much as the conversion (measured, 1080p)."""
        converter = self.converters.setdefault((frame.height, frame.width, height, width), VideoReformatter())
        return converter.reformat(frame, format="rgb24", width=width, height=height, interpolation="AREA").to_ndarray()

    def rgb(self, max_side: int | None) -> np.ndarray:
        frame = self.frame
        if max_side is None or max(frame.height, frame.width) <= max_side:
            return self._upright(self._to_rgb(frame, frame.height, frame.width))
        return self._upright(self._to_rgb(frame, *_scaled_size(frame.height, frame.width, max_side)))

    def _stored_origin(self, top: int, left: int, patch: int) -> tuple[int, int]:
        """Where a patch at (top, left) of the upright picture lies in the stored (unrotated) frame."""
        height, width = self.frame.height, self.frame.width
        return {
            0: (top, left),
            1: (height - left - patch, top),
            2: (height - top - patch, width - left - patch),
            3: (left, width - top - patch),
        }[self.turns]

    def fragments(self, grid: int, patch: int) -> np.ndarray:
        """fragments() of the upright RGB frame, converting only a mosaic of the patch regions:
        each patch is copied from the YUV planes with a margin that keeps chroma samples whole."""
        _check_fragment_shape(grid, patch)
        frame = self.frame
        upright = (frame.width, frame.height) if self.turns % 2 else (frame.height, frame.width)
        if frame.format.name not in _CROPPABLE_FORMATS or min(upright) < grid * patch:
            return fragments(self.rgb(None)[None], grid, patch)[0]
        step_y = max(round(frame.height / plane.height) for plane in frame.planes)
        step_x = max(round(frame.width / plane.width) for plane in frame.planes)
        tile_height, tile_width = -(-patch // step_y) * step_y + step_y, -(-patch // step_x) * step_x + step_x
        placements = []  # (row, column, stored top, stored left, tile top, tile left)
        for row, column, top, left in _fragment_origins(*upright, grid, patch):
            stored_top, stored_left = self._stored_origin(top, left, patch)
            tile_top, tile_left = stored_top - stored_top % step_y, stored_left - stored_left % step_x
            if tile_top + tile_height > frame.height or tile_left + tile_width > frame.width:
                return fragments(self.rgb(None)[None], grid, patch)[0]  # a patch at the very edge
            placements.append((row, column, stored_top, stored_left, tile_top, tile_left))
        mosaic = av.VideoFrame(grid * tile_width, grid * tile_height, frame.format.name)
        for number, (source, target) in enumerate(zip(frame.planes, mosaic.planes)):
            down_y, down_x = round(frame.height / source.height), round(frame.width / source.width)
            components = [component for component in frame.format.components if component.plane == number]
            sample_bytes = sum((component.bits + 7) // 8 for component in components)
            source_rows = np.frombuffer(source, np.uint8).reshape(-1, source.line_size)
            target_rows = np.frombuffer(target, np.uint8).reshape(-1, target.line_size)
            rows, columns = tile_height // down_y, tile_width // down_x * sample_bytes
            for index, (*_, tile_top, tile_left) in enumerate(placements):
                source_top, source_left = tile_top // down_y, tile_left // down_x * sample_bytes
                target_top, target_left = index // grid * rows, index % grid * columns
                target_rows[target_top:target_top + rows, target_left:target_left + columns] = (
                    source_rows[source_top:source_top + rows, source_left:source_left + columns]
                )
        mosaic.colorspace, mosaic.color_range = frame.colorspace, frame.color_range
        image = self._to_rgb(mosaic, mosaic.height, mosaic.width)
        out = np.empty((grid * patch, grid * patch, 3), dtype=np.uint8)
        for index, (row, column, stored_top, stored_left, tile_top, tile_left) in enumerate(placements):
            top = index // grid * tile_height + stored_top - tile_top
            left = index % grid * tile_width + stored_left - tile_left
            out[row * patch:(row + 1) * patch, column * patch:(column + 1) * patch] = self._upright(
                image[top:top + patch, left:left + patch]
            )
        return out


class VideoReader:
    """An open video: `.info`, and `.read(indices, max_side)` decoding only those frames.

    Decord reads when it can; if it fails to open or to read, the reader switches to PyAV for
    good and `.info.backend` says so. Frames larger than 1440p go to PyAV unless decord is asked
    for: decord holds several full-size frames (8K: +299 MB of peak memory to read one frame at
    448 px, PyAV +119 MB, measured with bench/decode.py). PyAV reads through the container that
    probing opened, so a file is opened once and frame 0 decoded once (frames up to 1440p).
    Use as a context manager (or call close())."""

    def __init__(self, path, backend: str = "auto"):
        if backend not in BACKENDS:
            raise VideoError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        path = _checked_path(path)
        self.info, self._index, self._container, self._first = _inspect(path)
        self._decord_readers: dict[tuple[int, int], object] = {}
        self._converters: dict[tuple, VideoReformatter] = {}  # PyAV's RGB converters, per pair of sizes
        self._allow_fallback = backend == "auto"
        large = self.info.width * self.info.height > _LARGE_FRAME_PIXELS
        if large:  # a fresh decoder for reading holds fewer full-size buffers (8K: 60-120 MB, measured)
            self._close_container()
            self._first = None
        if backend == "decord" or (backend == "auto" and not large):
            failure = self._decord_failure()
            if failure is None:
                self.info = dataclasses.replace(self.info, backend="decord")
                self._close_container()  # reopened only if decord fails later
                self._first = None
            elif backend == "decord":
                self.close()
                raise VideoError(f"{path}: decord cannot read this video ({failure})")

    # -- decord

    def _decord_failure(self) -> str | None:
        """Why decord cannot serve this file (None if it can); measured failure modes only."""
        if self.info.rotation:
            return "decord does not apply rotation metadata"
        try:
            frames = len(self._decord_reader(None))
        except Exception as error:  # decord raises RuntimeError, DECORDError or IndexError
            return _reason(error)
        finally:
            self._decord_readers.clear()  # reads open readers at the size they need
        if frames != self.info.num_frames:
            return f"decord counts {frames} frames, the stream has {self.info.num_frames}"
        return None

    def _decode_size(self, max_side: int | None) -> tuple[int, int]:
        """(height, width) of decoded frames before rotation, long side at most max_side."""
        rotated = self.info.rotation in (90, 270)
        height, width = (self.info.width, self.info.height) if rotated else (self.info.height, self.info.width)
        if max_side is None or max(height, width) <= max_side:
            return height, width
        return _scaled_size(height, width, max_side)

    def _decord_reader(self, max_side: int | None):
        import decord

        size = self._decode_size(max_side)
        if size not in self._decord_readers:
            native = size == self._decode_size(None)
            height, width = (-1, -1) if native else size
            self._decord_readers[size] = _decord_call(decord.VideoReader, self.info.path, width=width, height=height)
        return self._decord_readers[size]

    def _decord_frames(self, positions: list[int], max_side: int | None) -> Iterator[tuple[int, np.ndarray]]:
        reader = self._decord_reader(max_side)
        expected = (*self._decode_size(max_side), 3)
        for position in positions:
            frame = _decord_call(reader.__getitem__, position).asnumpy()
            # decord2 3.4 returns mis-shaped arrays for some widths (e.g. 48 or 96 px): measured.
            if frame.shape != expected:
                raise VideoError(f"decord returned a {frame.shape} frame, expected {expected}")
            yield position, frame

    # -- PyAV

    def _pyav_frames(self, positions: list[int]) -> Iterator[tuple[int, _YUVFrame]]:
        """Decode forward through the stream; jump (seek) to a keyframe only when the next wanted
        frame lies past it and the jump skips more frames than a seek costs, so sparse samples
        cost a GOP each and dense ones one pass. Frame 0, which probing decoded, is not decoded
        again unless frames after it are read through. A frame that does not decode is replaced
        by the next one that does; every loop ends with the file."""
        timed = self._index.timed
        if not timed:  # frames are counted from the start: no seeking, a fresh pass each time
            self._close_container()
        if self._container is None:
            self._container = _open_container(self.info.path)
            self._container.streams.video[0].thread_type = _thread_type(self.info.width * self.info.height)
        container = self._container
        stream = container.streams.video[0]
        # Skipping frames is only safe while frames are identified by timestamp, not counted.
        wanted_timestamps = {int(self._index.timestamps[position]) for position in positions} if timed else None
        frames: Iterator[av.VideoFrame] | None = None
        decoded = -1
        wanted = 0
        first, self._first = self._first, None
        if first is not None and positions and positions[0] == 0 and self._index.position_of(first.pts) == 0:
            yield 0, _YUVFrame(first, self.info.rotation, self._converters)
            wanted, decoded = 1, 0
        del first  # not held through the pass (8K: 50 MB)
        while wanted < len(positions):
            target = positions[wanted]
            keyframe = self._index.keyframe_before(target)
            if frames is None or keyframe - decoded > _SEEK_COST_FRAMES:
                if timed:  # probing or an earlier pass left the demuxer elsewhere
                    container.seek(int(self._index.timestamps[keyframe]), stream=stream, backward=True)
                frames, decoded = _decoded_frames(container, stream, wanted_timestamps), keyframe - 1
            for frame in frames:
                position = self._index.position_of(frame.pts)
                decoded = decoded + 1 if position is None else position
                if decoded >= target:
                    view = _YUVFrame(frame, self.info.rotation, self._converters)
                    while wanted < len(positions) and positions[wanted] <= decoded:
                        yield positions[wanted], view
                        wanted += 1
                    break
            else:
                readable = min(decoded + 1, self.info.num_frames)
                raise TruncatedVideoError(
                    f"{self.info.path}: the video stops after {readable} of {self.info.num_frames} frames "
                    f"(truncated or corrupt); frame {target} cannot be read",
                    readable,
                )

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    # -- public

    def iter_frames(self, indices: Sequence[int], max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) for each distinct index in increasing order, long side <= max_side."""
        if max_side is not None and max_side < 1:
            raise VideoError(f"max_side must be a positive number of pixels, got {max_side}")
        for position, decoded in self._iter_decoded(dict.fromkeys((int(index) for index in indices), max_side)):
            yield position, decoded.rgb(max_side)

    def _backend_for(self, native_patches: bool) -> str:
        """The backend that reads a request: decord decodes straight to RGB, so requests for
        native-resolution patches go to PyAV, which crops them first, unless decord was asked for."""
        return "pyav" if native_patches and self._allow_fallback else self.info.backend

    def _iter_decoded(
        self, sides: dict[int, int | None], native_patches: bool = False
    ) -> Iterator[tuple[int, _RGBFrame | _YUVFrame]]:
        """One pass over the frames in `sides` ({index: largest long side any view of it needs,
        None for native}), each decoded once, in increasing order; decord opens one reader at the
        largest size, PyAV decodes natively and converts each view on its own."""
        positions = sorted(sides)
        if positions and (positions[0] < 0 or positions[-1] >= self.info.num_frames):
            raise VideoError(
                f"{self.info.path}: frame indices must lie in [0, {self.info.num_frames}), got {positions[0]}..{positions[-1]}"
            )
        done = 0
        if self._backend_for(native_patches) == "decord":
            try:
                for position, frame in self._decord_frames(positions, _largest(sides.values())):
                    yield position, _RGBFrame(frame)
                    done += 1
                return
            except Exception as error:  # any decord failure: continue with PyAV from here
                if not self._allow_fallback:
                    raise VideoError(f"{self.info.path}: decord failed to read frames ({_reason(error)})") from None
                self._drop_decord()
        yield from self._pyav_frames(positions[done:])

    def _drop_decord(self) -> None:
        self._decord_readers.clear()
        self.info = dataclasses.replace(self.info, backend="pyav")

    def read(self, indices: Sequence[int], max_side: int | None = None) -> np.ndarray:
        """Frames (len(indices), H, W, 3) in the order given (repeats allowed), RGB uint8."""
        if len(indices) == 0:
            raise VideoError(f"{self.info.path}: no frame indices to read")
        frames = dict(self.iter_frames(indices, max_side))
        return np.stack([frames[int(index)] for index in indices])

    def truncate(self, readable_frames: int) -> None:
        """Restrict the reader to the first `readable_frames` frames (after a TruncatedVideoError)."""
        self.info = dataclasses.replace(
            self.info, num_frames=readable_frames, duration=readable_frames / self.info.fps
        )
        self._index = self._index.first(readable_frames)

    def close(self) -> None:
        self._decord_readers.clear()
        self._converters.clear()
        self._close_container()
        self._first = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_video(path, backend: str = "auto") -> VideoReader:
    """Open a video for reading (a context manager); raises VideoError for anything unreadable."""
    return VideoReader(path, backend=backend)


def probe(path, backend: str = "auto") -> VideoInfo:
    """Metadata without decoding the video: frames counted from packets, plausible fps, display
    size and rotation, and the backend that will read it."""
    with open_video(path, backend=backend) as reader:
        return reader.info


# ---------------------------------------------------------------- sampling


def _long_side_for(info: VideoInfo, min_short_side: int) -> int | None:
    """The long-side limit that scales the picture (aspect kept) so that its short side is
    `min_short_side`, or None (native size) if it is that small already."""
    if min_short_side < 1:
        raise VideoError(f"min_short_side must be a positive number of pixels, got {min_short_side}")
    short, long = sorted((info.width, info.height))
    return None if min_short_side >= short else math.ceil(long * min_short_side / short)


@dataclass(frozen=True)
class _SamplingPlan:
    """What to take from each range: the keyword arguments of sample_video."""

    num_keyframes: int = 8
    num_motion_frames: int = 16
    max_side: int | None = None
    motion_max_side: int | None = None
    fragment_grid: int | None = None
    fragment_patch: int = 32
    motion_burst: int = 1
    seek: str = "exact"
    min_short_side: int | None = None
    motion_min_short_side: int | None = None

    def __post_init__(self):
        if self.seek not in SEEK_MODES:
            raise VideoError(f"unknown seek mode {self.seek!r}; choose one of {', '.join(SEEK_MODES)}")
        for limit, short in (("max_side", "min_short_side"), ("motion_max_side", "motion_min_short_side")):
            if getattr(self, limit) is not None and getattr(self, short) is not None:
                raise VideoError(f"give either {limit} or {short}, not both")

    def long_sides(self, info: VideoInfo) -> tuple[int | None, int | None]:
        """(keyframe, motion) long-side limits for this video, None for native size."""
        pairs = ((self.max_side, self.min_short_side), (self.motion_max_side, self.motion_min_short_side))
        return tuple(limit if short is None else _long_side_for(info, short) for limit, short in pairs)


def _sample_range(reader: VideoReader, plan: _SamplingPlan, start: int, stop: int | None) -> VideoSample:
    """Keyframes and motion frames over [start, stop): decode each needed frame once, in
    increasing order, and take its views (downscaled pictures, fragments) while it is held."""
    info = reader.info
    stop = info.num_frames if stop is None else min(stop, info.num_frames)
    keyframe_positions, motion_positions = sample_indices(
        start, stop, plan.num_keyframes, plan.num_motion_frames, plan.motion_burst, plan.seek, reader._index.keyframes
    )
    keyframe_side, motion_side = plan.long_sides(info)
    native_patches = bool(plan.fragment_grid)
    # decord decodes each frame once at one size: the largest its views need (fragments: native).
    sides: dict[int, int | None] = dict.fromkeys(motion_positions, motion_side)
    for position in keyframe_positions:
        sides[position] = _largest([None if native_patches else keyframe_side, sides.get(position, keyframe_side)])
    keyframes: dict[int, np.ndarray] = {}
    patches: dict[int, np.ndarray] = {}
    motion: dict[int, np.ndarray] = {}
    for position, decoded in reader._iter_decoded(sides, native_patches):
        if position in keyframe_positions:
            keyframes[position] = decoded.rgb(keyframe_side)
            if native_patches:
                patches[position] = decoded.fragments(plan.fragment_grid, plan.fragment_patch)
        if position in motion_positions:
            motion[position] = decoded.rgb(motion_side)
    return VideoSample(
        info=dataclasses.replace(reader.info, backend=reader._backend_for(native_patches)),
        keyframes=np.stack([keyframes[position] for position in keyframe_positions]),
        keyframe_indices=keyframe_positions,
        motion=np.stack([motion[position] for position in motion_positions]),
        motion_indices=motion_positions,
        fragments=np.stack([patches[position] for position in keyframe_positions]) if native_patches else None,
        start_frame=start,
        stop_frame=stop,
    )


def _sample_readable(reader: VideoReader, plan: _SamplingPlan, start: int, stop: int | None) -> VideoSample:
    """Sample; if the file turns out truncated, sample again over the frames that decode,
    provided enough of them remain (else the truncation is the error)."""
    info = reader.info
    enough = max(plan.num_keyframes, MIN_READABLE_FRACTION * max(info.declared_frames, info.num_frames))
    if info.declared_frames > info.num_frames and info.num_frames < enough:
        raise VideoError(
            f"{info.path}: truncated, only {info.num_frames} of the {info.declared_frames} frames "
            "its header declares are present; too few to sample"
        )
    try:
        return _sample_range(reader, plan, start, stop)
    except TruncatedVideoError as error:
        if error.readable_frames < max(enough, start + 1):
            raise VideoError(f"{error}; too few frames are left to sample") from None
        reader.truncate(error.readable_frames)
        return _sample_range(reader, plan, start, stop)


def sample_video(
    path,
    num_keyframes: int = 8,
    num_motion_frames: int = 16,
    max_side: int | None = None,
    motion_max_side: int | None = None,
    fragment_grid: int | None = None,
    fragment_patch: int = 32,
    backend: str = "auto",
    start_frame: int = 0,
    stop_frame: int | None = None,
    motion_burst: int = 1,
    seek: str = "exact",
    min_short_side: int | None = None,
    motion_min_short_side: int | None = None,
) -> VideoSample:
    """Keyframes (one per equal segment), a motion clip with a hard frame budget and, if
    fragment_grid is set, native-resolution fragments of the keyframes, from one video.

    seek="exact": keyframes at the segment centres (keyframe_indices), motion runs centred in
    theirs (motion_clip_indices). seek="keyframe", the rule the model is trained and evaluated
    with: a segment holding a stream keyframe (I-frame) takes the one nearest its centre, and a
    motion run starts at the stream keyframe nearest its planned start if the run still fits in
    its segment; such frames cost no decoding of the frames before them, so sampling time stops
    following the keyframe interval. seek="official": keyframes at the official FineVQ's indices
    (official_keyframe_indices), motion as under "exact". The sample records the indices actually used.
    num_motion_frames=0: every frame (repeated up to MIN_EVERY_FRAME in shorter videos), unbounded.
    motion_burst: frames per motion run (1: single frames spread evenly).
    max_side / motion_max_side: long-side limits of keyframes / motion frames, applied while
    decoding; min_short_side / motion_min_short_side instead scale (aspect kept) so that the short
    side is at least that (for a model that resizes to S x S). Fragments are always cut at native
    resolution, from the decoded frame before any full-size RGB picture exists (PyAV).
    A truncated file is sampled over the frames that still decode when at least
    max(num_keyframes, MIN_READABLE_FRACTION of its frames) remain; otherwise VideoError."""
    plan = _SamplingPlan(
        num_keyframes, num_motion_frames, max_side, motion_max_side, fragment_grid, fragment_patch,
        motion_burst, seek, min_short_side, motion_min_short_side,
    )
    with open_video(path, backend=backend) as reader:
        return _sample_readable(reader, plan, start_frame, stop_frame)


def sample_windows(path, window_seconds: float, backend: str = "auto", **sample_kwargs) -> list[VideoSample]:
    """Quality over time: the video cut into windows of `window_seconds` (see window_bounds),
    each sampled like sample_video (same keyword arguments) from one open reader."""
    plan = _SamplingPlan(**sample_kwargs)
    samples = []
    with open_video(path, backend=backend) as reader:
        for start, stop in window_bounds(reader.info, window_seconds):
            if start >= reader.info.num_frames:
                break  # the file turned out truncated before this window
            samples.append(_sample_readable(reader, plan, start, stop))
    return samples
