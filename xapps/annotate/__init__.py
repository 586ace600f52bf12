"""Batch annotation jobs: ``xapps annotate`` over large corpora (streaming, sharded,
resumable, several processes or a Ray cluster) and ``xapps report`` (an HTML page).

The API lives in :mod:`xapps.annotate.job` (``run_job``, ``JobConfig``, ``iter_output``).
This package imports nothing heavy, so that a spawned worker can choose its GPU before
torch is loaded.
"""
