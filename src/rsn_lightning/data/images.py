"""Image reading for the data pipeline: cheap header checks at indexing time, robust decoding later.

Indexing a dataset must not decode every image (COCO train has 118k), so ``probe_image`` reads only
the file header (JPEG SOF / PNG IHDR / BMP, falling back to a reduced decode for other formats) and
checks that a JPEG ends with its end-of-image marker, which catches files cut short by an interrupted
copy. ``read_image`` always returns uint8 BGR (H, W, 3), converting grayscale, alpha and 16-bit
images, or None when the file cannot be decoded, including a JPEG whose header and end marker are
intact but whose body is corrupt (bit flips, a body cut short before a re-appended end marker): libjpeg
then still returns an image, patched with grey, and its only sign is a "Corrupt JPEG data" warning on
stderr, so the decode captures file descriptor 2 and treats any libjpeg warning as a failed decode.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np

# SOF markers that carry the frame size (C4 = DHT, C8 = JPG extension and CC = DAC do not)
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# how far from the end an end-of-image marker may sit: some cameras append a few bytes of padding
_JPEG_TAIL = 4096


@dataclass(frozen=True)
class ImageProbe:
    """Result of ``probe_image``: ``ok`` with (width, height), or a short ``reason`` it is unusable."""

    ok: bool
    width: int = 0
    height: int = 0
    reason: str = ""


def _jpeg_size(f) -> tuple[int, int] | None:
    f.seek(2)
    while True:
        byte = f.read(1)
        while byte and byte != b"\xff":
            byte = f.read(1)
        while byte == b"\xff":  # markers may be preceded by fill bytes
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # stand-alone markers have no length
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if marker in _JPEG_SOF:
            data = f.read(5)
            if len(data) < 5:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return w, h
        f.seek(length - 2, os.SEEK_CUR)


def _jpeg_complete(f, file_size: int) -> bool:
    f.seek(max(0, file_size - _JPEG_TAIL))
    return b"\xff\xd9" in f.read()


def probe_image(path) -> ImageProbe:
    """Size of an image from its header, without decoding it (a reduced decode for rare formats)."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        return ImageProbe(False, reason="missing image")
    if size == 0:
        return ImageProbe(False, reason="empty image file")
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head[:2] == b"\xff\xd8":
                wh = _jpeg_size(f)
                if wh is None:
                    return ImageProbe(False, reason="unreadable image header")
                if not _jpeg_complete(f, size):
                    return ImageProbe(False, reason="truncated image")
                w, h = wh
            elif head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
                w, h = struct.unpack(">II", head[16:24])
            elif head[:2] == b"BM" and len(head) >= 26:
                w, h = struct.unpack("<ii", head[18:26])
                h = abs(h)  # negative height marks a top-down bitmap
            else:
                img = cv2.imread(path, cv2.IMREAD_REDUCED_GRAYSCALE_8)
                if img is None:
                    return ImageProbe(False, reason="unreadable image")
                # the reduced size is ceil(size / 8); the exact size is checked again at decode time
                h, w = img.shape[0] * 8, img.shape[1] * 8
    except OSError:
        return ImageProbe(False, reason="unreadable image")
    if w <= 0 or h <= 0:
        return ImageProbe(False, reason="unreadable image header")
    return ImageProbe(True, int(w), int(h))


