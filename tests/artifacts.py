"""Conversion plans for tests (the fixtures that use them are in tests/conftest.py)."""

from pathlib import Path

from calibration.drift import budget_for
from converters.plan import Plan
from converters.targets import TARGETS


def plan(out, precision, target="xnnpack", calibration=None, lowering=None, features=False):
    t = TARGETS[target]
    return Plan(Path(out), precision, t, lowering or t.lowering, budget_for(precision, features=features), False,
                calibration)
