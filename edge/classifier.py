"""Classify images with a converted artifact, using only what the file says about itself.

The labels and the preprocessing spec come from the kit metadata embedded in the file; the input is
made by the kit's one preprocessing implementation (edge.images), quantized as the file asks by the
runtime; outputs are logits, turned into probabilities by a softmax.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from edge.images import load_image, to_input
from edge.preprocessing import PreprocessSpec
from edge.errors import KitError, PreprocessError
from edge.runtime import RuntimeOptions, load
from edge.tflite_file import ModelFileError


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    probability: float


@dataclass(frozen=True)
class Classification:
    image: str
    top: list[Prediction]
    latency_ms: float  # model run only (preprocessing excluded)

    def to_dict(self) -> dict:
        return {"image": self.image, "latency_ms": round(self.latency_ms, 3),
                "top": [{"label": p.label, "index": p.index, "probability": p.probability} for p in self.top]}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """A .tflite or .onnx classifier written by the kit's converters."""

    def __init__(self, model: str | Path, options: RuntimeOptions = RuntimeOptions()):
        self.runner = load(model, options)
        meta = self.runner.metadata
        if meta is None or "labels" not in meta or "preprocessing" not in meta:
            raise ModelFileError(f"{model}: no kit metadata (labels, preprocessing) in the file; convert it with "
                                 "python -m converters.tflite or converters.onnx")
        if (meta.get("io") or {}).get("output_kind") == "features":
            raise ModelFileError(f"{model}: a feature extractor (converted with --head none): it outputs feature "
                                 "vectors, not labels; run it with edge.runtime.load(path).run(inputs)")
        self.labels: list[str] = list(meta["labels"])
        try:
            self.spec = PreprocessSpec.from_dict(meta["preprocessing"])
        except PreprocessError as exc:
            raise ModelFileError(f"{model}: the preprocessing in its metadata is unusable ({exc}); the file is damaged "
                                 "or from another kit version: copy it again or re-convert it") from None
        outputs = self.runner.output.shape[-1]
        if outputs != len(self.labels):
            raise ModelFileError(f"{model}: {len(self.labels)} labels in its metadata but {outputs} outputs; "
                                 "re-convert it with the right --labels / --classes")

    def classify_many(self, images: list, top: int = 5, batch: int = 8) -> list[Classification]:
        """Several images in batches of `batch` when the file allows (its batch dimension is dynamic);
        each result's latency is its share of its batch's run."""
        pils = [im if isinstance(im, Image.Image) else load_image(im) for im in images]
        x = np.stack([to_input(im, self.spec) for im in pils])
        try:
            self.runner.set_batch(min(batch, len(pils)))
        except KitError:
            self.runner.set_batch(1)  # a fixed batch of 1
        start = time.perf_counter()
        logits = self.runner.run(x)
        share = (time.perf_counter() - start) * 1e3 / len(pils)
        return [self._result(row, top, str(name), share) for row, name in zip(logits, images)]

    def predictions(self, logits: np.ndarray, top: int = 5) -> list[Prediction]:
        """The `top` most probable labels for one row of logits; equal probabilities keep the lower index
        first (the Android core orders them the same way)."""
        probs = softmax(logits.astype(np.float64))
        order = np.argsort(-probs, kind="stable")[:max(1, top)]
        return [Prediction(self.labels[i], int(i), float(probs[i])) for i in order]

    def _result(self, logits: np.ndarray, top: int, name: str, latency: float) -> Classification:
        return Classification(name, self.predictions(logits, top), latency)

    def classify(self, image: str | Path | Image.Image, top: int = 5, name: str | None = None) -> Classification:
        pil = image if isinstance(image, Image.Image) else load_image(image)
        x = to_input(pil, self.spec)[None]
        start = time.perf_counter()
        logits = self.runner.run(x)[0]
        return self._result(logits, top, name or str(image), (time.perf_counter() - start) * 1e3)
