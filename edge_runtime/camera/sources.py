"""Frame sources for the camera loop: V4L2 cameras, video files, stream URLs and the Pi camera.

Files are read in order, every frame. Live sources (a camera index, a URL, `picamera`) are read by
a grabber thread that keeps only the newest frame, so the classifier always sees the present and
never a queue of the past; a live source that stops delivering is reopened with backoff and the
gap is reported instead of crashing or hanging. With a rate limit (`--max-fps`), the frames in
between are skipped: grabbed but not decoded where the capture allows (a V4L2 camera), and a
video file is taken at that many frames a second of its own time. With a decode scale
(`--decode-scale`), an MJPEG source is read as its JPEG packets and each is decoded at a half, a
quarter or an eighth of its size (ReducedJpegCapture).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge_runtime.camera.preprocess import DEFAULT_OPTIONS
from edge_runtime.camera.video import believable_rate
from edge_runtime.core.errors import FmnistEdgeError
from edge_runtime.core.image_size import header_size, jpeg_truncated, over_limit

log = logging.getLogger(__name__)

if "OPENCV_LOG_LEVEL" not in os.environ:
    # OpenCV's own "[ WARN ] can't open camera by index" lines would come before the one line that says
    # what failed and what to try; OPENCV_LOG_LEVEL=WARNING brings them back for debugging a camera.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

PICAMERA = "picamera"
MAX_GAPS = 100
CAPTURE_SIZES = (16, 4096)
"""The smallest and largest width or height `--capture-size` takes."""


@dataclass
class Frame:
    image: np.ndarray
    """BGR uint8 [H,W,3], as OpenCV gives it."""
    index: int
    """0-based position of the frame in the source (for a live source: frames grabbed so far)."""
    captured: float
    """time.perf_counter() when the frame was read."""
    scale: int = 1
    """The source's pixels per pixel of `image`: N when the frame was decoded at 1/N of its size
    (`--decode-scale`), else 1."""

    def in_source_pixels(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A box (x, y, w, h) in `image`'s pixels -> in the source's (to within `scale` - 1 pixels)."""
        return box if self.scale == 1 else tuple(v * self.scale for v in box)

    def in_image_pixels(self, roi: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        """A region (x, y, w, h) in the source's pixels -> in `image`'s: every pixel it touches."""
        if roi is None or self.scale == 1:
            return roi
        s, (x, y, w, h) = self.scale, roi
        return x // s, y // s, -(-(x + w) // s) - x // s, -(-(y + h) // s) - y // s


class SourceError(FmnistEdgeError):
    pass


class RateLimit:
    """Which frames to take for at most `hz` a second: a frame is taken when it comes at least a
    period after the last one taken was due, less an eighth of a period, so the jitter of a camera's
    clock does not halve the rate (a 30 fps camera limited to 15 gives every second frame). The due
    times step by one period: `hz` frames a second on average, and never more than one over in any
    second; after a gap longer than a period the next frame is taken and the steps start from it."""

    def __init__(self, hz: float):
        if not (hz > 0 and math.isfinite(hz)):
            raise ValueError(f"a rate limit of {hz} frames a second: give a number above 0")
        self.period = 1.0 / hz
        self._due: float | None = None

    def take(self, t: float) -> bool:
        """Whether the frame at time `t` (seconds, any origin that only grows) is taken."""
        if self._due is not None and t < self._due - self.period / 8:
            return False
        gap = self._due is None or t > self._due + self.period
        self._due = t + self.period if gap else self._due + self.period
        return True


def kind_of(source: str) -> str:
    """"index", "file", "url" or "picamera"."""
    if source == PICAMERA:
        return "picamera"
    if source.isascii() and source.isdigit():
        return "index"
    if "://" in source:
        return "url"
    return "file"


class _Picamera2Capture:
    """The Pi camera module through Picamera2, behind the read()/release() face of cv2.VideoCapture.

    OpenCV cannot open the libcamera-only sensors (Camera Module 3) on Raspberry Pi OS.
    """

    def __init__(self, size: tuple[int, int] = (640, 480), fps: float | None = None):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("--source picamera needs Picamera2: sudo apt install python3-picamera2, and create "
                              "the venv with --system-site-packages so it can see it") from None
        try:
            self._camera = Picamera2()
            # "RGB888" is stored B, G, R in memory: already OpenCV's order.
            # A frame rate is asked for as libcamera's frame duration limits, in microseconds.
            controls = {} if fps is None else {"FrameDurationLimits": (round(1e6 / fps),) * 2}
            config = self._camera.create_video_configuration(main={"size": size, "format": "RGB888"},
                                                             controls=controls)
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:  # libcamera reports a missing or busy camera in several ways
            raise SourceError(f"cannot open the Pi camera ({exc}); check the ribbon cable and "
                              "`rpicam-hello --list-cameras`") from None

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            return True, self._camera.capture_array("main")
        except Exception:
            return False, None

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        self._camera.stop()
        self._camera.close()


MAX_INDEX = 1023
OPEN_TIMEOUT_MS = 10_000
"""How long OpenCV may wait for a stream to answer when opening it, and for each frame after."""


def _opened(factory: Callable[[], object]):
    """Run a blocking OpenCV open in a helper thread and wait for it here, so Ctrl-C and SIGTERM end
    the wait at once (a stream that never answers would hold the main thread inside OpenCV)."""
    box: dict = {}

    def run() -> None:
        try:
            box["capture"] = factory()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    opener = threading.Thread(target=run, name="open source", daemon=True)
    opener.start()
    while opener.is_alive():
        opener.join(0.1)
    if "error" in box:
        raise box["error"]
    return box["capture"]


def open_capture(source: str, size: tuple[int, int] | None = None, fps: float | None = None,
                 decode_scale: int | str = 1):
    """An opened capture for `source`, or a SourceError naming the source and what to try. `size` (width,
    height) asks a camera (an index or picamera) for frames of that size (`--capture-size`); `fps` asks it
    for at most that many frames a second (`--max-fps`: a camera may have no such mode and send more,
    which the source then skips); `decode_scale` N > 1 decodes an MJPEG source's frames at 1/N of their
    size, AUTO at the smallest that keeps the item search's copy (`--decode-scale`, ReducedJpegCapture; any
    other source is decoded in full, and says so)."""
    kind = kind_of(source)
    if size is not None:
        check_capture_size(source)
    if kind == "picamera":
        if decode_scale != 1:
            log.warning("--decode-scale is for MJPEG sources; the Pi camera's frames are not JPEG: taken in full")
        return _Picamera2Capture(size or (640, 480), fps)
    if kind == "index":
        if int(source) > MAX_INDEX:
            raise SourceError(f"camera index {source} is out of range: give 0 to {MAX_INDEX} (`ls /dev/video*` "
                              "lists the cameras), a video file or a stream URL")
        capture = _opened(lambda: cv2.VideoCapture(int(source)))
        if size is not None and capture.isOpened():
            _ask_size(capture, source, size)
        if fps is not None and capture.isOpened():
            capture.set(cv2.CAP_PROP_FPS, fps)  # a request: the camera picks the nearest rate it has
        hint = "check `ls /dev/video*`, that no other program holds the camera, or try another index"
    elif kind == "file":
        _check_image_size(source)
        capture = _opened(lambda: cv2.VideoCapture(source))
        hint = "check the path and that OpenCV can decode the file"
    else:
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS]
        capture = _opened(lambda: cv2.VideoCapture(source, cv2.CAP_ANY, timeouts))
        hint = "check the URL, the network, and that the stream is up"
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"cannot open camera source {source!r}: {hint}")
    _check_frame_size(capture, source)
    return capture if decode_scale == 1 else _reduced(capture, source, decode_scale)


