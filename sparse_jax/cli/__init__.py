"""The command-line layer: one module per command, the only place that reads flags.

Each module has `main(argv=None) -> int` (the console script `sparse-jax-<command>`, also reached
as `sparse-jax <command>` and `python bin/<command>.py`) and `build_parser()`. Flags are derived
from the run's config dataclass or library function (`common.add_fields`), never restated.
"""
