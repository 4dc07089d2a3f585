"""webxample: the sample Django app that webdeploy deploys (see README.md)."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The installed wheel's version: the page and /healthz show what is really running.
    __version__ = version("webxample")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