AUTO = "auto"
DECODE_SCALES = (1, 2, 4, 8, AUTO)
"""What `--decode-scale` takes: libjpeg decodes a JPEG at 1/1, 1/2, 1/4 or 1/8 of its size; AUTO picks, frame by
frame, the smallest of them whose longest side is still at least the item search's copy (PreprocessOptions.
work_side, 128 px): a quarter of 640x480, an eighth of 1280x720, a half of 320x240."""
_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
          8: cv2.IMREAD_REDUCED_COLOR_8}
MJPEG = "MJPG"
_RAW_PACKETS = {"FFMPEG": (cv2.CAP_PROP_FORMAT, -1), "V4L2": (cv2.CAP_PROP_CONVERT_RGB, 0)}
"""How each OpenCV backend is asked for a frame's bytes as the source sent them, not decoded."""


def auto_scale(size: tuple[int, int], side: int = DEFAULT_OPTIONS.work_side) -> int:
    """The largest of 1, 2, 4 and 8 that leaves a frame of `size` (width, height) a longest side of at least `side`
    (libjpeg rounds a scaled side up)."""
    return max(n for n in (1, 2, 4, 8) if n == 1 or -(-max(size) // n) >= side)


def _fourcc(capture) -> str:
    code = int(capture.get(cv2.CAP_PROP_FOURCC) or 0)
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4)).strip("\x00 ") or "unknown"


