"""Images in: any path or PIL image -> an RGB PIL image of bounded size, or a clear error.

Processors expect 8-bit RGB. Grayscale, palette, CMYK, 16-bit and transparent images are
converted here (transparency is composited over white, as transformers' `convert_to_rgb`
does), and an image larger than the processor would ever use is shrunk first, so a
12,000 x 12,000 photo costs one decode, not gigabytes of float32 inside the processor.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vepo_viz.errors import VepoInputError

MAX_DECODE_PIXELS = 400_000_000
"""Largest image (width x height) decoded at all: 400 Mpx is about 1.2 GB of RGB. Pillow's
own limit (89 Mpx, a warning; 179 Mpx, an error) would reject ordinary large scans."""

MIN_FIT_PIXELS = 1024 * 1024
"""`fit_image` never shrinks below this many pixels, whatever the processor's limit, so
a processor that resizes by itself still gets a faithful input."""


def load_image(image: Image.Image | str | os.PathLike[str]) -> Image.Image:
    """`image` (a PIL image or a path to an image file) as 8-bit RGB (see `to_rgb`).

    A file is decoded once, without extra copies (a 12,000 x 12,000 RGB photo is 432 MB).

    Raises:
        VepoInputError: missing, unreadable, truncated or absurdly large file; wrong type.
    """
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if not isinstance(image, str | os.PathLike):
        raise VepoInputError(
            f"image must be a PIL image or a path to an image file, got {type(image).__name__}"
        )
    path = Path(image)
    if not path.is_file():
        raise VepoInputError(f"image file not found: {path}")
    opened = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
            n_pixels = opened.width * opened.height
            if n_pixels > MAX_DECODE_PIXELS:
                raise VepoInputError(
                    f"image {path} is {opened.width} x {opened.height} = {n_pixels:,} pixels, "
                    f"more than vepo-viz decodes ({MAX_DECODE_PIXELS:,}); shrink it first"
                )
            opened.load()  # decodes now (a truncated file fails here), closes the file
    except VepoInputError:
        opened.close()
        raise
    except PermissionError as error:
        raise VepoInputError(f"cannot read image {path}: permission denied") from error
    except UnidentifiedImageError as error:
        raise VepoInputError(f"{path} is not an image file Pillow can read") from error
    except Image.DecompressionBombError as error:  # pragma: no cover - caught above
        raise VepoInputError(f"image {path} is too large to decode: {error}") from error
    except (OSError, SyntaxError, ValueError) as error:
        if opened is not None:
            opened.close()
        raise VepoInputError(
            f"cannot decode image {path} (truncated or corrupt file?): {error}"
        ) from error
    rgb = to_rgb(opened)
    if rgb is not opened:
        opened.close()
    return rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB version of any PIL image mode (16-bit scaled, alpha over white).

    An RGB image is returned as is, not copied (a 12,000 x 12,000 photo is 432 MB);
    nothing in vepo-viz modifies an image in place.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_to_rgb(image)
    has_alpha = "A" in mode or "a" in mode or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer or float grayscale -> 8-bit RGB by value range."""
    values = np.asarray(image, dtype=np.float64)  # (H, W)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    if image.mode == "F" and top <= 1.0:
        scale = 255.0  # float images in [0, 1]
    elif top > 255.0:
        scale = 255.0 / 65535.0  # 16-bit range (I;16 always; I when it holds 16-bit data)
    else:
        scale = 1.0
    gray = np.clip(np.nan_to_num(values * scale), 0.0, 255.0).round().astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def fit_image(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """`image` shrunk (aspect kept) to at most max(max_pixels, MIN_FIT_PIXELS) pixels."""
    if max_pixels is None:
        return image
    limit = max(int(max_pixels), MIN_FIT_PIXELS)
    width, height = image.size
    if width * height <= limit:
        return image
    factor = math.sqrt(limit / (width * height))
    size = (max(1, math.floor(width * factor)), max(1, math.floor(height * factor)))
    # reducing_gap: box-reduce by an integer factor first, then resample (fast and sharp).
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def image_digest(image: Image.Image) -> str:
    """ "sha256:<hex>" of the RGB bytes and the size: identifies the pixels the model saw."""
    rgb = image if image.mode == "RGB" else to_rgb(image)
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return f"sha256:{digest.hexdigest()}"
