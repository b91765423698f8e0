"""int8 calibration's fitted results are kept (edge.cache): the float rewrites (equalization, GPTQ, bias
correction) and the TFLite activation ranges are read back when the same model, images, method, settings and code
come again, recomputed when any of them changes or the entry is damaged, and equal to what fitting gives."""

from types import SimpleNamespace

import numpy as np

from edge import cache
from tests.converters.test_quantization_quality import _tiny_reference, images, small_regnety  # noqa: F401


def _job(model, inputs, logged):
    return SimpleNamespace(reference=_tiny_reference(model), log=logged.append,
                           plan=SimpleNamespace(calibration=SimpleNamespace(inputs=inputs)))


def test_int8_rewrites_are_fitted_once_and_read_back(small_regnety, images, tmp_path, monkeypatch):  # noqa: F811
    import converters.rounding as rounding
    from converters.int8_calibration import TFLITE_DEFAULT, equalized_lowered

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr("converters.pipeline.lower", lambda reference, plan: reference.model)
    fitted, real = [], rounding.round_weights
    monkeypatch.setattr(rounding, "round_weights", lambda *a, **k: fitted.append(1) or real(*a, **k))
    inputs = images[:8]

    def convert(x):
        logged = []
        model, record = equalized_lowered("graph", _job(small_regnety, x, logged), TFLITE_DEFAULT, TFLITE_DEFAULT)
        return model.get_weights(), record, logged

    first, record, said = convert(inputs)
    assert fitted == [1] and record.rounded_layers > 0 and record.equalized_pairs > 0
    assert not np.array_equal(first[0], small_regnety.get_weights()[0])  # the rewrites changed the weights
    again, record_again, said_again = convert(inputs)
    assert fitted == [1] and record_again == record  # read back, not fitted
    assert len(again) == len(first) and all(np.array_equal(a, b) for a, b in zip(again, first))
    assert "from the cache" in said_again[0] and said_again[1:] == said  # what the fitting said, said again

    other = inputs.copy()
    other[0, 0, 0, 0] += 1e-3  # one input value: another key, fitted again
    convert(other)
    assert fitted == [1, 1]
    per_image = rounding.PER_IMAGE
    monkeypatch.setattr(rounding, "PER_IMAGE", per_image // 2)  # a setting: another key
    convert(inputs)
    assert fitted == [1, 1, 1]
    monkeypatch.setattr(rounding, "PER_IMAGE", per_image)

    for entry in (tmp_path / "int8-rewrites").glob("*.npz"):
        entry.write_bytes(entry.read_bytes()[:-100])  # damaged: fitted again, never raised
    refitted, _, said = convert(inputs)
    assert fitted == [1, 1, 1, 1] and "from the cache" not in said[0]
    assert all(np.array_equal(a, b) for a, b in zip(refitted, first))  # fitting is deterministic

    monkeypatch.setenv(cache.CACHE_ENV, "off")  # off: fitted every time, nothing kept
    convert(inputs)
    convert(inputs)
    assert fitted == [1, 1, 1, 1, 1, 1]


def test_tflite_ranges_are_chosen_once_and_read_back(small_regnety, images, tmp_path, monkeypatch):  # noqa: F811
    import converters.tflite_ranges as tflite_ranges
    from calibration.representative import Prepared
    from converters.tflite_converter import make_converter

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    calib = Prepared("random", images[:8], [f"c{i}" for i in range(8)], [None] * 8, "calib")
    converter = make_converter(small_regnety, "int8", calib)
    converter._experimental_calibrate_only = True
    converter.representative_dataset = lambda: iter([[calib.inputs[:1]]])
    calibrated = bytes(converter.convert())
    chosen, real = [], tflite_ranges.choose_ranges
    monkeypatch.setattr(tflite_ranges, "choose_ranges", lambda *a, **k: chosen.append(1) or real(*a, **k))

    first = tflite_ranges.cached_ranges(calibrated, calib.inputs, "mse")
    assert chosen == [1] and len(first) > 20
    assert tflite_ranges.cached_ranges(calibrated, calib.inputs, "mse") == first and chosen == [1]
    exact = tflite_ranges.cached_ranges(calibrated, calib.inputs, "minmax")  # another method: another key
    assert chosen == [1, 1] and exact != first
    assert all(first[i][1] - first[i][0] <= exact[i][1] - exact[i][0] + 1e-6 for i in first)  # mse clips
    tflite_ranges.cached_ranges(calibrated, images[8:16], "mse")  # other images: another key
    assert chosen == [1, 1, 1]


def test_onnx_ranges_are_sampled_once_and_read_back(small_regnety, images, tmp_path, monkeypatch):  # noqa: F811
    import onnx

    import converters.onnx_quantize as onnx_quantize
    from converters.onnx_export import to_onnx

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    path = tmp_path / "pre.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(to_onnx(small_regnety)), path)
    sampled, real = [], onnx_quantize.sample_ranges
    monkeypatch.setattr(onnx_quantize, "sample_ranges", lambda *a, **k: sampled.append(1) or real(*a, **k))
    inputs = images[:4]
    plain = onnx_quantize.cached_ranges(path, inputs, mse=False)
    assert sampled == [1] and len(plain.bounds) > 20 and plain.mse == {}
    assert onnx_quantize.cached_ranges(path, inputs, mse=False) == plain and sampled == [1]  # empty mse kept too
    chosen = onnx_quantize.cached_ranges(path, inputs, mse=True)  # another key
    assert sampled == [1, 1] and chosen.bounds == plain.bounds and len(chosen.mse) > 20
    assert onnx_quantize.cached_ranges(path, inputs, mse=True) == chosen and sampled == [1, 1]
    assert any(chosen.mse[n] != plain.bounds.get(n, chosen.mse[n]) for n in chosen.mse)  # mse clips some
