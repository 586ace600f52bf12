"""xapps: cross-lingual NLP applications on one multilingual backbone and one FAISS index layer."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xapps")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
