"""Every kind of bad image file gets a specific reason and stage, from hashing and from decoding."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featurekit.extract.dataset import IndexDataset
from featurekit.images import (
    BadImageError,
    ContentHashes,
    content_hashes,
    hash_contents,
    load_image,
    load_image_index,
    open_image_file,
)
from featurekit.images.hashing import hash_file

NOBODY = 65534


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height black pixels: a few kB that decode to `width * height` pixels."""
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def _encoded(fmt: str, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def corrupt_jpeg() -> bytes:
    """A JPEG whose Huffman table is overwritten: libjpeg gives up ("broken data stream")."""
    data = bytearray(_encoded("JPEG"))
    table = data.find(b"\xff\xc4")
    data[table + 4 : table + 30] = b"\xff" * 26
    return bytes(data)


def corrupt_png() -> bytes:
    """A PNG with zeroed bytes inside its compressed pixel data."""
    data = bytearray(_encoded("PNG"))
    idat = data.find(b"IDAT")
    data[idat + 40 : idat + 80] = bytes(40)
    return bytes(data)


# name -> (file bytes, stage, reason regex); every one fails, each for its own reason.
BAD_BYTES: dict[str, tuple[bytes, str, str]] = {
    "empty.jpg": (b"", "decode", r"^empty file \(0 bytes\)$"),
    "text.jpg": (
        b"just some notes\n",
        "decode",
        r"^not an image \(a text file, cannot identify image file\)$",
    ),
    "page.png": (
        b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n",
        "decode",
        r"^not an image \(an HTML page, cannot identify image file\)$",
    ),
    "bad-header.jpg": (
        b"\xff\xd8\xff\xe0" + bytes(200),
        "decode",
        r"^not an image \(a JPEG with a corrupt header, cannot identify image file\)$",
    ),
    "no-frames.gif": (
        b"GIF89a" + struct.pack("<HH", 10, 10) + b"\x00\x00\x00;",
        "decode",
        r"^not an image \(a GIF with a corrupt header or no frames, cannot identify image file\)$",
    ),
    "empty.webp": (
        b"RIFF\x04\x00\x00\x00WEBP",
        "decode",
        r"^not an image \(a WebP with a corrupt header, cannot identify image file\)$",
    ),
    "garbage.webp": (
        b"RIFF\x20\x00\x00\x00WEBPVP8 " + bytes(24),
        "decode",
        r"^corrupt image data \(OSError: could not create decoder object\)$",
    ),
    "random-bytes.png": (
        bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)),
        "decode",
        r"^not an image \(cannot identify image file\)$",
    ),
    "truncated.jpg": (
        _encoded("JPEG")[:1000],
        "decode",
        r"^truncated image \(image file is truncated",
    ),
    "truncated.png": (_encoded("PNG")[:3000], "decode", r"^truncated image \(image file is truncated"),
    "corrupt.jpg": (corrupt_jpeg(), "decode", r"^corrupt image data \(OSError: broken data stream"),
    "corrupt.png": (corrupt_png(), "decode", r"^corrupt image data \(OSError: broken data stream"),
}

LIMIT = Image.MAX_IMAGE_PIXELS


@pytest.mark.parametrize("name", list(BAD_BYTES))
def test_bad_file_gets_a_specific_reason(tmp_path: Path, name: str) -> None:
    data, stage, reason = BAD_BYTES[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(BadImageError) as info:
        open_image_file(tmp_path / name)
    assert info.value.stage == stage
    assert re.search(reason, info.value.reason), info.value.reason
    assert str(info.value) == f"{tmp_path / name}: {info.value.reason}"


@pytest.mark.parametrize(
    ("size", "pixels"),
    [((20000, 20000), 400_000_000), ((10000, 10000), 100_000_000)],  # > 2x the limit: PIL's error;
    ids=["over-2x-limit", "warning-level"],  # 1x-2x: only PIL's warning, an error here too
)
def test_decompression_bombs_are_bad_inputs_without_global_warning_changes(
    tmp_path: Path, size: tuple[int, int], pixels: int
) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(*size))
    assert path.stat().st_size < 100_000  # tiny on disk, huge in memory
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BadImageError) as info:
            open_image_file(path)
    assert info.value.stage == "decode"
    assert info.value.reason == (
        f"decompression bomb: {pixels} pixels exceeds the limit of {LIMIT} (PIL.Image.MAX_IMAGE_PIXELS)"
    )
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == filters_before  # the filter was local to the decode
    assert hash_file(path)[1] == ""  # hashing reads bytes only: a bomb is caught when decoding


def test_special_files_are_not_opened(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    os.mkfifo(tmp_path / "pipe.png")  # opening a FIFO for reading would block forever
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    signal.alarm(20)  # a regression would hang: fail instead
    try:
        cases = {
            "folder.jpg": r"^not a regular file \(a directory\); not read$",
            "pipe.png": r"^not a regular file \(a FIFO \(named pipe\)\); not read$",
            "dangling.jpg": (
                rf"^broken symbolic link \(its target '{re.escape(str(tmp_path / 'nowhere.jpg'))}' does not "
                r"exist\)$"
            ),
        }
        for name, reason in cases.items():
            with pytest.raises(BadImageError, match=reason.replace("^", ": ", 1)) as info:
                open_image_file(tmp_path / name)
            assert info.value.stage == "read"
            digest, why = hash_file(tmp_path / name)
            assert digest == "" and re.fullmatch(reason.strip("^$"), why), why
    finally:
        signal.alarm(0)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for i, name in enumerate(("a/1.png", "a/2.png", "b/3.png")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 60, 10, 10)).save(root / name)
    (root / "b" / "empty.png").write_bytes(b"")
    return root


