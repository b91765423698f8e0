"""Decoding images robustly and turning them into model inputs, by a model's PreprocessSpec.

This is the kit's one preprocessing implementation: calibration, validation, the edge CLIs and
(through golden vectors) the Android core all use it. It follows timm's evaluation transform for
the paper flavour (shorter side to size / crop_fraction, centre crop, with Pillow's filters), so a
model imported from timm sees the inputs timm would give it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from edge.errors import ImageError, first_line
from edge.preprocessing import PreprocessSpec

# Larger images are refused by name (decompression-bomb guard). Pillow's own limit, which it checks
# while opening, before anything of ours could: one number, kept where Pillow reads it.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
            "nearest": Image.Resampling.NEAREST}


def load_image(path: str | Path) -> Image.Image:
    """An RGB Pillow image, upright (EXIF orientation applied), whatever the file's mode.

    Grayscale, palette, RGBA/LA (composited on white), CMYK and 16-bit images become 8-bit RGB.
    A corrupt, truncated or oversized file raises ImageError naming it.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return to_rgb(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{path}: the image is over the {MAX_PIXELS:,} pixel limit; downscale it first") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's ways of saying corrupt or unknown
        raise ImageError(f"{path}: not a readable image ({first_line(exc, 200)})") from None


def image_files(root: str | Path) -> list[Path]:
    """Every image file under a folder (recursively, by suffix), sorted by path; [] when there is none."""
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode; transparency is composited on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grayscale (PNG opens as "I"): scale to 8 bits
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")


MAX_RESIZED_PIXELS = 64_000_000  # about 190 MB of RGB: any sane photo, resized, is far below


def resize_and_crop(im: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Resize (and centre-crop) to the spec's (height, width), as timm's eval transform does."""
    im = to_rgb(im)
    resample = _FILTERS[spec.interpolation]
    if spec.resize == "stretch":
        return im.resize((spec.width, spec.height), resample)
    short = spec.resize_size
    w, h = im.size
    if w <= h:
        new_w, new_h = short, int(short * h / w)
    else:
        new_w, new_h = int(short * w / h), short
    if new_w * new_h > MAX_RESIZED_PIXELS:
        raise ImageError(f"image of {w}x{h} is too elongated: its shorter side resized to {short} makes it "
                         f"{new_w}x{new_h} pixels; crop it to a less extreme aspect ratio first")
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), resample)
    top = int(round((new_h - spec.height) / 2.0))
    left = int(round((new_w - spec.width) / 2.0))
    if top < 0 or left < 0:
        raise ImageError(f"image of {w}x{h} is too small for a {spec.width}x{spec.height} crop after resizing")
    return im.crop((left, top, left + spec.width, top + spec.height))


def to_input(im: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """One image as a (height, width, 3) float32 model input, normalized unless the model does it."""
    pixels = np.asarray(resize_and_crop(im, spec), dtype=np.float32)
    if spec.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    if spec.normalize_in_model:
        return np.ascontiguousarray(pixels)
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    if spec.channel_order == "BGR":
        mean, std = mean[::-1], std[::-1]
    return np.ascontiguousarray((pixels / np.float32(255.0) - mean) / std)


def preprocess(images, spec: PreprocessSpec) -> np.ndarray:
    """A (N, height, width, 3) float32 batch from paths or Pillow images."""
    arrays = [to_input(load_image(i) if isinstance(i, (str, Path)) else i, spec) for i in images]
    if not arrays:
        raise ImageError("no images to preprocess")
    return np.stack(arrays)
