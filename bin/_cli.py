"""Start-up of the `python bin/<command>.py` shims: puts the checkout on sys.path.

Each shim runs `sparse_jax.cli.<command>.main`, the same code as the installed command
`sparse-jax-<command>` (bin/ is on sys.path when a script in it runs, so `import _cli` works).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
