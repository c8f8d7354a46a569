"""Decoding every awkward image mode to 8-bit RGB, box crops, and decode errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from featurekit.errors import InvalidInputError
from featurekit.images import BadImageError, load_image, load_image_index, open_image_file
from featurekit.images.decode import crop_to_box


def _pixels(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def test_greyscale_becomes_rgb(tmp_path: Path) -> None:
    Image.new("L", (3, 2), 77).save(tmp_path / "g.png")
    img = open_image_file(tmp_path / "g.png")
    assert img.size == (3, 2)
    assert _pixels(img).tolist() == [[[77, 77, 77]] * 3] * 2


def test_cmyk_jpeg_becomes_the_right_rgb(tmp_path: Path) -> None:
    Image.new("RGB", (16, 16), (200, 30, 40)).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    mean = _pixels(open_image_file(tmp_path / "c.jpg")).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, [200, 30, 40], atol=8)


@pytest.mark.parametrize(("value", "expected"), [(32768, 128), (65535, 255), (0, 0), (257 * 10, 10)])
def test_16_bit_png_is_rescaled_not_saturated(tmp_path: Path, value: int, expected: int) -> None:
    Image.fromarray(np.full((4, 5), value, dtype=np.uint16)).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode in ("I;16", "I")
    pixels = _pixels(open_image_file(tmp_path / "d.png"))
    assert pixels.shape == (4, 5, 3)
    assert np.all(pixels == expected)


def test_palette_with_transparency_is_composited(tmp_path: Path) -> None:
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (2, 0, 4, 2))  # right half: palette entry 1 (blue); left half: entry 0 (transparent red)
    img.save(tmp_path / "p.png", transparency=0)
    assert (
        _pixels(open_image_file(tmp_path / "p.png")).tolist()
        == [[[255, 255, 255]] * 2 + [[0, 0, 255]] * 2] * 2
    )
    on_black = _pixels(open_image_file(tmp_path / "p.png", background=(0, 0, 0)))
    assert on_black[0, 0].tolist() == [0, 0, 0] and on_black[0, 3].tolist() == [0, 0, 255]


def test_rgba_half_transparent_on_white(tmp_path: Path) -> None:
    Image.new("RGBA", (2, 2), (255, 0, 0, 128)).save(tmp_path / "a.png")
    pixel = _pixels(open_image_file(tmp_path / "a.png"))[0, 0]
    np.testing.assert_allclose(pixel, [255, 127, 127], atol=1)
    Image.new("LA", (2, 2), (0, 0)).save(tmp_path / "la.png")
    assert _pixels(open_image_file(tmp_path / "la.png", background=(9, 8, 7)))[1, 1].tolist() == [9, 8, 7]


def test_exif_orientation_6_rotates_a_non_square_image(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    shown = open_image_file(tmp_path / "o.jpg")
    assert shown.size == (20, 40)
    pixels = _pixels(shown)
    assert pixels[5, 10, 0] > 200 and pixels[5, 10, 2] < 50  # the stored left half is now on top
    assert pixels[35, 10, 2] > 200
    assert open_image_file(tmp_path / "o.jpg", exif_transpose=False).size == (40, 20)


def test_animated_gif_gives_the_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(tmp_path / "anim.gif"), "n_frames", 1) == 3
    assert _pixels(open_image_file(tmp_path / "anim.gif"))[3, 3].tolist() == [255, 0, 0]


def test_webp_lossless(tmp_path: Path, rng: np.random.Generator) -> None:
    array = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "w.webp", lossless=True)
    np.testing.assert_array_equal(np.asarray(open_image_file(tmp_path / "w.webp")), array)


def test_truncated_missing_and_non_image_files_raise(tmp_path: Path, rng: np.random.Generator) -> None:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InvalidInputError, match=r"cut.jpg: truncated image \(image file is truncated"):
        open_image_file(tmp_path / "cut.jpg")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(InvalidInputError, match=r"text.png: not an image \(a text file, cannot identify"):
        open_image_file(tmp_path / "text.png")
    with pytest.raises(InvalidInputError, match=r"gone.png: file vanished after listing \(FileNotFoundError"):
        open_image_file(tmp_path / "gone.png")


def test_decompression_bomb_becomes_invalid_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 pixels > 2x the limit -> error
    with pytest.raises(
        InvalidInputError, match=r"big.png: decompression bomb: 10000 pixels exceeds the limit of 1000"
    ):
        open_image_file(tmp_path / "big.png")


@pytest.fixture
def boxed(tmp_path: Path) -> Path:
    array = np.zeros((30, 40, 3), np.uint8)
    array[:, :, 0] = np.arange(40, dtype=np.uint8)[None, :]  # red = x
    array[:, :, 1] = np.arange(30, dtype=np.uint8)[:, None]  # green = y
    Image.fromarray(array).save(tmp_path / "img.png")
    (tmp_path / "boxes.csv").write_text(
        "path,x1,y1,x2,y2\n"
        "img.png,5,10,15,13\n"  # inside
        "img.png,30,20,60,45\n"  # partly outside: clamped to 30..40 x 20..30
        "img.png,2.5,3.2,4.1,5\n"  # fractional: floor/ceil -> 2..5 x 3..5
        "img.png,50,1,60,5\n"  # entirely to the right of the image: skipped when indexing
    )
    return tmp_path / "boxes.csv"


def test_box_crop_clamping_and_outside_box(boxed: Path) -> None:
    index = load_image_index(boxed)
    inside = _pixels(load_image(index, 0))
    assert inside.shape == (3, 10, 3)
    assert inside[0, 0, :2].tolist() == [5, 10] and inside[-1, -1, :2].tolist() == [14, 12]
    clamped = _pixels(load_image(index, 1))
    assert clamped.shape == (10, 10, 3) and clamped[0, 0, :2].tolist() == [30, 20]
    fractional = _pixels(load_image(index, 2))
    assert fractional.shape == (2, 3, 3) and fractional[0, 0, :2].tolist() == [2, 3]
    assert len(index) == 3 and [p.row for p in index.skipped] == [5]
    assert index.skipped[0].reason.startswith("box (50, 1, 60, 5) lies entirely outside the 40x30 image")
    # The decoder checks again in the frame it uses (the index cannot always know it): stage "crop".
    with pytest.raises(
        BadImageError, match=r"img.png: box \(40, 1, 60, 5\) lies outside the 40x30 image"
    ) as info:
        crop_to_box(open_image_file(index.file_path(0)), (40, 1, 60, 5), where=str(index.file_path(0)))
    assert info.value.stage == "crop" and info.value.reason.startswith("box (40, 1, 60, 5) lies outside")
    whole = load_image_index(boxed, box_columns=None)
    assert whole.boxes is None and load_image(whole, 0).size == (40, 30)


def test_webp_with_alpha_is_composited_and_lossy_webp_decodes(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (0, 0, 255, 255)  # left half opaque blue, right half fully transparent
    Image.fromarray(rgba).save(tmp_path / "a.webp", lossless=True)
    assert Image.open(tmp_path / "a.webp").mode == "RGBA"
    pixels = _pixels(open_image_file(tmp_path / "a.webp", background=(10, 200, 30)))
    assert pixels[4, 1].tolist() == [0, 0, 255] and pixels[4, 6].tolist() == [10, 200, 30]
    Image.new("RGB", (16, 16), (200, 40, 60)).save(tmp_path / "lossy.webp", quality=90)
    mean = _pixels(open_image_file(tmp_path / "lossy.webp")).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, [200, 40, 60], atol=6)


def test_bilevel_png_becomes_black_and_white_rgb(tmp_path: Path) -> None:
    bits = np.zeros((4, 6), bool)
    bits[:, 3:] = True
    Image.fromarray(bits).save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    pixels = _pixels(open_image_file(tmp_path / "b.png"))
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[0, 5].tolist() == [255, 255, 255]
