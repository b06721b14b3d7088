"""Renders a walk grid: rows are directions (x seeds), columns are distances along each.

Example:
  python bin/render.py --directions runs/directions_sca.npz --out runs/sca_grid.png \
      --seeds 0,1 --num_directions 6 --sigmas=-3,-1.5,0,1.5,3
Seed index i is the same latent as seed index i of bin/evaluate with the same --seed.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

_GENERATOR = flags.DEFINE_string(
    "generator", None, "Generator directory (config.json + Orbax); default: the embedded MNIST G.")
_DIRECTIONS = flags.DEFINE_string("directions", None, "A directions_<method>.npz file.",
                                  required=True)
_OUT = flags.DEFINE_string("out", None, "Output PNG.", required=True)
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seed indices (one block of rows each).")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed the walk key comes from.")
_NUM_DIRECTIONS = flags.DEFINE_integer("num_directions", 8, "First n directions of the file.")
_DISTANCES = flags.DEFINE_list("distances", None, "Signed absolute W distances (columns).")
_SIGMAS = flags.DEFINE_list(
    "sigmas", None, "Signed distances in units of each direction's lat_stdev (default "
    "-3,-2,-1,0,1,2,3 when --distances is not given).")
_LAYER_RANGE = flags.DEFINE_list("layer_range", None, "start,end: edit only ws slots [start, end).")
_TRUNCATION = flags.DEFINE_float("truncation_psi", 1.0, "Truncation applied before the edit.")
_CHUNK = flags.DEFINE_integer("chunk", 0, "Images per jitted batch (0: 64 on CPU, else 256).")


def _floats(name, values):
    try:
        return [float(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--{name} must be numbers, got {values}") from None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from sparse_jax.evaluation import run as evaluate

    if _DISTANCES.value and _SIGMAS.value:
        raise app.UsageError("give --distances or --sigmas, not both")
    distances = _floats("distances", _DISTANCES.value) if _DISTANCES.value else None
    sigmas = None
    if distances is None:
        sigmas = _floats("sigmas", _SIGMAS.value or ["-3", "-2", "-1", "0", "1", "2", "3"])
    try:
        seeds = [int(s) for s in _SEEDS.value]
        layer_range = tuple(int(v) for v in _LAYER_RANGE.value) if _LAYER_RANGE.value else None
    except ValueError:
        raise app.UsageError("--seeds and --layer_range must be integers") from None
    if layer_range is not None and len(layer_range) != 2:
        raise app.UsageError(f"--layer_range must be start,end, got {_LAYER_RANGE.value}")
    logging.set_verbosity(logging.WARNING)
    path = evaluate.run_render(_DIRECTIONS.value, _OUT.value, generator=_GENERATOR.value,
                               seeds=seeds, num_directions=_NUM_DIRECTIONS.value,
                               distances=distances, sigmas=sigmas, layer_range=layer_range,
                               seed=_SEED.value, truncation_psi=_TRUNCATION.value,
                               chunk=_CHUNK.value or None)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
