"""The typed facts a conversion passes along: what is being made (Plan), how a candidate measured
(Evaluation), what was written (Result)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from calibration.drift import Budget, Drift
from calibration.representative import Prepared
from converters.targets import Target
from edge.runtime import TensorInfo


@dataclass
class Plan:
    """What is being made: the format-independent facts the metadata and report record."""

    out: Path
    precision: str                      # float32 | float16 | dynamic | int8
    target: Target
    lowering: str
    budget: Budget
    allow_drift: bool = False
    calibration: Prepared | None = None


@dataclass
class Evaluation:
    """A candidate run by the edge runtime on the validation images, compared with the reference."""

    drift: Drift
    violations: list[str]
    input: TensorInfo
    output: TensorInfo
    runtime: str


@dataclass
class Result:
    path: Path
    drift: Drift
    violations: list[str]
    metadata: dict
    size_bytes: int
