"""Helpers shared by the test suites."""

import importlib.util
import os

import pytest


def require_timm() -> None:
    """Skip without timm (it is the reference for several checks), except in CI, where it must be installed."""
    if importlib.util.find_spec("timm") is not None:
        return
    if os.environ.get("CI"):
        raise RuntimeError("timm is not installed; CI must run the timm comparisons (make test installs .[dev])")
    pytest.skip("timm is not installed (pip install -e '.[dev]'); it is the reference for this check")
