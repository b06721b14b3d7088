#!/usr/bin/env python3
"""Runs sparse_jax/cli/convert.py, the command sparse-jax-convert."""
import sys

import _cli  # noqa: F401  (the checkout on sys.path)

from sparse_jax.cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
