"""Run MediaPipe's ImageClassifier on a model and images, in a process of its own (MediaPipe's native libraries and
torch's crash when both are loaded in one process). Prints JSON: per image, the category names and scores in index
order.

python tests/consumers/mediapipe_run.py MODEL IMAGE...
"""

import json
import sys

import mediapipe as mp
from mediapipe.tasks import python as tasks
from mediapipe.tasks.python import vision


def main(model: str, images: list[str]) -> None:
    options = vision.ImageClassifierOptions(base_options=tasks.BaseOptions(model_asset_path=model), max_results=-1)
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            categories = classifier.classify(mp.Image.create_from_file(path)).classifications[0].categories
            ordered = sorted(categories, key=lambda c: c.index)
            results.append({"names": [c.category_name for c in ordered], "scores": [c.score for c in ordered]})
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
