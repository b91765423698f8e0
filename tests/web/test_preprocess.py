"""The web demo's JavaScript preprocessing (web_demo/kit/preprocess.js) and metadata reader (kit/metadata.js) under
Node (`node --test`), held to the kit: the golden vectors that `python -m edge.golden` writes (the ones the Android
core is held to) byte for byte (uint8) or within 1e-6 (float32; measured: 0, every value the same float32), the
committed set and one written now from freshly converted models; transparency composited as Pillow does; and the kit
record read from .tflite and .onnx files as the Python edge runtime reads it, their content digest checked as
edge/seal.py checks it."""

import json

import numpy as np
from PIL import Image

from edge import golden
from edge.runtime import load
from tests.helpers import relu_tflite
from tests.web.web import node_test, tap_counts, write_json


def test_js_preprocessing_matches_the_committed_golden_vectors():
    counts = tap_counts(node_test())
    # 18 resize cases, 2 models x 3 images x (input, output), plus the vectors' presence and 3 rule checks
    assert counts.get("fail") == 0 and counts.get("pass", 0) >= 1 + 18 + 12 + 3, counts


def test_js_preprocessing_matches_vectors_from_freshly_converted_models(converted, raw_pixel_int8, tmp_path):
    """float32 input (normalized) and uint8 raw-pixel input with the normalization in the model, converted now."""
    float_model, _ = converted("float32")
    int8_model, _, _ = raw_pixel_int8
    images = golden.source_images(golden.default_images(), shrink=True)
    index = golden.write_golden([float_model, int8_model], images, tmp_path / "golden")
    assert [m["input"]["dtype"] for m in index["models"]] == ["float32", "uint8"]
    counts = tap_counts(node_test({"GOLDEN_DIR": str(tmp_path / "golden")}))
    assert counts.get("fail") == 0 and counts.get("pass", 0) >= 1 + 18 + 12 + 3, counts


def test_js_composites_transparency_on_white_as_pillow(tmp_path):
    rng = np.random.default_rng(0)
    cases = []
    for w, h in ((7, 5), (16, 16)):
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        rgba[0, :, 3] = 0     # fully transparent and fully opaque rows too
        rgba[1, :, 3] = 255
        from edge.images import to_rgb

        rgb = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA")))
        cases.append({"width": w, "height": h, "rgba": rgba.ravel().tolist(), "rgb": rgb.ravel().tolist()})
    counts = tap_counts(node_test({"KIT_RGBA_CASES": str(write_json(tmp_path / "rgba.json", cases))}))
    assert counts.get("fail") == 0, counts


def test_js_reads_the_kit_record_as_the_edge_runtime(converted, tmp_path):
    records = []
    for precision, fmt in (("int8", "tflite"), ("float32", "onnx")):
        path, _ = converted(precision, fmt)
        record = load(path).metadata
        records.append({"path": str(path), "format": fmt, "record": record, "sealed": "content_sha256" in record})
        if "content_sha256" in record:  # a kit that seals its files (edge/seal.py): one flipped bit is found
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 1
            damaged = tmp_path / f"damaged_{path.name}"
            damaged.write_bytes(bytes(data))
            records.append({"path": str(damaged), "error": "the file is damaged"})
    records.append({"path": str(relu_tflite(tmp_path / "relu.tflite")), "error": "without the kit's metadata"})
    (tmp_path / "text.onnx").write_bytes(b"this is a text file, not a model\n" * 4)
    records.append({"path": str(tmp_path / "text.onnx"), "error": "not an ONNX or TFLite model"})
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(converted("int8", "tflite")[0].read_bytes()[:4096])
    records.append({"path": str(truncated), "error": "truncated or malformed .tflite"})
    counts = tap_counts(node_test({"KIT_RECORDS": str(write_json(tmp_path / "records.json", records))}))
    assert counts.get("fail") == 0 and counts.get("pass", 0) >= 34 + len(records), counts
    assert json.loads(json.dumps(records[0]["record"]))["labels"]  # the record is there to compare