def _reduced(capture, source: str, scale: int | str):
    """`capture` read as JPEG packets decoded at 1/`scale` (ReducedJpegCapture) when it is MJPEG and its backend
    gives packets; otherwise the capture as it is, with a warning that its frames are decoded in full."""
    if scale not in DECODE_SCALES or scale == 1:
        raise ValueError(f"decode_scale must be one of {DECODE_SCALES[1:]}")
    if kind_of(source) == "index" and _fourcc(capture) != MJPEG:
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*MJPEG))  # a camera with MJPEG modes switches
    fourcc, backend = _fourcc(capture), capture.getBackendName()
    raw = _RAW_PACKETS.get(backend)
    if fourcc != MJPEG or raw is None or not capture.set(*raw):
        log.warning("--decode-scale %s: %s gives %s frames (OpenCV's %s backend), not MJPEG packets; decoding them "
                    "in full", scale, source, fourcc, backend)
        return capture
    return ReducedJpegCapture(capture, source, scale)


class ReducedJpegCapture:
    """An MJPEG capture read as its JPEG packets, each decoded at 1/`scale` of its size (AUTO: auto_scale's) by
    libjpeg's DCT scaling (`--decode-scale`): a quarter decodes a 640x480 frame in about half the time of a
    full decode, and the frame preprocessing then starts from 160x120, not 640x480 (docs/camera.md). A
    damaged frame libjpeg can still decode is decoded, and libjpeg says so on stderr itself, as it does
    under OpenCV's own V4L2 decoding of an MJPEG camera. A packet's size is
    read from its header before it is decoded: a frame over the pixel limit (core.image_size) is skipped,
    not decoded, however the stream began; so is a JPEG cut short (as a photo is) and a packet that is not
    a JPEG libjpeg can read. A backend
    that hands over a decoded image after all has it passed on as it is (`frame_scale` 1)."""

    def __init__(self, capture, source: str, scale: int | str):
        self._capture = capture
        self.source = source
        self.scale = scale
        """2, 4 or 8, or AUTO: each frame's own (auto_scale)."""
        self.frame_scale = 1
        """The source's pixels per pixel of the last frame given."""
        self.skipped_packets = 0

    def isOpened(self) -> bool:
        return self._capture.isOpened()

    def get(self, prop: int) -> float:
        return self._capture.get(prop)

    def grab(self) -> bool:
        return self._capture.grab()

    def retrieve(self) -> tuple[bool, np.ndarray | None]:
        """The grabbed frame, decoded; one that does not decode is skipped (and said why) for the next one that
        does. (False, None) at the end, or after MAX_BAD_PACKETS in a row that do not."""
        for _ in range(MAX_BAD_PACKETS):
            ok, packet = self._capture.retrieve()
            if not ok or packet is None:
                return False, None
            if (image := self._decode(packet)) is not None:
                return True, image
            if not self._capture.grab():
                return False, None
        return False, None

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self.retrieve() if self._capture.grab() else (False, None)

    def release(self) -> None:
        self._capture.release()

    def _decode(self, packet: np.ndarray) -> np.ndarray | None:
        if packet.ndim == 3 or (packet.ndim == 2 and min(packet.shape) > 1):  # decoded by the backend after all
            self.frame_scale = 1
            return packet
        raw = packet.reshape(-1)
        data = raw.tobytes()
        try:
            size = header_size(data) if raw.size else None
            problem = "not an image file" if size is None else over_limit(size)
        except ValueError as exc:
            problem = str(exc)
        if not problem and jpeg_truncated(data):  # as photos are refused (data.images): its rest would be grey
            problem = "a JPEG cut short: no end marker"
        image = None
        if not problem:
            scale = auto_scale(size) if self.scale == AUTO else self.scale
            image = cv2.imdecode(raw, _FLAGS[scale])
        if image is None:
            self.skipped_packets += 1
            if self.skipped_packets % MAX_BAD_PACKETS == 1:  # the first, then one line per MAX_BAD_PACKETS
                log.warning("%s: skipped a frame (%s; %d so far): it is not decoded", self.source,
                            problem or "libjpeg cannot decode it", self.skipped_packets)
            return None
        self.frame_scale = scale
        return image


MAX_BAD_PACKETS = 100
"""Packets in a row that do not decode before a ReducedJpegCapture gives up on its source (an end of file, or a
live source reopened)."""


def _frame_size(capture) -> tuple[int, int] | None:
    """The width and height the capture says its frames have; None when it does not say."""
    w, h = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 1 for v in (w, h)):
        return None
    return int(w), int(h)


