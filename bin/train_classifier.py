#!/usr/bin/env python3
"""Runs sparse_jax/cli/train_classifier.py, the command sparse-jax-train-classifier."""
import sys

import _cli  # noqa: F401  (the checkout on sys.path)

from sparse_jax.cli.train_classifier import main

if __name__ == "__main__":
    sys.exit(main())
