"""Evaluates direction files: Table 1 (S_e, S_d, median d50) and Figs. 3-6.

Example (the embedded MNIST generator and classifier):
  python bin/evaluate.py --directions runs/directions_pca-w.npz runs/directions_sca.npz \
      --out runs/eval
Every number of the protocol (docs/metrics.md) is a flag. Direction files may be given as a
comma-separated --directions list or as extra arguments after it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

_GENERATOR = flags.DEFINE_string(
    "generator", None, "Generator directory (config.json + Orbax); default: the embedded MNIST G.")
_CLASSIFIER = flags.DEFINE_string(
    "classifier", None, "Classifier directory; default: the embedded MNIST classifier.")
_DIRECTIONS = flags.DEFINE_list(
    "directions", [], "directions_<method>.npz files, one per method (Table 1 column order).")
_OUT = flags.DEFINE_string("out", None, "Output folder.", required=True)
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed of the walk seeds and of the d_max sample.")
_NUM_ASSIGN = flags.DEFINE_integer("num_assign_seeds", 100, "Seeds that assign directions.")
_NUM_EVAL = flags.DEFINE_integer("num_eval_seeds", 500, "Disjoint seeds that are scored.")
_NUM_DIST = flags.DEFINE_integer("num_distances", 11, "Grid points T from 0 to d_max.")
_D_MAX = flags.DEFINE_float("d_max", None, "Walk length in W units; default d_max_sigmas x the "
                            "std of w along the first PCA component of W.")
_D_MAX_SIGMAS = flags.DEFINE_float("d_max_sigmas", 3.0, "Default d_max in PCA-W std units.")
_D_MAX_SAMPLES = flags.DEFINE_integer("d_max_samples", 10000, "Latents for the PCA-W std.")
_NUM_DIRECTIONS = flags.DEFINE_integer(
    "num_directions", 10, "Use the first n directions of each file (0: all).")
_THRESHOLD = flags.DEFINE_float("threshold", 0.5, "A seed starts negative if p_a(0) < this.")
_TARGET = flags.DEFINE_float("target", 0.5, "d50 is where the mean p_a first reaches this.")
_LAYER_RANGE = flags.DEFINE_list(
    "layer_range", None, "start,end: edit only ws slots [start, end) (default: all).")
_TRUNCATION = flags.DEFINE_float("truncation_psi", 1.0, "Truncation applied before the edit.")
_CHUNK = flags.DEFINE_integer("chunk", 0, "Edits per jitted batch (memory scales with it); "
                               "0: 64 on CPU, 256 on accelerators.")
_FIGURES = flags.DEFINE_boolean("figures", True, "Write Figs. 3-6.")
_GRID_DIRECTIONS = flags.DEFINE_integer("grid_directions", 8, "Rows of the Fig. 3 grids.")
_GRID_COLUMNS = flags.DEFINE_integer("grid_columns", 9, "Columns of the Fig. 3 grids.")
_SAVE_PREDS = flags.DEFINE_boolean("save_predictions", True, "Write preds_<method>.npz.")


def main(argv):
    extra = argv[1:]
    not_npz = [a for a in extra if not a.endswith(".npz")]
    if not_npz:
        raise app.UsageError(f"Unexpected arguments: {not_npz}")
    from sparse_jax.evaluation import run as evaluate

    layer_range = None
    if _LAYER_RANGE.value:
        try:
            layer_range = tuple(int(v) for v in _LAYER_RANGE.value)
        except ValueError:
            raise app.UsageError(f"--layer_range must be two integers start,end, got "
                                 f"{_LAYER_RANGE.value}") from None
        if len(layer_range) != 2:
            raise app.UsageError(f"--layer_range must be start,end, got {_LAYER_RANGE.value}")
    paths = list(_DIRECTIONS.value) + extra
    if not paths:
        raise app.UsageError("--directions: give at least one direction file")
    config = evaluate.EvalConfig(
        seed=_SEED.value, num_assign_seeds=_NUM_ASSIGN.value, num_eval_seeds=_NUM_EVAL.value,
        num_distances=_NUM_DIST.value, d_max=_D_MAX.value, d_max_sigmas=_D_MAX_SIGMAS.value,
        d_max_samples=_D_MAX_SAMPLES.value, num_directions=_NUM_DIRECTIONS.value or None,
        threshold=_THRESHOLD.value, target=_TARGET.value, layer_range=layer_range,
        truncation_psi=_TRUNCATION.value, chunk=_CHUNK.value or None, figures=_FIGURES.value,
        grid_directions=_GRID_DIRECTIONS.value, grid_columns=_GRID_COLUMNS.value,
        save_predictions=_SAVE_PREDS.value)
    logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO
    result = evaluate.run_evaluation(paths, _OUT.value, generator=_GENERATOR.value,
                                     classifier=_CLASSIFIER.value, config=config)
    print(result.markdown)
    print("wrote " + ", ".join(result.files))


if __name__ == "__main__":
    app.run(main)
