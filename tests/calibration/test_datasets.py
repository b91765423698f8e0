"""Image folders, the bundled photographs, representative/validation sets and their fingerprints."""

import numpy as np
import pytest
from PIL import Image

from calibration.datasets import DatasetError, scan_folder
from calibration.photos import SAMPLES_DIR, bundled_photos, class_names, photo_crops
from calibration.representative import MAX_CALIBRATION, calibration_set, validation_set
from edge.preprocessing import PreprocessSpec

SPEC = PreprocessSpec(height=64, width=64)


def _photo(path, seed=0, size=(96, 80), mode="RGB"):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([xx * 2 + seed * 10, yy * 2, (xx + yy) % 255], -1).astype(np.float64)
    pixels = np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def test_labelled_folder_is_scanned_recursively_in_path_order(tmp_path):
    _photo(tmp_path / "dog" / "b.png", 1)
    _photo(tmp_path / "dog" / "deep" / "c.jpg", 2)
    _photo(tmp_path / "cat" / "a.webp", 3)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    images = scan_folder(tmp_path)
    assert [s.name for s in images.samples] == ["cat/a.webp", "dog/b.png", "dog/deep/c.jpg"]
    assert images.labels == ["cat", "dog"]


def test_images_at_the_root_mean_no_labels(tmp_path):
    _photo(tmp_path / "a.png")
    _photo(tmp_path / "dog" / "b.png")
    assert scan_folder(tmp_path).labels is None


def test_corrupt_and_truncated_files_are_skipped_by_name_and_counted(tmp_path, capsys):
    _photo(tmp_path / "good.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    whole = _photo(tmp_path / "whole.png", 5).read_bytes()
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])
    prepared = validation_set(SPEC, tmp_path)
    assert prepared.names == ["good.png", "whole.png"]
    assert sorted(name for name, _ in prepared.skipped) == ["corrupt.jpg", "truncated.png"]
    err = capsys.readouterr().err
    assert "corrupt.jpg" in err and "truncated.png" in err
    assert prepared.summary()["skipped"] == 2


def test_odd_modes_become_rgb_inputs(tmp_path):
    for i, mode in enumerate(("L", "P", "RGBA", "CMYK", "I;16")):
        path = tmp_path / f"{i}.png" if mode != "CMYK" else tmp_path / f"{i}.jpg"
        if mode == "I;16":
            Image.fromarray((np.arange(96 * 80).reshape(80, 96) * 8).astype(np.uint16)).save(path)
        else:
            _photo(path, i, mode=mode)
    prepared = validation_set(SPEC, tmp_path)
    assert prepared.inputs.shape == (5, 64, 64, 3)
    assert np.isfinite(prepared.inputs).all()


def test_empty_and_undecodable_folders_say_so(tmp_path):
    with pytest.raises(DatasetError, match="holds no"):
        scan_folder(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        scan_folder(tmp_path / "missing")
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="none of its 1 image files could be decoded"):
        validation_set(SPEC, tmp_path)


def test_asking_for_more_images_than_exist_uses_what_exists(tmp_path, capsys):
    for i in range(3):
        _photo(tmp_path / f"{i}.png", i)
    prepared = calibration_set(SPEC, tmp_path, count=10)
    assert len(prepared) == 3
    assert "asked for 10 calibration images" in capsys.readouterr().err
    with pytest.raises(DatasetError, match=f"between 1 and {MAX_CALIBRATION}"):
        calibration_set(SPEC, tmp_path, count=MAX_CALIBRATION + 1)


def test_calibration_order_and_fingerprint_are_deterministic(tmp_path):
    for i in range(6):
        _photo(tmp_path / f"{i}.png", i)
    a, b = calibration_set(SPEC, tmp_path, 4, seed=1), calibration_set(SPEC, tmp_path, 4, seed=1)
    assert a.names == b.names and a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.inputs, b.inputs)
    c = calibration_set(SPEC, tmp_path, 4, seed=2)
    assert c.fingerprint != a.fingerprint
    _photo(tmp_path / f"{a.names[0]}", 99)  # same name, new content
    assert calibration_set(SPEC, tmp_path, 4, seed=1).fingerprint != a.fingerprint


def test_folder_labels_must_be_model_classes(tmp_path):
    _photo(tmp_path / "zebra" / "a.png")
    prepared = validation_set(SPEC, tmp_path)
    with pytest.raises(DatasetError, match="zebra"):
        prepared.check_labels(["cat", "dog"])
    prepared.check_labels(["zebra", "cat"])
    assert prepared.label_indices(["cat", "zebra"]).tolist() == [1]


