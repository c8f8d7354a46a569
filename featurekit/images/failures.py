"""Why an image file could not be used: one short, specific reason per kind of bad file.

Shared by content hashing (stage "read") and decoding (stages "read", "decode", "crop") so that the
bad-inputs report says the same thing for the same problem, wherever it was found.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from featurekit.errors import InvalidInputError

_BOMB_MESSAGE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")
_SNIFF_BYTES = 512


class BadImageError(InvalidInputError):
    """One image that cannot be used: its `path`, the `stage` that failed and a short `reason`.

    `stage` is "read" (the file cannot be opened or read), "decode" (its bytes are not a usable
    image) or "crop" (its box lies outside the image). str(error) is "<path>: <reason>".
    """

    def __init__(self, path: str | Path, reason: str, *, stage: str = "decode") -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.stage = stage


def read_failure_reason(path: Path, exc: OSError) -> str:
    """Why opening or reading `path` raised `exc` (FileNotFoundError, PermissionError, ...)."""
    if isinstance(exc, FileNotFoundError):
        if path.is_symlink():
            return f"broken symbolic link (its target {str(path.readlink())!r} does not exist)"
        return "file vanished after listing (FileNotFoundError)"
    if isinstance(exc, PermissionError):
        return "permission denied (PermissionError); make the file readable by this user"
    if isinstance(exc, IsADirectoryError):
        return "a directory, not a file (IsADirectoryError)"
    return f"cannot read the file ({type(exc).__name__}: {exc.strerror or exc})"


def special_file_reason(path: Path) -> str | None:
    """A reason when `path` is not a regular file (a FIFO would block a reader forever), else None.

    Raises OSError when `path` cannot be stat'ed (use `read_failure_reason`).
    """
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        kind = "a directory"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO (named pipe)"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "not a regular file"
    return f"not a regular file ({kind}); not read"


def _sniff(path: Path) -> str:
    """What the first bytes of an unidentifiable file look like, for the reason text."""
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return ""
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered[:200]:
        return "an HTML page, "
    if head.startswith(b"\xff\xd8"):
        return "a JPEG with a corrupt header, "
    if head.startswith(b"\x89PNG"):
        return "a PNG with a corrupt header, "
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF with a corrupt header or no frames, "
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP with a corrupt header, "
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return "a text file, " if text and all(c.isprintable() or c.isspace() for c in text) else ""


def bomb_reason(exc: Exception) -> str:
    """The reason for a DecompressionBombError or DecompressionBombWarning (treated alike)."""
    limit = Image.MAX_IMAGE_PIXELS
    match = _BOMB_MESSAGE.search(str(exc))
    if match is None:
        return f"decompression bomb ({exc}); limit PIL.Image.MAX_IMAGE_PIXELS = {limit}"
    return (
        f"decompression bomb: {match.group(1)} pixels exceeds the limit of {limit} "
        "(PIL.Image.MAX_IMAGE_PIXELS)"
    )


def decode_failure(path: Path, exc: Exception) -> BadImageError:
    """The BadImageError for an exception raised while opening, decoding or converting `path`."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return BadImageError(path, bomb_reason(exc))
    if isinstance(exc, UnidentifiedImageError):
        return BadImageError(path, f"not an image ({_sniff(path)}cannot identify image file)")
    if isinstance(exc, OSError) and exc.errno is not None:  # the file system, not the image data
        return BadImageError(path, read_failure_reason(path, exc), stage="read")
    message = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError):
        return BadImageError(path, "not enough memory to decode the image (MemoryError)")
    if isinstance(exc, OSError) and "truncated" in message:
        return BadImageError(path, f"truncated image ({message})")
    return BadImageError(path, f"corrupt image data ({type(exc).__name__}: {message})")
