"""Image decoding and the one preprocessing implementation (checked against timm's own transform)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.errors import ImageError
from edge.images import MAX_PIXELS, load_image, preprocess, resize_and_crop
from edge.preprocessing import PreprocessSpec
from models.zoo import model_spec
from tests.helpers import require_timm

HERE = Path(__file__).parent


def photo_like(w, h, seed=0):
    """Smooth gradients plus texture: resampling filters differ on it, unlike on flat colour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w * 255, yy / h * 255, (xx + yy) % 97 * 2.6], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    paths = []
    for i, (w, h) in enumerate([(640, 480), (300, 500), (256, 256), (1000, 333), (231, 260)]):
        path = folder / f"img{i}.png"
        photo_like(w, h, i).save(path)
        paths.append(path)
    return paths


def test_paper_preprocessing_matches_timm(image_files, tmp_path):
    require_timm()
    out = tmp_path / "timm.npz"
    subprocess.run([sys.executable, str(HERE / "timm_transform.py"), str(out), *map(str, image_files)],
                   check=True, capture_output=True, timeout=300)
    expected = np.load(out)["inputs"]
    ours = preprocess(image_files, model_spec("200mf").preprocessing)
    assert ours.shape == expected.shape == (len(image_files), 224, 224, 3)
    assert np.abs(ours - expected).max() < 1e-5


def test_shapes_and_crop_geometry():
    spec = PreprocessSpec(height=224, width=224)
    im = photo_like(640, 480)
    assert resize_and_crop(im, spec).size == (224, 224)
    stretch = PreprocessSpec(resize="stretch", crop_fraction=1.0, interpolation="bilinear", height=100, width=50)
    assert resize_and_crop(im, stretch).size == (50, 100)
    inside = model_spec("200mf", "seed").preprocessing  # the model normalizes: raw pixels come out
    x = preprocess([im], inside)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 255.0 and x.max() > 200


def test_modes_become_rgb(tmp_path):
    rgb = np.asarray(photo_like(64, 48))
    cases = {
        "gray.png": Image.fromarray(rgb[..., 0]),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "gray16.png": Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        loaded = load_image(tmp_path / name)
        assert loaded.mode == "RGB" and loaded.size == (64, 48), name
    sixteen = np.asarray(load_image(tmp_path / "gray16.png"))[..., 0]
    assert np.abs(sixteen.astype(int) - rgb[..., 0]).max() <= 1  # 16-bit scaled back to 8, not clipped


def test_exif_orientation_is_applied(tmp_path):
    im = photo_like(60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (40, 60)


def test_bad_files_are_named(tmp_path):
    photo_like(64, 64).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.png").write_text("not an image")
    for name in ["cut.jpg", "text.png", "missing.jpg"]:
        with pytest.raises(ImageError, match=name):
            load_image(tmp_path / name)


def test_decompression_bomb_is_refused(tmp_path):
    side = int(MAX_PIXELS**0.5) + 10
    Image.new("1", (side, side)).save(tmp_path / "bomb.png")  # tiny file, huge image
    with pytest.raises(ImageError, match="bomb.png.*limit"):
        load_image(tmp_path / "bomb.png")


def test_an_extreme_aspect_ratio_is_refused_before_resizing(tmp_path):
    """1x100000 pixels is under the decompression limit, but its shorter side resized to 256 would be 25.6 G
    pixels: refused in one line before any resize."""
    from edge.images import resize_and_crop
    from edge.preprocessing import PreprocessSpec

    Image.new("RGB", (1, 100_000)).save(tmp_path / "line.png")
    with pytest.raises(ImageError, match="image of 1x100000 is too elongated"):
        resize_and_crop(load_image(tmp_path / "line.png"), PreprocessSpec())
