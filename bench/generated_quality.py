#!/usr/bin/env python3
"""Quality bar of the shipped MNIST generator, measured with the shipped classifier.

  python bench/generated_quality.py                  # 10,000 samples, seed 0
Bar: classifier confident (max p >= 0.9) on >= 85% of samples; every digit 5-15% of those.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--generator", default=None)
    ap.add_argument("--classifier", default=None)
    ap.add_argument("--num_samples", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--truncation", type=float, default=1.0)
    args = ap.parse_args()
    from absl import logging
    logging.set_verbosity(logging.WARNING)

    from sparse_jax.core import seeds
    from sparse_jax.evaluation import sample_quality
    from sparse_jax.io import model_dirs
    cfg, variables = model_dirs.load_generator(args.generator or
                                                model_dirs.default_generator_path())
    cfg_c, params_c = model_dirs.load_classifier(args.classifier)
    t0 = time.perf_counter()
    probs = sample_quality.digit_predictions(cfg, variables, cfg_c, params_c,
                                             seeds.stream_key(args.seed, seeds.QUALITY_STREAM),
                                             args.num_samples,
                                             truncation_psi=args.truncation)
    rep = sample_quality.quality_report(probs)
    rep["seconds"] = round(time.perf_counter() - t0, 1)
    rep["meets_bar"] = sample_quality.meets_bar(rep)
    print(json.dumps(rep, indent=1))
    print(f"| samples | confident (max p >= 0.9) | digit share min / max | meets bar |\n"
          f"|---|---|---|---|\n| {rep['num_samples']} | {rep['confident_fraction']:.3f} | "
          f"{rep['min_share']:.3f} / {rep['max_share']:.3f} | {rep['meets_bar']} |")


if __name__ == "__main__":
    main()
