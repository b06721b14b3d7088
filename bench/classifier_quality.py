"""Quality of a saved attribute classifier on held-out MNIST-like digits (markdown tables).

Reports per-attribute held-out accuracy of the classifier (default: the shipped MNIST classifier) on
clean test images and under the perturbations that generator samples show (small shifts, pixel
noise), its throughput, and a pixel logistic-regression baseline fitted in the same run.

  python bench/classifier_quality.py --data /work/shared/data/mnist.npz
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

_DATA = flags.DEFINE_string(
    "data", None, "Digits: MNIST .npz, IDX folder or 'sklearn_digits' (default: the shared "
    "mnist.npz next to the repository if present, else sklearn_digits).")
_CLASSIFIER = flags.DEFINE_string("classifier", None, "Classifier dir (default: shipped one).")
_SEED = flags.DEFINE_integer("seed", 0, "PRNG seed of the perturbations.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timing repeats (median reported).")
_BASELINE_TRAIN = flags.DEFINE_integer(
    "baseline_train", 10000, "Training images for the logistic-regression baseline (0: skip).")


def _default_data() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = os.environ.get("SPARSE_JAX_SHARED", os.path.join(os.path.dirname(root), "shared"))
    path = os.path.join(shared, "data", "mnist.npz")
    return path if os.path.isfile(path) else "sklearn_digits"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    import jax
    import numpy as np

    from sparse_jax.data import attributes, loaders
    from sparse_jax.io import model_dirs
    from sparse_jax.models import classifier as clf
    from sparse_jax.training import classifier as ct

    spec = _DATA.value or _default_data()
    cfg, params = model_dirs.load_classifier(_CLASSIFIER.value)
    if cfg.head_types[:10] != ("softmax",) * 10:
        raise app.UsageError("this benchmark needs a digit classifier (softmax digit_0..9)")
    x, y = loaders.load_images(spec, "test")
    images = loaders.to_model_images(x, cfg.resolution, channels=cfg.in_channels)
    targets = ct.digit_targets(y)
    if cfg.measured_quantiles:
        raw = attributes.measure(attributes.ink_from_model_images(images))
        unit = np.asarray(attributes.to_unit(raw, np.asarray(cfg.measured_quantiles)))
        targets = np.concatenate([targets, unit], axis=1)

    key = jax.random.key(_SEED.value)
    k_shift, k_noise = jax.random.split(key)
    variants = {
        "clean": images,
        "shift ±2 px": np.asarray(ct.random_shift(k_shift, images, 2)),
        "noise σ=0.2": np.clip(images + 0.2 * np.asarray(
            jax.random.normal(k_noise, images.shape)), -1, 1),
    }
    results = {}
    for name, imgs in variants.items():
        ds = ct.Dataset(ct.quantize(imgs), targets)
        results[name] = ct.evaluate(cfg, params, ds)

    print(f"data: {spec} (test split, {len(x)} images); classifier: "
          f"{_CLASSIFIER.value or model_dirs.default_classifier_path()} "
          f"({clf.num_params(params)} params)")
    print()
    print("| attribute | metric | " + " | ".join(variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    print("| digit (top-1) | accuracy | "
          + " | ".join(f"{r['heads'][0]['accuracy']:.4f}" for r in results.values()) + " |")
    for attr in cfg.attribute_names:
        cells = [r["attributes"][attr] for r in results.values()]
        print(f"| {attr} | accuracy | " + " | ".join(f"{c['accuracy']:.4f}" for c in cells) + " |")
        if "pearson" in cells[0]:
            print(f"| {attr} | Pearson r | "
                  + " | ".join(f"{c['pearson']:.4f}" for c in cells) + " |")

    fn = jax.jit(lambda p, im: clf.predict_probs(cfg, p, im))
    batch = jax.device_put(images[:1000])
    fn(params, batch).block_until_ready()
    times = []
    for _ in range(_REPEATS.value):
        t0 = time.perf_counter()
        fn(params, batch).block_until_ready()
        times.append(time.perf_counter() - t0)
    per_s = len(batch) / float(np.median(times))
    print()
    print("| throughput (predict_probs, batch 1000, jit) | images/s |")
    print("|---|---|")
    print(f"| median of {_REPEATS.value} | {per_s:.0f} |")

    if _BASELINE_TRAIN.value > 0:
        from sklearn.linear_model import LogisticRegression

        xtr, ytr = loaders.load_images(spec, "train")
        n = min(_BASELINE_TRAIN.value, len(xtr))
        lr = LogisticRegression(max_iter=300)
        lr.fit(xtr[:n].reshape(n, -1) / 255.0, ytr[:n])
        base = float(np.mean(lr.predict(x.reshape(len(x), -1) / 255.0) == y))
        ours = results["clean"]["heads"][0]["accuracy"]
        print()
        print("| digit top-1 accuracy | value | error ratio vs baseline |")
        print("|---|---|---|")
        print(f"| pixel logistic regression ({n} train images) | {base:.4f} | 1.00 |")
        print(f"| classifier | {ours:.4f} | {(1 - ours) / max(1 - base, 1e-9):.3f} |")


if __name__ == "__main__":
    app.run(main)
