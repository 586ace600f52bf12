"""Shared fixtures: tiny random models (tiny_models.py) and, for the few integration tests,
the real me5-small converted once per session into a temporary XAPPS_HOME."""
from tiny_models import tiny_mt5_path, tiny_xlmr_path  # noqa: F401  (fixtures)
