#!/usr/bin/env python3
"""Runs sparse_jax/cli/generate.py, the command sparse-jax-generate."""
import sys

import _cli  # noqa: F401  (the checkout on sys.path)

from sparse_jax.cli.generate import main

if __name__ == "__main__":
    sys.exit(main())