def to_bgr_uint8(img: np.ndarray) -> np.ndarray:
    """Any image cv2 can return (gray, BGRA, 16-bit, float) -> uint8 BGR (H, W, 3)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(img.dtype, np.floating) and float(np.nanmax(img)) <= 1.0 else 1.0
        img = np.clip(np.nan_to_num(img.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 1:
        return cv2.cvtColor(img[..., 0], cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        # composite on black, which is what IMREAD_COLOR does to transparent pixels too
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


_warning_sink = None  # one temp file per process, reused by every decode


def decode_jpeg_checked(buf: np.ndarray) -> tuple[np.ndarray | None, str]:
    """cv2's JPEG decode, and libjpeg's warnings ("Corrupt JPEG data: ...") as text ('' if none).

    libjpeg reports damaged entropy-coded data only as a warning written to stderr by the C library,
    so stderr (fd 2) points at a temp file for the decode. Decodes run in one thread per process
    (the loader's main thread or its worker processes), so nothing else's stderr is caught."""
    global _warning_sink
    if _warning_sink is None:
        _warning_sink = tempfile.TemporaryFile()
    sink = _warning_sink.fileno()
    saved = os.dup(2)
    try:
        os.dup2(sink, 2)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    size = os.lseek(sink, 0, os.SEEK_END)
    message = ""
    if size:
        os.lseek(sink, 0, os.SEEK_SET)
        message = os.read(sink, min(size, 4096)).decode("utf-8", "replace").strip()
        os.ftruncate(sink, 0)
        os.lseek(sink, 0, os.SEEK_SET)
    return img, message


def read_image(path) -> np.ndarray | None:
    """Decode an image as uint8 BGR (H, W, 3); None when it cannot be read or decoded, or when libjpeg
    reports its data corrupt."""
    img, _ = read_image_checked(path)
    return img


def read_image_checked(path) -> tuple[np.ndarray | None, str]:
    """``read_image`` and why it failed ('' when it did not)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            buf = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as err:
        return None, f"unreadable file ({err.strerror})"
    if buf.size == 0:
        return None, "empty image file"
    if buf[:2].tobytes() == b"\xff\xd8":
        # 8-bit JPEG: decoding straight to BGR is the fast path (no alpha or depth to convert)
        img, warning = decode_jpeg_checked(buf)
        if warning:
            return None, f"corrupt JPEG data ({warning.splitlines()[0]})"
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None, "not an image OpenCV can decode"
    return to_bgr_uint8(img), ""


class SkipReport:
    """Counts samples dropped at indexing time (or patched at load time) by reason, and reports them
    once: one log line per reason with the count and a few examples."""

    # reasons that are ordinary in COCO (crowd regions, persons without keypoints): logged at INFO
    EXPECTED = frozenset({"crowd annotation", "no labelled joints", "detection below score threshold",
                          "not the keypoint category"})

    def __init__(self, name: str):
        self.name = name
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        # joints unlabelled inside kept entries: counted apart, they are not skipped samples
        self.joint_counts: dict[str, int] = {}
        self.joint_examples: dict[str, list[str]] = {}

    def add(self, reason: str, example: str = "") -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if example and len(ex) < 3:
            ex.append(example)

    def add_joints(self, reason: str, n: int, example: str = "") -> None:
        if n <= 0:
            return
        self.joint_counts[reason] = self.joint_counts.get(reason, 0) + n
        ex = self.joint_examples.setdefault(reason, [])
        if example and len(ex) < 3:
            ex.append(example)

    def state(self) -> dict:
        """The counts and examples, for a cached dataset index (``index_cache.py``)."""
        return {"counts": dict(self.counts), "examples": {k: list(v) for k, v in self.examples.items()},
                "joint_counts": dict(self.joint_counts),
                "joint_examples": {k: list(v) for k, v in self.joint_examples.items()}}

    @classmethod
    def from_state(cls, name: str, state: dict) -> SkipReport:
        """The report of a cached index, under this run's name: it logs what the indexing counted."""
        report = cls(name)
        report.counts, report.examples = dict(state["counts"]), dict(state["examples"])
        report.joint_counts, report.joint_examples = dict(state["joint_counts"]), dict(state["joint_examples"])
        return report

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def joints_total(self) -> int:
        return sum(self.joint_counts.values())

    def log(self, logger, kept: int) -> None:
        import logging

        for reason, n in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            level = logging.INFO if reason in self.EXPECTED else logging.WARNING
            ex = ", ".join(self.examples.get(reason, []))
            logger.log(level, "%s: skipped %d: %s%s", self.name, n, reason, f" (e.g. {ex})" if ex else "")
        for reason, n in sorted(self.joint_counts.items(), key=lambda kv: -kv[1]):
            ex = ", ".join(self.joint_examples.get(reason, []))
            logger.warning("%s: unlabelled %d joints: %s%s", self.name, n, reason, f" (e.g. {ex})" if ex else "")
        if self.counts or self.joint_counts:
            logger.info("%s: %d entries kept, %d skipped; %d joints unlabelled in kept entries",
                        self.name, kept, self.total, self.joints_total)
