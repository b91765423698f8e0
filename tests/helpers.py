"""Helpers shared by the test suites."""

import importlib.util
import os

import pytest


def require(module: str, why: str, install: str = "pip install -e '.[dev]'") -> None:
    """Skip when `module` cannot be imported, except in CI, where `make test` installs it and its absence is a broken
    setup, not a reason to skip."""
    if importlib.util.find_spec(module) is not None:
        return
    if os.environ.get("CI"):
        raise RuntimeError(f"{module} is not installed; CI must run these checks ({install}, as make test does)")
    pytest.skip(f"{module} is not installed ({install}); it is {why}")


def require_timm() -> None:
    require("timm", "the reference for this check")
