"""Activation ranges chosen by quantization error (`--calibration mse`), for any format.

Min/max calibration spends an activation tensor's 256 int8 levels on its whole observed range, so a few outliers
make the step coarse for every other value. `mse_range` shrinks the range (the largest of CLIP_STEPS factors
between MIN_CLIP and 1 that gives the least mean squared error of quantize -> dequantize on the tensor's
calibration values): clipping the rare outliers costs less than the coarser step everywhere else. Ranges that
start at 0 (ReLU outputs) keep 0; signed ranges shrink both ends by the same factor (an asymmetric search measured
no better on the reference: it overfits the calibration images).

`Samples` keeps, per tensor, the exact min/max and a fixed-size random sample of each image's values (seeded:
the same images give the same ranges, so the same bytes), which bounds memory for large models. The error is
measured on the sample: the rare extremes that set min/max are mostly not in it, so the range chosen is the best
one for a tensor's typical values (over every value, clipping an int8 range rarely pays: a tail's squared excess
outweighs the finer step).
"""

from __future__ import annotations

import zlib

import numpy as np

MIN_CLIP = 0.3        # never shrink a range below 30% of its min/max span
CLIP_STEPS = 36       # factors tried, evenly spaced in [MIN_CLIP, 1]
PER_IMAGE = 4096      # values sampled per tensor and image
SEED = 0
LEVELS = 255          # int8 (or uint8) steps across a range


def quantization_mse(values: np.ndarray, lo: float, hi: float) -> float:
    """Mean squared error of asymmetric 8-bit quantize -> dequantize over [lo, hi] (zero point rounded, as the
    converters do), including the clipping of values outside it."""
    scale = (hi - lo) / LEVELS
    if scale <= 0:
        return float(np.mean(values ** 2))
    zero = np.round(-lo / scale)
    q = np.clip(np.round(values / scale) + zero, 0, LEVELS)
    return float(np.mean(((q - zero) * scale - values) ** 2))


def mse_range(values: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The [lo, hi] (a shrunk min/max range) with the least quantization error on `values`."""
    if not hi > lo:
        return lo, hi
    best = (quantization_mse(values, lo, hi), lo, hi)
    for factor in np.linspace(MIN_CLIP, 1.0, CLIP_STEPS):
        if lo >= 0:
            candidate = (lo, hi * factor)
        elif hi <= 0:
            candidate = (lo * factor, hi)
        else:
            candidate = (lo * factor, hi * factor)
        error = quantization_mse(values, *candidate)
        if error < best[0]:
            best = (error, *candidate)
    return float(best[1]), float(best[2])


class Samples:
    """Per-tensor exact min/max and a seeded sample of values, accumulated image by image. `per_key`: each tensor
    draws its sample from a generator of its own (seeded by the seed and its name), so that its sample does not
    depend on the order tensors are added in; otherwise one generator serves them all, in the order they come."""

    def __init__(self, per_image: int = PER_IMAGE, seed: int = SEED, per_key: bool = False) -> None:
        self.per_image = per_image
        self.seed = seed
        self.rng = None if per_key else np.random.default_rng(seed)
        self.rngs: dict = {}
        self.values: dict = {}
        self.bounds: dict = {}

    def _rng(self, key) -> np.random.Generator:
        if self.rng is not None:
            return self.rng
        if key not in self.rngs:
            self.rngs[key] = np.random.default_rng([self.seed, zlib.crc32(str(key).encode())])
        return self.rngs[key]

    def add(self, key, array: np.ndarray, keep_values: bool = True) -> None:
        flat = np.asarray(array, np.float32).ravel()
        if not flat.size:
            return
        lo, hi = float(flat.min()), float(flat.max())
        old = self.bounds.get(key)
        self.bounds[key] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
        if not keep_values:
            return
        if flat.size > self.per_image:
            flat = flat[self._rng(key).choice(flat.size, self.per_image, replace=False)]
        self.values.setdefault(key, []).append(flat)

    def mse_ranges(self) -> dict:
        """{key: (lo, hi)} chosen by `mse_range` over each tensor's sample and exact bounds (which include 0,
        as every 8-bit range must)."""
        ranges = {}
        for key, parts in self.values.items():
            lo, hi = self.bounds[key]
            ranges[key] = mse_range(np.concatenate(parts).astype(np.float64), min(lo, 0.0), max(hi, 0.0))
        return ranges