def _check_frame_size(capture, source: str) -> None:
    """Frames are bounded like photos (core.image_size): a video of a few MB can hold frames of 12000x12000,
    1.5 GB of memory when decoded, more than a Pi has. Known once the capture is open, before a frame is
    decoded; a stream reopened after a gap is checked again."""
    if problem := over_limit(_frame_size(capture)):
        capture.release()
        raise SourceError(f"camera source {source!r} gives frames of {problem}: give a smaller video or stream, "
                          "or raise the limit")


def _ask_size(capture, source: str, size: tuple[int, int]) -> None:
    """Ask a V4L2 camera for frames of `size`; a camera picks the nearest mode it has, and says which."""
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
    got = _frame_size(capture)
    if got is not None and got != tuple(size):
        log.warning("camera %s gives %dx%d frames, not the %dx%d asked for (the nearest size it has)",
                    source, *got, *size)


def check_capture_size(source: str) -> None:
    """`--capture-size` is for a camera (an index or picamera): for anything else, a SourceError line."""
    if kind_of(source) not in ("index", PICAMERA):
        raise SourceError(f"--capture-size is for a camera (--source 0, 1, ... or {PICAMERA}); the frames of "
                          f"{source!r}, a file or a stream, are the size they are")


def parse_size(value: str) -> tuple[int, int]:
    """WIDTHxHEIGHT in pixels (`--capture-size 320x240`); a ValueError line says what is wrong."""
    width, sep, height = value.strip().lower().partition("x")
    if not (sep and width.isascii() and width.isdigit() and height.isascii() and height.isdigit()):
        raise ValueError(f"{value!r} is not WIDTHxHEIGHT, e.g. 320x240")
    low, high = CAPTURE_SIZES
    if not (low <= int(width) <= high and low <= int(height) <= high):
        raise ValueError(f"{value}: width and height must each be {low} to {high} pixels")
    return int(width), int(height)


def _check_image_size(source: str) -> None:
    """A still image given as the source is bounded like a photo (core.image_size): FFmpeg decodes a
    16000x16000 PNG into gigabytes before the first frame."""
    try:
        with open(source, "rb") as handle:
            size = header_size(handle.read(1 << 16))
    except (OSError, ValueError):
        return  # not readable or not an image header: OpenCV says what it can
    if problem := over_limit(size):
        raise SourceError(f"camera source {source!r} is an image of {problem}: give a smaller image or a video, "
                          "or raise the limit")


def capture_rate(capture, source: str) -> float:
    """The frame rate the capture says it has, when it is believable (`video.RATES`), else 0: not known."""
    said = capture.get(cv2.CAP_PROP_FPS)
    fps = believable_rate(said)
    if not fps and said:
        log.warning("%s says it has %s frames a second; taken as not known", source, said)
    return fps


def _read(capture, limit: RateLimit | None, t: Callable[[], float]) -> tuple[bool, np.ndarray | None, bool]:
    """(ok, image, taken): the next frame of `capture`, read only when `limit` takes it at time t()
    (grabbed, then retrieved); a frame it leaves is skipped, not decoded where the capture allows."""
    if limit is None:
        return (*capture.read(), True)
    if not (hasattr(capture, "grab") and hasattr(capture, "retrieve")):
        ok, image = capture.read()
        ok = bool(ok) and image is not None
        return ok, image, ok and limit.take(t())
    if not capture.grab():
        return False, None, False
    if not limit.take(t()):
        return True, None, False
    ok, image = capture.retrieve()
    return ok, image, True


