#!/usr/bin/env python3
"""Runs sparse_jax/cli/run_paper.py, the command sparse-jax-run-paper."""
import sys

import _cli  # noqa: F401  (the checkout on sys.path)

from sparse_jax.cli.run_paper import main

if __name__ == "__main__":
    sys.exit(main())
