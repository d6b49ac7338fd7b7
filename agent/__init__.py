"""The edge agent daemon: wiring, configuration, store, fleet, iDAO chain client, keys and CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-agent")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
