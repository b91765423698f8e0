"""Shared test setup: quiet TensorFlow, the TensorFlow backend for Keras, and the reference artifacts.

The reference checkpoint's data sets and its TFLite artifacts are made once per session and shared by
the converter and edge suites (each conversion takes tens of seconds).
"""

import os
import shutil
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# The reference's outputs are computed once per session (converters.reference_outputs) and shared by the CLI runs the
# tests start; a fresh cache folder each session unless REGNETY_KIT_CACHE names one.
_CACHE = None if "REGNETY_KIT_CACHE" in os.environ else tempfile.mkdtemp(prefix="kit-test-cache-")
if _CACHE:
    os.environ["REGNETY_KIT_CACHE"] = _CACHE


def pytest_sessionfinish(session, exitstatus):
    if _CACHE:
        shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def source():
    from converters.source import load_source

    return load_source(log=lambda message: None)


@pytest.fixture(scope="session")
def validation(source):
    from calibration.representative import validation_set

    return validation_set(source.preprocessing)


@pytest.fixture(scope="session")
def calibration(source):
    from calibration.representative import calibration_set

    return calibration_set(source.preprocessing, count=64)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, source, validation, calibration):
    """Artifacts of the reference, converted once per (format, precision): {key: (path, result)}."""
    from converters import onnx as onnx_conv
    from converters import tflite
    from tests.artifacts import plan

    cache = {}
    folder = tmp_path_factory.mktemp("artifacts")

    def get(precision, fmt="tflite"):
        key = (fmt, precision)
        if key not in cache:
            out = folder / f"m_{precision}.{fmt}"
            calib = calibration if precision == "int8" else None
            module = tflite if fmt == "tflite" else onnx_conv
            p = plan(out, precision, "xnnpack" if fmt == "tflite" else "onnx", calib)
            cache[key] = out, module.convert(source, p, validation, log=lambda m: None)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def raw_pixel(tmp_path_factory):
    """Artifacts of the reference with the normalization inside the model (raw [0, 255] pixels in), converted once
    per (precision, io): what MediaPipe Tasks runs (one mean and std for all channels). get(precision, io) ->
    (path, result, validation set)."""
    from calibration.representative import calibration_set, validation_set
    from converters import tflite
    from converters.source import load_source
    from tests.artifacts import plan

    source = load_source(normalize_in_model=True, log=lambda message: None)
    spec = source.preprocessing
    validation = validation_set(spec)
    folder = tmp_path_factory.mktemp("raw_pixel")
    cache = {}

    def get(precision, io="float32"):
        if (precision, io) not in cache:
            out = folder / f"m_{precision}_{io}.tflite"
            calib = calibration_set(spec, count=64) if precision == "int8" else None
            result = tflite.convert(source, plan(out, precision, calibration=calib), validation, io=io,
                                    log=lambda message: None)
            cache[precision, io] = out, result, validation
        return cache[precision, io]

    return get


@pytest.fixture(scope="session")
def raw_pixel_int8(raw_pixel):
    """Full int8 with uint8 I/O and the normalization inside the model: the artifact a phone app feeds camera
    bytes. (path, result, validation set)."""
    return raw_pixel("int8", "uint8")


@pytest.fixture(scope="session")
def portable(tmp_path_factory, source, validation, calibration):
    """Artifacts of the reference for --target portable (the form nnapi and edgetpu write too: split grouped convs,
    Dense as 1x1 convs), converted once per precision: get(precision) -> (path, result)."""
    from converters import tflite
    from tests.artifacts import plan

    folder = tmp_path_factory.mktemp("portable")
    cache = {}

    def get(precision):
        if precision not in cache:
            out = folder / f"m_{precision}_portable.tflite"
            calib = calibration if precision == "int8" else None
            p = plan(out, precision, "portable", calib)
            cache[precision] = out, tflite.convert(source, p, validation, log=lambda message: None)
        return cache[precision]

    return get
