"""Bad and unusual images: one clear error naming the file, or a correct RGB decode."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from camloc import ImageError, load_image


def save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def photo(w=64, h=48):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "mode,fmt",
    [("L", "PNG"), ("RGBA", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"), ("1", "PNG")],
)
def test_modes_decode_to_rgb(tmp_path, mode, fmt):
    img = photo().convert(mode) if mode != "I;16" else Image.fromarray(
        np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20)
    path = save(tmp_path, f"x.{fmt.lower()}", img, format=fmt)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (64, 48)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.full((40, 40), 65535, np.uint16)
    arr[:20] = 32768
    path = save(tmp_path, "deep.png", Image.fromarray(arr))
    out = np.asarray(load_image(path))
    assert out[30, 0, 0] == 255 and 120 <= out[0, 0, 0] <= 135


def test_transparent_pixels_become_white(tmp_path):
    arr = np.zeros((40, 40, 4), np.uint8)
    arr[..., 3] = 0
    out = np.asarray(load_image(save(tmp_path, "clear.png", Image.fromarray(arr, "RGBA"))))
    assert (out == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    img = photo(80, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    assert load_image(path).size == (40, 80)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty"),
        (b"hello, I am text\n" * 10, "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not an image|cannot be opened"),
    ],
)
def test_broken_files(tmp_path, content, match):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=match) as err:
        load_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    photo(200, 200).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated") as err:
        load_image(path)
    assert "cut.jpg" in str(err.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


@pytest.mark.parametrize("size", [(1, 1), (20, 300)])
def test_tiny_images_are_refused(tmp_path, size):
    path = save(tmp_path, "tiny.png", Image.new("RGB", size))
    with pytest.raises(ImageError, match="smaller than 32 px"):
        load_image(path)


def _png_declaring(width, height):
    """A PNG whose header claims width x height (the pixel data is not there)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(100_000, 100_000))
    with pytest.raises(ImageError, match="decompression bomb") as err:
        load_image(path)
    assert "bomb.png" in str(err.value)


def test_pixel_limit_is_adjustable(tmp_path):
    path = save(tmp_path, "big.png", photo(400, 300))
    with pytest.raises(ImageError, match="limit"):
        load_image(path, max_pixels=100_000)
    assert load_image(path, max_pixels=None).size == (400, 300)


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((50, 60, 3), np.uint8),
        np.zeros((50, 60), np.uint8),
        np.ones((50, 60, 3), np.float32),
        np.full((50, 60, 3), 60000, np.uint16),
        np.zeros((3, 50, 60), np.uint8),
        np.zeros((50, 60, 4), np.uint8),
    ],
)
def test_numpy_arrays(arr):
    out = load_image(arr)
    assert out.mode == "RGB" and out.size == (60, 50)


def test_bad_arrays():
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((50, 50, 3), np.nan, np.float32))
    with pytest.raises(ImageError):
        load_image(np.zeros((50, 50, 2), np.uint8))
    with pytest.raises(ImageError, match="not an image"):
        load_image(42)