def test_vanished_after_listing_is_reported_by_hashing_and_decoding(folder: Path) -> None:
    index = load_image_index(folder)
    assert index.paths == ["a/1.png", "a/2.png", "b/3.png", "b/empty.png"]
    (folder / "a" / "2.png").unlink()  # listed, then gone before hashing
    result = hash_contents(index)
    assert isinstance(result, ContentHashes)
    assert result.hashes[1] == "" and len(result.hashes[0]) == len(result.hashes[2]) == 64
    assert result.unreadable() == {
        1: "file vanished after listing (FileNotFoundError)",
        3: "empty file (0 bytes)",  # no content: never given the one hash every empty file shares
    }
    assert result.reasons[0] == result.reasons[2] == ""
    assert content_hashes(index) == result.hashes  # the old API is the same hashes
    assert hash_contents(index, n_jobs=2) == result

    hashed = hash_contents(index)
    (folder / "b" / "3.png").unlink()  # hashed, then gone before decoding
    assert hashed.reasons[2] == ""
    with pytest.raises(
        BadImageError, match=r"3.png: file vanished after listing \(FileNotFoundError\)$"
    ) as info:
        load_image(index, 2)
    assert info.value.stage == "read"


def test_dataset_reports_stage_and_reason_without_the_path_twice(folder: Path) -> None:
    index = load_image_index(folder)
    (folder / "a" / "2.png").unlink()

    def transform(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(image.resize((4, 4))).copy())

    dataset = IndexDataset(index, rows=range(len(index)), transform=transform)
    samples = [dataset[i] for i in range(len(dataset))]
    failures = {row: bad for row, _, bad in samples if bad is not None}
    assert sorted(failures) == [1, 3]
    assert (failures[1].path, failures[1].stage, failures[1].reason) == (
        "a/2.png",
        "read",
        "file vanished after listing (FileNotFoundError)",
    )
    assert (failures[3].stage, failures[3].reason) == ("decode", "empty file (0 bytes)")
    good = {row: tensor for row, tensor, _ in samples if tensor is not None}
    assert sorted(good) == [0, 2] and int(good[2][0, 0, 0]) == 120


_PROBE = """
import json, os, sys
from pathlib import Path
from PIL import Image
from featurekit.images.decode import open_image_file
from featurekit.images.failures import BadImageError
from featurekit.images.hashing import hash_file
uid, paths = int(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
Image.init()  # load every plugin while the interpreter's own files are still readable
open_image_file(paths[0])
if uid >= 0:  # drop root only now: the interpreter lives where `nobody` may not read
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
result = {}
for path in paths:
    try:
        open_image_file(path)
        decoded = None
    except BadImageError as exc:
        decoded = [exc.stage, exc.reason]
    result[path.name] = {"hash": hash_file(path)[1], "decode": decoded}
print(json.dumps(result))
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to the user running the tests)."""
    folder = Path(tempfile.mkdtemp(prefix="featurekit-perm-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _probe(uid: int, paths: list[Path]) -> dict[str, dict[str, object]]:
    """Hash and decode `paths` in a fresh process that runs as `uid` (-1: as this user)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(uid), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    if done.returncode != 0 and "PermissionError" in done.stderr and "setuid" in done.stderr:
        pytest.skip(f"cannot switch to uid {uid} here: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr
    result: dict[str, dict[str, object]] = json.loads(done.stdout)
    return result


def test_permission_denied_is_reported(shared_tmp: Path) -> None:
    """A real EACCES from the kernel. Root reads any file, so as root the check runs as `nobody`."""
    readable = shared_tmp / "readable.png"
    locked = shared_tmp / "locked.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(readable)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(locked)
    readable.chmod(0o644)
    locked.chmod(0o000)
    if os.geteuid() == 0:
        result = _probe(NOBODY, [readable, locked])
    else:
        if os.access(locked, os.R_OK):
            pytest.skip("this user can read a file with mode 000 (a capability); cannot test EACCES")
        result = _probe(-1, [readable, locked])
    # The control proves the folder is reachable: the denial is the file's own mode.
    assert result["readable.png"] == {"hash": "", "decode": None}
    reason = "permission denied (PermissionError); make the file readable by this user"
    assert result["locked.png"] == {"hash": reason, "decode": ["read", reason]}
    assert stat.S_IMODE(locked.stat().st_mode) == 0


def test_animated_gif_first_frame_is_noted_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frames = [Image.new("RGB", (6, 6), colour) for colour in ((0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with caplog.at_level(logging.INFO, logger="featurekit.images.decode"):
        first = open_image_file(tmp_path / "anim.gif")
        open_image_file(tmp_path / "anim.gif")
    assert np.asarray(first)[0, 0].tolist() == [0, 0, 255]
    notes = [r for r in caplog.records if "only the first frame is used" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO
    assert (
        notes[0].getMessage()
        == f"{tmp_path / 'anim.gif'}: 2 frames (animated or multi-page); only the first frame is used"
    )
