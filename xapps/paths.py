"""Where xapps keeps installed models and where it looks for the shared data sets."""
from __future__ import annotations

import os
from pathlib import Path


def xapps_home() -> Path:
    """User cache for installed models: $XAPPS_HOME, else ~/.cache/xapps."""
    env = os.environ.get("XAPPS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xapps"


def models_home() -> Path:
    return xapps_home() / "models"


def data_root(override: str | os.PathLike | None = None) -> Path:
    """Root of the public benchmark data: the argument, else $XAPPS_DATA, else ../shared/data
    beside the source checkout (the layout of the project's machines and CI)."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("XAPPS_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def manifests_dir() -> Path:
    """Model manifests: `models/` of a source checkout, or their copy inside a built wheel."""
    source = Path(__file__).resolve().parents[1] / "models"
    if source.is_dir():
        return source
    return Path(__file__).resolve().parent / "_manifests"
