#!/usr/bin/env python3
"""Runs sparse_jax/cli/train_stylegan.py, the command sparse-jax-train-stylegan."""
import sys

import _cli  # noqa: F401  (the checkout on sys.path)

from sparse_jax.cli.train_stylegan import main

if __name__ == "__main__":
    sys.exit(main())
