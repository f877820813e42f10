"""The stackform version, written into every checkpoint."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stackform")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
