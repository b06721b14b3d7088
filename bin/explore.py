#!/usr/bin/env python3
"""Runs sparse_jax/cli/explore.py, the command sparse-jax-explore."""
import sys

import _cli  # noqa: F401  (the checkout on sys.path)

from sparse_jax.cli.explore import main

if __name__ == "__main__":
    sys.exit(main())
