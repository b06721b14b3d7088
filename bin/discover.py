"""Finds edit directions in W with PCA-W, PCA, SeFa, SCA and SCA-W; writes them to --out.

    python bin/discover.py --out runs/discover --methods pca-w,sca --num_samples 10000
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

_GENERATOR = flags.DEFINE_string(
    "generator", None, "Converted generator directory (config.json + Orbax); default: the "
    "embedded MNIST StyleGAN2.")
_METHODS = flags.DEFINE_string(
    "methods", "pca-w,pca,sefa,sca,sca-w", "Comma list of methods: pca-w, pca, sefa, sca, sca-w.")
_LAYERS = flags.DEFINE_string(
    "layers", "", "Comma list of synthesis layers ('b8.conv1' or 'synthesis.b8.conv1'); default: "
    "conv1 of the blocks at 1/4 and 1/2 of the output resolution.")
_POOL = flags.DEFINE_string(
    "pool", "global", "Spatial max pooling: 'global' (one max per channel) or 'gridS' (S x S).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 10_000, "Samples to fit the decompositions.")
_K = flags.DEFINE_integer("k", 20, "Directions per method.")
_GAMMA = flags.DEFINE_float("gamma", None, "SCA L1 budget; overrides --target_sparsity.")
_TARGET_SPARSITY = flags.DEFINE_float(
    "target_sparsity", 0.8, "Fraction of SCA loadings that should be exactly zero.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed.")
_BATCH = flags.DEFINE_integer("batch", 256, "Samples per jitted step (lower it on out-of-memory).")
_TRUNCATION = flags.DEFINE_float("truncation", 1.0, "Truncation psi for z -> w.")
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Call jax.distributed.initialize() first (multi-host runs).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from sparse_jax.core import sharding

    sharding.initialize_distributed(_MULTIHOST.value)

    import sparse_jax
    from sparse_jax.discovery import features
    from sparse_jax.discovery import run as discover
    from sparse_jax.io import model_dirs

    try:
        path = _GENERATOR.value or sparse_jax.default_generator_path()
        cfg, variables = model_dirs.load_generator(path)
        discover.run_discovery(
            cfg, variables, methods=_METHODS.value, layers=_LAYERS.value, pool=_POOL.value,
            num_samples=_NUM_SAMPLES.value, k=_K.value, gamma=_GAMMA.value,
            target_sparsity=_TARGET_SPARSITY.value, seed=_SEED.value, batch=_BATCH.value,
            truncation=_TRUNCATION.value, out=_OUT.value)
    except (ValueError, FileNotFoundError, features.BatchOutOfMemory) as err:
        sys.exit(f"discover: error: {err}")
    print(f"wrote directions to {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
