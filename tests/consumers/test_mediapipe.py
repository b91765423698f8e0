"""MediaPipe Tasks, a consumer the kit did not write, reads the standard TFLite Metadata of the kit's files and
runs them: labels from the packed labels file, normalization from NormalizationOptions.

MediaPipe resizes the whole image to the input size, where the kit resizes the shorter side and crops the
centre; so both are given the same pixels: MediaPipe the kit's own 224x224 crop of each bundled photograph
(its resize is then the identity), the kit the photograph. MediaPipe applies only one mean and std to all
channels: the files here take raw pixels (--normalize-in-model), as a file for MediaPipe must.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import require

# Largest |MediaPipe score - kit logit| / logit range over the photographs. Measured: 0 for all three files (the
# same kernels on the same input values); the bound leaves room for a different thread split in float.
TOLERANCE = 1e-6
FILES = [("float32", "float32"), ("int8", "float32"), ("int8", "uint8")]


def _photos():
    from edge.images import image_files

    return image_files("calibration/samples")


def _mediapipe_scores(path, crops, folder):
    """[(category names by index, scores by index)] per crop, from MediaPipe's ImageClassifier in a child process
    (the crops go as PNG files: lossless, the same pixels)."""
    files = []
    for i, crop in enumerate(crops):
        files.append(folder / f"crop_{i}.png")
        crop.save(files[-1])
    runner = Path(__file__).with_name("mediapipe_run.py")
    done = subprocess.run([sys.executable, str(runner), str(path), *map(str, files)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [(r["names"], np.array(r["scores"], np.float64)) for r in json.loads(done.stdout)]


@pytest.mark.parametrize("precision,io", FILES, ids=[f"{p}-io{i}" for p, i in FILES])
def test_mediapipe_reads_labels_and_matches_the_kit(raw_pixel, tmp_path, precision, io):
    require("mediapipe", "MediaPipe Tasks, the independent reader of the standard metadata")
    from edge.classifier import Classifier
    from edge.images import load_image, resize_and_crop, to_input

    path, result, _ = raw_pixel(precision, io)
    kit = Classifier(path)
    photos = _photos()
    crops = [resize_and_crop(load_image(p), kit.spec) for p in photos]
    mediapipe = _mediapipe_scores(path, crops, tmp_path)
    logits = kit.runner.run(np.stack([to_input(load_image(p), kit.spec) for p in photos]))
    worst = 0.0
    for photo, (names, scores), row in zip(photos, mediapipe, logits):
        assert names == kit.labels  # the packed labels file, in output order
        top1 = kit.classify(photo, top=1).top[0]
        assert int(np.argmax(scores)) == top1.index, f"{photo.name}: MediaPipe {names[np.argmax(scores)]}, kit {top1}"
        worst = max(worst, float(np.max(np.abs(scores - row)) / np.ptp(row)))
    assert worst <= TOLERANCE, f"MediaPipe's scores differ from the kit's logits by {worst:.2e} of their range"
