"""extract on a folder with many kinds of bad files among good ones, against a clean copy of the good ones.

Every bad file must be in the bad-inputs CSV with a specific reason, every good one in the cache, and
the good files' features bit-identical to a run without the bad files (bad and good share batches).
"""

from __future__ import annotations

import builtins
import csv
import errno
import io
import os
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import featurekit.api
import featurekit.extract.dataset
from featurekit.api import extract
from featurekit.cache import load_features
from featurekit.config import PreprocessOverrides
from featurekit.extract import ExtractionSettings
from featurekit.images import hash_contents, load_image_index

SETTINGS = ExtractionSettings(progress=False, batch_size=4, num_workers=0, device="cpu")
PREPROCESS = PreprocessOverrides(img_size=32)


# --- good files: the tricky valid kinds, each with its own content --------------------------------


def _pixels(seed: int, size: tuple[int, int] = (40, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 216, size=3)
    noise = rng.integers(-40, 40, size=(size[1], size[0], 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _rgb(path: Path, seed: int, **save: Any) -> None:
    Image.fromarray(_pixels(seed)).save(path, **save)


def _cmyk(path: Path, seed: int) -> None:
    Image.fromarray(_pixels(seed)).convert("CMYK").save(path, quality=95)


def _sixteen_bit(path: Path, seed: int) -> None:
    grey = _pixels(seed)[:, :, 0].astype(np.uint16) * 257
    Image.fromarray(grey).save(path)


def _grey(path: Path, seed: int) -> None:
    Image.fromarray(_pixels(seed)[:, :, 1]).save(path)


def _palette_transparent(path: Path, seed: int) -> None:
    img = Image.fromarray(_pixels(seed)).quantize(16)
    img.save(path, transparency=0)


def _rgba(path: Path, seed: int) -> None:
    alpha = np.random.default_rng(seed).integers(0, 256, size=(32, 40, 1), dtype=np.uint8)
    Image.fromarray(np.concatenate([_pixels(seed), alpha], axis=2)).save(path)


def _exif_rotated(path: Path, seed: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_pixels(seed)).save(path, exif=exif, quality=95)


def _animated(path: Path, seed: int) -> None:
    frames = [Image.fromarray(_pixels(seed + k)) for k in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)


def _bilevel(path: Path, seed: int) -> None:
    Image.fromarray(_pixels(seed)[:, :, 2]).convert("1").save(path)


GOOD: dict[str, Callable[[Path, int], None]] = {
    "cats/00_rgb.jpg": lambda p, s: _rgb(p, s, quality=90),
    "cats/02_cmyk.jpg": _cmyk,
    "cats/04_16bit.png": _sixteen_bit,
    "cats/06_grey.png": _grey,
    "cats/08_palette_transparent.png": _palette_transparent,
    "cats/10_rgba.png": _rgba,
    "cats/12_rgb.bmp": _rgb,
    "cats/16_bilevel.png": _bilevel,
    "dogs/00_exif_rotated.jpg": _exif_rotated,
    "dogs/02_animated.gif": _animated,
    "dogs/04_lossy.webp": lambda p, s: _rgb(p, s, quality=80),
    "dogs/06_lossless.webp": lambda p, s: _rgb(p, s, lossless=True),
    "dogs/08_rgb.png": _rgb,
    "dogs/10_rgb.tiff": _rgb,
    "dogs/16_rgb.png": _rgb,
}


# --- bad files ------------------------------------------------------------------------------------


def _encoded(fmt: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels(seed)).save(buffer, fmt)
    return buffer.getvalue()


def _corrupt_jpeg() -> bytes:
    data = bytearray(_encoded("JPEG", 99))
    table = data.find(b"\xff\xc4")  # overwrite the Huffman table: libjpeg cannot go on
    data[table + 4 : table + 30] = b"\xff" * 26
    return bytes(data)


def _corrupt_png() -> bytes:
    data = bytearray(_encoded("PNG", 98))
    idat = data.find(b"IDAT")
    data[idat + 40 : idat + 80] = bytes(40)
    return bytes(data)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(side: int) -> bytes:
    row = b"\x00" + bytes((side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


LIMIT = Image.MAX_IMAGE_PIXELS
BOMB = rf"decompression bomb: {{}} pixels exceeds the limit of {LIMIT} \(PIL\.Image\.MAX_IMAGE_PIXELS\)"

# path -> (bytes, stage, reason regex). Names interleave with the good files, so batches of 4 mix both.
BAD_BYTES: dict[str, tuple[bytes, str, str]] = {
    "cats/01_empty.jpg": (b"", r"read|decode", r"empty file \(0 bytes\)"),
    "cats/03_notes.jpg": (
        b"shopping list\n",
        "decode",
        r"not an image \(a text file, cannot identify image file\)",
    ),
    "cats/05_page.png": (
        b"<!DOCTYPE html><html><body>403 Forbidden</body></html>",
        "decode",
        r"not an image \(an HTML page, cannot identify image file\)",
    ),
    "cats/07_truncated.jpg": (
        _encoded("JPEG", 97)[:900],
        "decode",
        r"truncated image \(image file is truncated",
    ),
    "cats/09_truncated.png": (
        _encoded("PNG", 96)[:2000],
        "decode",
        r"truncated image \(image file is truncated",
    ),
    "cats/11_corrupt.jpg": (_corrupt_jpeg(), "decode", r"corrupt image data \(OSError: broken data stream"),
    "cats/13_corrupt.png": (_corrupt_png(), "decode", r"corrupt image data \(OSError: broken data stream"),
    "dogs/01_bad_header.jpg": (
        b"\xff\xd8\xff\xe0" + bytes(300),
        "decode",
        r"not an image \(a JPEG with a corrupt header, cannot identify image file\)",
    ),
    "dogs/03_no_frames.gif": (
        b"GIF89a" + struct.pack("<HH", 8, 8) + b"\x00\x00\x00;",
        "decode",
        r"not an image \(a GIF with a corrupt header or no frames, cannot identify image file\)",
    ),
    "dogs/05_invalid.webp": (
        b"RIFF\x20\x00\x00\x00WEBPVP8 " + bytes(24),
        "decode",
        r"corrupt image data \(OSError: could not create decoder object\)",
    ),
    "dogs/07_bomb.png": (_bomb_png(20000), "decode", BOMB.format(400000000)),
    "dogs/09_bomb_warning_level.png": (_bomb_png(10000), "decode", BOMB.format(100000000)),
}
# Made differently: a link to nothing, a named pipe (opening it would block), and three that go bad
# after the folder is listed (vanished before hashing, vanished before decoding, unreadable).
DANGLING = "dogs/15_dangling_link.jpg"
FIFO = "dogs/13_pipe.png"
VANISHED = "cats/15_vanished.jpg"
GONE_BEFORE_DECODE = "dogs/11_gone_before_decode.jpg"
UNREADABLE = "cats/17_unreadable.png"
SPECIAL: dict[str, tuple[str, str]] = {
    DANGLING: ("read", r"broken symbolic link \(its target '.*nowhere\.jpg' does not exist\)"),
    FIFO: ("read", r"not a regular file \(a FIFO \(named pipe\)\); not read"),
    VANISHED: ("read", r"file vanished after listing \(FileNotFoundError\)"),
    GONE_BEFORE_DECODE: ("read", r"file vanished after listing \(FileNotFoundError\)"),
    UNREADABLE: ("read", r"permission denied \(PermissionError\)"),
}
GENERIC_READ = "file could not be read"  # what api.extract said for every hashing failure before reasons


def _make_good(root: Path) -> None:
    for seed, (rel, make) in enumerate(GOOD.items()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        make(root / rel, seed)


def _make_dirty(root: Path) -> None:
    _make_good(root)
    for rel, (data, _, _) in BAD_BYTES.items():
        (root / rel).write_bytes(data)
    (root / DANGLING).symlink_to(root / "dogs" / "nowhere.jpg")
    os.mkfifo(root / FIFO)
    for rel in (VANISHED, GONE_BEFORE_DECODE, UNREADABLE):
        _rgb(root / rel, 1000 + len(rel))
    (root / "cats" / "14_folder.jpg").mkdir()  # a folder named like an image: not a file, not listed


def _deny_reading(monkeypatch: pytest.MonkeyPatch, locked: Path) -> None:
    """Root reads a file of mode 000 anyway: as root, refuse it at the open() boundary (EACCES)."""

    def refusing(real: Callable[..., Any]) -> Callable[..., Any]:
        def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(locked):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
            return real(file, *args, **kwargs)

        return open_

    monkeypatch.setattr(builtins, "open", refusing(builtins.open))
    monkeypatch.setattr(io, "open", refusing(io.open))  # pathlib.Path.open calls io.open


def _extract(data: Path, out: Path) -> Any:
    return extract(
        data, backbone="test_resnet", weights="random", out=out, preprocess=PREPROCESS, settings=SETTINGS
    )


def _read_bad_inputs(path: Path | None) -> dict[str, dict[str, str]]:
    assert path is not None and path.is_file()
    with path.open(newline="", encoding="utf-8") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def _features_by_path(cache: Path) -> dict[str, np.ndarray]:
    features = load_features(cache)
    return {p: features.X[i] for i, p in enumerate(features.rows.paths)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("bad-inputs")
    dirty, clean = tmp_path / "dirty", tmp_path / "clean"
    _make_dirty(dirty)
    _make_good(clean)
    # Bad and good rows share batches: the sorted order interleaves them (0 good, 1 bad, 2 good, ...).
    # Every forward pass holds at least 2 images in both runs (clean: 4, 4, 4, 3; dirty: 3, then 2s):
    # see test_a_batch_left_with_one_image for why a single-image pass is kept out of this test.
    order = load_image_index(dirty).paths
    assert order == sorted(set(GOOD) | set(BAD_BYTES) | set(SPECIAL))
    clean_report = _extract(clean, tmp_path / "clean.h5")

    real_index = featurekit.api.load_image_index
    real_load_image = featurekit.extract.dataset.load_image
    hashed_reasons: dict[str, str] = {}

    def listed_then_spoiled(*args: Any, **kwargs: Any) -> Any:
        index = real_index(*args, **kwargs)  # the folder is listed: now files go bad under it
        (dirty / VANISHED).unlink()
        (dirty / UNREADABLE).chmod(0)
        if os.geteuid() == 0 or os.access(dirty / UNREADABLE, os.R_OK):
            _deny_reading(monkeypatch, dirty / UNREADABLE)
        result = hash_contents(index)  # what the hashing stage says about each listed file
        hashed_reasons.update({index.paths[r]: why for r, why in result.unreadable().items()})
        return index

    def decode_after_removal(*args: Any, **kwargs: Any) -> Any:
        (dirty / GONE_BEFORE_DECODE).unlink(missing_ok=True)  # hashed already; gone before decoding
        return real_load_image(*args, **kwargs)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(featurekit.api, "load_image_index", listed_then_spoiled)
        monkeypatch.setattr(featurekit.extract.dataset, "load_image", decode_after_removal)
        dirty_report = _extract(dirty, tmp_path / "dirty.h5")
    return {
        "clean": clean_report,
        "dirty": dirty_report,
        "bad": _read_bad_inputs(dirty_report.bad_inputs_csv),
        "hashed_reasons": hashed_reasons,
    }


def test_every_bad_file_is_reported_and_every_good_one_extracted_unchanged(runs: dict[str, Any]) -> None:
    bad = runs["bad"]
    expected = {rel: (stage, reason) for rel, (_, stage, reason) in BAD_BYTES.items()} | SPECIAL
    assert len(expected) >= 12 and len(GOOD) >= 12
    assert set(bad) == set(expected), "every bad file reported, nothing else"
    for rel, (stage, reason) in expected.items():
        row = bad[rel]
        assert re.fullmatch(stage, row["stage"]), (rel, row)
        if row["stage"] == "read" and row["reason"] == GENERIC_READ:
            continue  # checked against hash_contents below; see test_read_failures_have_specific_reasons
        assert re.match(reason, row["reason"]), (rel, row["reason"])

    clean = _features_by_path(runs["clean"].cache_path)
    dirty = _features_by_path(runs["dirty"].cache_path)
    assert set(clean) == set(GOOD) == set(dirty), "every good file extracted, in both runs"
    differ = {
        rel: float(np.abs(dirty[rel] - clean[rel]).max())
        for rel in GOOD
        if not np.array_equal(dirty[rel], clean[rel])
    }
    assert not differ, f"features differ from the clean run (max abs difference): {differ}"
    assert runs["dirty"].rows == len(GOOD)


def test_hashing_gives_the_specific_read_reasons(runs: dict[str, Any]) -> None:
    # What api.extract can report at the "read" stage: hash_contents' reason for each listed file.
    assert runs["hashed_reasons"] == {
        "cats/01_empty.jpg": "empty file (0 bytes)",
        VANISHED: "file vanished after listing (FileNotFoundError)",
        UNREADABLE: "permission denied (PermissionError); make the file readable by this user",
        FIFO: "not a regular file (a FIFO (named pipe)); not read",
        DANGLING: runs["hashed_reasons"][DANGLING],
    }
    assert re.fullmatch(SPECIAL[DANGLING][1], runs["hashed_reasons"][DANGLING])


def test_read_failures_have_specific_reasons(runs: dict[str, Any]) -> None:
    read = {rel: row["reason"] for rel, row in runs["bad"].items() if row["stage"] == "read"}
    assert GENERIC_READ not in read.values()


def test_provenance_records_exif_orientation_and_rgba_background(runs: dict[str, Any]) -> None:
    preprocess = load_features(runs["dirty"].cache_path).provenance["preprocess"]
    assert preprocess["exif_transpose"] is True
    assert list(preprocess["rgba_background"]) == [255, 255, 255]


def test_clean_copy_has_no_bad_inputs_csv(runs: dict[str, Any]) -> None:
    assert runs["clean"].bad_inputs_csv is None
    assert not runs["clean"].cache_path.with_name("clean.h5.bad-inputs.csv").exists()


def test_a_batch_left_with_one_image(tmp_path: Path) -> None:
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    for root in (clean, dirty):
        (root / "only").mkdir(parents=True)
        _rgb(root / "only" / "0_good.png", 1)
        _rgb(root / "only" / "4_good.png", 2)
    for name in ("1_bad.jpg", "2_bad.jpg", "3_bad.jpg"):
        (dirty / "only" / name).write_text(f"not an image: {name}")
    reports = {root.name: _extract(root, tmp_path / f"{root.name}.h5") for root in (clean, dirty)}
    assert len(_read_bad_inputs(reports["dirty"].bad_inputs_csv)) == 3
    clean_x, dirty_x = (_features_by_path(reports[n].cache_path) for n in ("clean", "dirty"))
    assert set(clean_x) == set(dirty_x) == {"only/0_good.png", "only/4_good.png"}
    for rel in clean_x:  # clean: one pass of 2 images; dirty: [good, bad, bad, bad] then [good]
        assert np.array_equal(dirty_x[rel], clean_x[rel]), rel