def test_bundled_photographs_are_real_photographs_with_a_licence_note():
    photos = bundled_photos()
    assert len(photos) == 11 and len(class_names()) == 11
    licence = (SAMPLES_DIR / "LICENSE.md").read_text()
    for sample in photos.samples:
        assert f"`{sample.name}`" in licence  # every file is named with its source
        pixels = np.asarray(sample.load(), np.float64).mean(axis=2)
        assert min(pixels.shape) >= 256
        # Photographs are smooth: neighbouring pixels correlate strongly (noise would not).
        a, b = pixels[:, :-1].ravel(), pixels[:, 1:].ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.5, sample.name


def test_photo_crops_are_reproducible_inside_the_photo_and_differ_by_split():
    a, b = photo_crops("heldout", 3), photo_crops("heldout", 3)
    assert [s.box for s in a.samples] == [s.box for s in b.samples]
    train = {(s.path, s.box) for s in photo_crops("train", 3).samples}
    assert not train & {(s.path, s.box) for s in a.samples}
    for s in a.samples:
        with Image.open(s.path) as im:
            w, h = im.size
        left, top, right, bottom = s.box
        assert 0 <= left < right <= w and 0 <= top < bottom <= h
        assert 0.05 <= (right - left) * (bottom - top) / (w * h) <= 0.55


def test_a_smaller_validation_set_keeps_every_photograph(tmp_path):
    small = validation_set(SPEC, None, 22)  # --val-size 22
    assert len(small.inputs) == 22 and sorted(set(small.labels)) == class_names()
    assert all(small.labels.count(c) == 2 for c in class_names())
    with pytest.raises(DatasetError, match="validation size must be at least 1"):
        validation_set(SPEC, None, 0)


def test_prepared_sets_are_decoded_once_and_read_back_from_the_cache(tmp_path, monkeypatch):
    """The decoded inputs are kept (edge.cache) under the files' bytes, boxes, settings and code: read back equal;
    a changed file or setting decodes again; a set with an undecodable file is never kept."""
    from calibration.datasets import ImageSet
    from edge.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    decoded, real = [], ImageSet.decoded
    monkeypatch.setattr(ImageSet, "decoded", lambda self, *a, **k: decoded.append(1) or real(self, *a, **k))
    folder = tmp_path / "images"
    for i in range(6):
        _photo(folder / f"{i}.png", i)
    first = calibration_set(SPEC, folder, 4, seed=1)
    again = calibration_set(SPEC, folder, 4, seed=1)
    assert decoded == [1]  # read back, not decoded
    assert (again.names, again.labels, again.fingerprint) == (first.names, first.labels, first.fingerprint)
    np.testing.assert_array_equal(again.inputs, first.inputs)
    calibration_set(SPEC, folder, 5, seed=1)  # another count: another key
    calibration_set(PreprocessSpec(height=48, width=48), folder, 4, seed=1)  # another preprocessing
    assert decoded == [1, 1, 1]
    _photo(folder / first.names[0], 99)  # same name, new content
    changed = calibration_set(SPEC, folder, 4, seed=1)
    assert decoded == [1, 1, 1, 1] and not np.array_equal(changed.inputs[0], first.inputs[0])
    (folder / "5.png").write_bytes(b"not an image")  # a set that skips a file is decoded every time
    calibration_set(SPEC, folder, 6, seed=1)
    calibration_set(SPEC, folder, 6, seed=1)
    assert decoded == [1, 1, 1, 1, 1, 1]


def test_a_file_that_vanished_after_the_scan_is_skipped_with_the_cache_on(tmp_path, monkeypatch, capsys):
    """The cache key reads every file's bytes before decoding: a file gone by then is still a skipped image, named,
    not a crash (and the set is not kept)."""
    from edge.cache import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    folder = tmp_path / "images"
    for i in range(4):
        _photo(folder / f"{i}.png", i)
    images = scan_folder(folder)
    (folder / "2.png").unlink()
    from calibration.representative import _prepare

    prepared = _prepare(images, SPEC, None, None, "validation")
    assert prepared.names == ["0.png", "1.png", "3.png"] and [n for n, _ in prepared.skipped] == ["2.png"]
    assert "skipping 2.png" in capsys.readouterr().err
    assert not list((tmp_path / "cache").rglob("*.npz"))
