"""Image input: every PIL mode becomes 8-bit RGB, bad files give a clear error, huge
images are shrunk before the processor."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vepo_viz.errors import VepoInputError
from vepo_viz.models.images import (
    MIN_FIT_PIXELS,
    fit_image,
    image_digest,
    load_image,
    to_rgb,
)


def test_grayscale_palette_cmyk_become_rgb(tmp_path):
    gray = Image.new("L", (8, 6), 100)
    assert to_rgb(gray).mode == "RGB" and to_rgb(gray).getpixel((0, 0)) == (100, 100, 100)
    palette = Image.new("RGB", (8, 6), (10, 200, 30)).convert("P")
    assert to_rgb(palette).getpixel((3, 3)) == palette.convert("RGB").getpixel((3, 3))
    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))
    assert to_rgb(cmyk).getpixel((0, 0)) == (255, 255, 255)
    binary = Image.new("1", (4, 4), 1)
    assert to_rgb(binary).getpixel((0, 0)) == (255, 255, 255)
    path = tmp_path / "gray.png"
    gray.save(path)
    assert load_image(path).mode == "RGB"


def test_transparency_is_composited_over_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgb = to_rgb(rgba)
    assert rgb.getpixel((1, 1)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (255, 0, 0)
    la = Image.new("LA", (2, 2), (0, 128))
    assert to_rgb(la).getpixel((0, 0)) == (127, 127, 127)
    palette = Image.new("P", (2, 2), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_images_are_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    rgb = to_rgb(image)
    assert [rgb.getpixel((i, 0))[0] for i in range(3)] == [0, 128, 255]
    path = tmp_path / "deep.png"
    image.save(path)
    assert load_image(path).getpixel((2, 0)) == (255, 255, 255)
    as_int32 = Image.fromarray(values.astype(np.int32))
    assert to_rgb(as_int32).getpixel((1, 0)) == (128, 128, 128)
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert to_rgb(floats).getpixel((1, 0)) == (128, 128, 128)


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(VepoInputError, match="not found"):
        load_image(tmp_path / "nope.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(VepoInputError, match="not an image"):
        load_image(text)
    full = tmp_path / "full.jpg"
    Image.new("RGB", (64, 64), (9, 99, 199)).save(full, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(VepoInputError, match="truncated or corrupt"):
        load_image(truncated)
    with pytest.raises(VepoInputError, match="PIL image or a path"):
        load_image(12345)


def test_fit_image_keeps_aspect_and_small_images():
    small = Image.new("RGB", (640, 480))
    assert fit_image(small, 100) is small  # never below MIN_FIT_PIXELS
    wide = Image.new("RGB", (4000, 1000))
    fitted = fit_image(wide, MIN_FIT_PIXELS)
    assert fitted.width * fitted.height <= MIN_FIT_PIXELS
    assert abs(fitted.width / fitted.height - 4.0) < 0.01
    assert fit_image(wide, None) is wide


def test_digest_depends_on_pixels_and_size():
    a = Image.new("RGB", (4, 4), (1, 2, 3))
    assert image_digest(a) == image_digest(a.copy())
    assert image_digest(a) != image_digest(Image.new("RGB", (4, 4), (1, 2, 4)))
    assert image_digest(a) != image_digest(Image.new("RGB", (2, 8), (1, 2, 3)))
    assert image_digest(a).startswith("sha256:")
