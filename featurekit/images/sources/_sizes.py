"""Image sizes from file headers (no pixel decoding), for checking boxes before any model work."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image

ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # transposed / rotated by 90 or 270 degrees

Frame = tuple[int, int]  # (width, height)


def box_frames(path: Path) -> list[Frame] | None:
    """The (width, height) frames a box on this image may be given in; None if the header is unreadable.

    The stored frame comes first; the quarter-turned frame follows when EXIF orientation may swap
    the sides (orientations 5-8, or a PNG whose EXIF cannot be seen without decoding).

    Boxes are in the frame of the image as displayed (after EXIF orientation) when extraction
    applies EXIF orientation, the default, and in the stored frame otherwise: both frames are
    returned when they differ, so a box is only rejected here when it fits neither. The decoder
    checks again in the frame actually used. An unreadable header returns None: decoding reports
    that file later, with the reason.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if img.format == "PNG" and "exif" not in img.info:
                    orientation = None  # a PNG's eXIf chunk may follow the pixels; finding it means decoding
                else:
                    orientation = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # any unreadable header is reported by the decoder later, with its reason
        return None
    if (orientation is not None and orientation not in _SWAPPING_ORIENTATIONS) or width == height:
        return [(width, height)]
    return [(width, height), (height, width)]  # stored, then rotated by a quarter turn


def outside_every_frame(box: tuple[float, float, float, float], frames: list[Frame]) -> bool:
    """Whether nothing of `box` (non-negative x1 < x2, y1 < y2) is left after clamping it to any frame."""
    x1, y1, _, _ = box
    return all(x1 >= width or y1 >= height for width, height in frames)
