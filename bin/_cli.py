"""Shared start-up for the binaries in bin/: import path and quiet library logging.

Each binary does `import _cli` first (bin/ is on sys.path when a script in it runs).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def quiet_logs() -> None:
    """Orbax and JAX log every checkpoint step at INFO; a user wants warnings only."""
    from absl import logging
    logging.set_verbosity(logging.WARNING)
