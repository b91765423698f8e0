"""The kit's installed command, `regnety-kit`: one entry point for every CLI module (regnety_kit.cli)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("regnety-edge-kit")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