class FileSource:
    """Every frame of a video file, in order; `fps` is the file's own frame rate. With `max_fps`, at most
    that many frames a second of the file's own time (the others are skipped), as a camera asked for that
    rate would give them; a file without a frame rate gives every frame."""

    live = False
    rate: float
    """Frames a second this source delivers, as a recording of them should play: the file's own rate,
    or `max_fps` where that is lower; 0 when the file has no rate (every frame is delivered then)."""

    def __init__(self, source: str, opener: Callable = open_capture, max_fps: float | None = None):
        self.name = source
        self._capture = opener(source)
        self.fps = capture_rate(self._capture, source)
        self._next = 0
        self.dropped = self.skipped = 0
        self.gaps: list[float] = []
        self.gap_count = 0
        self._limit = RateLimit(max_fps) if max_fps is not None and self.fps > 0 else None
        self.rate = min(self.fps, max_fps) if self._limit is not None else self.fps
        if max_fps is not None and self._limit is None:
            log.warning("%s has no frame rate: --max-fps cannot tell which frames to skip; taking every frame",
                        source)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame (the next one the rate limit takes), or None at the end of the file."""
        while True:
            ok, image, taken = _read(self._capture, self._limit, lambda: self._next / self.fps)
            if not ok:
                return None
            if taken:
                break
            self._next += 1
            self.skipped += 1
        if image is None:
            return None
        # the index counts the file's frames that did not decode too
        frame = Frame(image, self._next + self.undecoded, time.perf_counter(), getattr(self._capture, "frame_scale", 1))
        self._next += 1
        return frame

    @property
    def undecoded(self) -> int:
        """Frames of the file skipped undecoded (--decode-scale: damaged, cut short, over the pixel limit)."""
        return getattr(self._capture, "skipped_packets", 0)

    def close(self) -> None:
        self._capture.release()


class LiveSource:
    """A grabber thread reads continuously and keeps only the newest frame.

    `read` returns the newest frame not yet returned; frames the grabber replaced before they were
    read are counted in `dropped`. When the source stops delivering, the grabber reopens it with
    exponential backoff (0.5 s doubling to `max_backoff`) and records each gap in `gaps` (seconds; the
    last MAX_GAPS of them, so weeks of a flaky stream cost constant memory).
    """

    live = True
    rate: float
    """Frames a second this source delivers: the camera's own rate, or `max_fps` where that is lower or the
    camera does not say; 0 when neither is known."""

    def __init__(self, source: str, opener: Callable = open_capture, max_backoff: float = 5.0,
                 max_fps: float | None = None):
        self.name = source
        self._opener = opener
        self._capture = opener(source)  # the first open fails loudly: nothing has been seen yet
        self.fps = capture_rate(self._capture, source)
        self._limit = RateLimit(max_fps) if max_fps is not None else None
        self.rate = self.fps if max_fps is None else min(self.fps or max_fps, max_fps)
        self.skipped = 0
        """Frames the rate limit left out (grabbed, not decoded, where the capture allows)."""
        self._max_backoff = max_backoff
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._delivered = -1
        self._grabbed = 0
        self.dropped = 0
        self._undecoded_before = 0
        """Frames skipped undecoded by the captures this source was reopened from (see `undecoded`)."""
        self.gaps: deque[float] = deque(maxlen=MAX_GAPS)
        self.gap_count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._grab, name=f"grab {source}", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        while not self._stop.is_set():
            ok, image, taken = _read(self._capture, self._limit, time.perf_counter)
            if ok and not taken:
                self.skipped += 1
                self._grabbed += 1  # a frame the source gave: the indices count it, as a file's do
            elif ok and image is not None:
                with self._cond:
                    if self._latest is not None and self._latest.index > self._delivered:
                        self.dropped += 1
                    self._latest = Frame(image, self._grabbed, time.perf_counter(),
                                         getattr(self._capture, "frame_scale", 1))
                    self._grabbed += 1
                    self._cond.notify_all()
            else:
                self._reopen()

    def _reopen(self) -> None:
        lost = time.perf_counter()
        log.warning("camera source %s stopped delivering frames; reopening", self.name)
        self._capture.release()
        delay = 0.5
        while not self._stop.wait(delay):
            try:
                capture = self._opener(self.name)
            except FmnistEdgeError:
                delay = min(delay * 2, self._max_backoff)
                continue
            with self._cond:  # the old capture's count moves here as the new one takes its place: counted once
                self._undecoded_before += getattr(self._capture, "skipped_packets", 0)
                self._capture = capture
            gap = time.perf_counter() - lost
            self.gaps.append(gap)
            self.gap_count += 1
            log.warning("camera source %s is back after a %.1f s gap", self.name, gap)
            return

    @property
    def undecoded(self) -> int:
        """Frames the source gave that were skipped undecoded (--decode-scale: damaged, cut short, over the pixel
        limit), over every reopening."""
        with self._cond:
            return self._undecoded_before + getattr(self._capture, "skipped_packets", 0)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not returned before; None if none arrives within `timeout` seconds."""
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._stop.is_set() or (self._latest is not None and self._latest.index > self._delivered),
                timeout)
            if not ready or self._stop.is_set():
                return None
            self._delivered = self._latest.index
            return self._latest

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._capture.release()


def open_source(source: str, opener: Callable = open_capture, max_fps: float | None = None):
    """A FileSource for a video file, a LiveSource for anything live; `max_fps`: at most that many frames
    a second (`--max-fps`)."""
    if kind_of(source) == "file":
        return FileSource(source, opener, max_fps)
    return LiveSource(source, opener, max_fps=max_fps)
