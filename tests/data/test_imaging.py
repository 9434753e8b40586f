"""Bad and unusual images: one clear error naming the file, or a correct RGB decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from camloc import ImageError, load_image

from ..helpers import noise_photo, painted, png_declaring, save_image


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "1"])
def test_lossless_modes_decode_to_the_same_rgb_pixels(tmp_path, mode):
    img = noise_photo().convert(mode)  # opaque: alpha 255 everywhere
    out = load_image(save_image(tmp_path, "x.png", img, format="PNG"))
    assert out.mode == "RGB" and out.size == (64, 48)
    assert np.array_equal(np.asarray(out), np.asarray(img.convert("RGB")))


def test_cmyk_jpeg_keeps_its_colours(tmp_path):
    colour = (200, 40, 90)
    path = save_image(tmp_path, "x.jpg", Image.new("RGB", (64, 48), colour).convert("CMYK"), format="JPEG")
    out = np.asarray(load_image(path)).astype(int)
    assert out.shape == (48, 64, 3)
    assert np.abs(out - np.array(colour)).max() <= 3  # JPEG of a flat colour is near exact; not inverted


def test_sixteen_bit_ramp_is_scaled_to_eight_bits(tmp_path):
    arr = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20  # 0 .. 61420
    out = np.asarray(load_image(save_image(tmp_path, "x.png", Image.fromarray(arr), format="PNG")))
    assert out.shape == (48, 64, 3) and (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.abs(out[..., 0].astype(int) - arr.astype(float) / 65535 * 255).max() <= 1


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    arr = np.full((40, 40), 65535, np.uint16)
    arr[:20] = 32768
    path = save_image(tmp_path, "deep.png", Image.fromarray(arr))
    out = np.asarray(load_image(path))
    assert out[30, 0, 0] == 255 and 120 <= out[0, 0, 0] <= 135


def test_transparent_pixels_become_white(tmp_path):
    arr = np.zeros((40, 40, 4), np.uint8)
    arr[..., 3] = 0
    out = np.asarray(load_image(save_image(tmp_path, "clear.png", Image.fromarray(arr, "RGBA"))))
    assert (out == 255).all()


def test_exif_rotation_is_applied(tmp_path):
    img = painted(80, 40, (0, 0, 40, 40))  # left half white, right half black
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    out = load_image(path)
    assert out.size == (40, 80)
    arr = np.asarray(out).astype(float)
    assert arr[:36].mean() > 240 and arr[44:].mean() < 15  # the left half is now on top


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
    noise_photo(200, 200).save(buf, format="JPEG")
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
    path = save_image(tmp_path, "tiny.png", Image.new("RGB", size))
    with pytest.raises(ImageError, match="smaller than 32 px"):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(100_000, 100_000))
    with pytest.raises(ImageError, match="decompression bomb") as err:
        load_image(path)
    assert "bomb.png" in str(err.value)


def test_pixel_limit_is_adjustable(tmp_path):
    path = save_image(tmp_path, "big.png", noise_photo(400, 300))
    with pytest.raises(ImageError, match="limit"):
        load_image(path, max_pixels=100_000)
    assert load_image(path, max_pixels=None).size == (400, 300)


RGB = np.array([10, 20, 30], np.uint8)


@pytest.mark.parametrize(
    "arr,pixel",
    [
        (np.broadcast_to(RGB, (50, 60, 3)).copy(), (10, 20, 30)),
        (np.full((50, 60), 77, np.uint8), (77, 77, 77)),  # grayscale: replicated
        (np.full((50, 60, 3), [0.0, 0.5, 1.0], np.float32), (0, 127, 255)),  # floats in [0, 1] scaled
        (np.full((50, 60, 3), [0, 32768, 65535], np.uint16), (0, 127, 255)),  # 16-bit scaled, not clipped
        (np.broadcast_to(RGB[:, None, None], (3, 50, 60)).copy(), (10, 20, 30)),  # channels first
        (np.concatenate([np.broadcast_to(RGB, (50, 60, 3)), np.full((50, 60, 1), 255, np.uint8)], 2), (10, 20, 30)),
        (np.zeros((50, 60, 4), np.uint8), (255, 255, 255)),  # fully transparent: white
    ],
)
def test_numpy_arrays(arr, pixel):
    out = load_image(arr)
    assert out.mode == "RGB" and out.size == (60, 50)
    values = np.asarray(out).reshape(-1, 3)
    assert (values == np.array(pixel)).all(), values[0]


def test_bad_arrays():
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((50, 50, 3), np.nan, np.float32))
    with pytest.raises(ImageError):
        load_image(np.zeros((50, 50, 2), np.uint8))
    with pytest.raises(ImageError, match="not an image"):
        load_image(42)
