#!/usr/bin/env python3
"""The main job: the paper end to end on the embedded MNIST models (or your own).

  python bin/run_paper.py --out results              # ~10 min on 2 CPU cores
  python bin/run_paper.py --out results --paper_scale
  python bin/run_paper.py --generator G_DIR --classifier C_DIR --out results
"""
import _cli
from absl import app, flags

_OUT = flags.DEFINE_string("out", "results", "Output folder.")
_GEN = flags.DEFINE_string("generator", None, "Generator directory; default: embedded MNIST G.")
_CLS = flags.DEFINE_string("classifier", None, "Classifier directory; default: embedded MNIST.")
_PAPER = flags.DEFINE_boolean("paper_scale", False, "The paper's sizes: 10,000 samples, k=20, "
                              "500 evaluation seeds, 11 distances.")
_SMOKE = flags.DEFINE_boolean("smoke", False, "Tiny sizes (CI): every output, meaningless numbers.")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed for every sample and walk.")
_BATCH = flags.DEFINE_integer("batch", 256, "Samples per jitted step (lower it if out of memory).")
_SPARSITY = flags.DEFINE_float("target_sparsity", 0.8, "Fraction of zero SCA loadings.")
_METHODS = flags.DEFINE_string("methods", None, "Comma list (default: pca-w,pca,sefa,sca,sca-w).")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Progress bars.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _PAPER.value and _SMOKE.value:
        raise app.UsageError("--paper_scale and --smoke exclude each other")
    _cli.quiet_logs()
    from sparse_jax.pipeline import paper
    sizes = (paper.PaperSizes.paper() if _PAPER.value else
             paper.PaperSizes.smoke() if _SMOKE.value else paper.PaperSizes.quick())
    paper.run_paper(_OUT.value, generator=_GEN.value, classifier=_CLS.value, sizes=sizes,
                    seed=_SEED.value, batch=_BATCH.value, target_sparsity=_SPARSITY.value,
                    methods=_METHODS.value, progress=_PROGRESS.value)


if __name__ == "__main__":
    app.run(main)
