#!/usr/bin/env python3
"""Runs sparse_jax/cli/sparsity_sweep.py, the command sparse-jax-sparsity-sweep."""
import sys

import _cli  # noqa: F401  (the checkout on sys.path)

from sparse_jax.cli.sparsity_sweep import main

if __name__ == "__main__":
    sys.exit(main())
