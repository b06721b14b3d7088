"""The main job: the paper end to end (discover with five methods, walk, evaluate, figures).

`run_paper` chains `discover.run_discovery` and `evaluate.run_evaluation` on one generator and
classifier (the embedded MNIST models by default) and writes everything into one folder:

  OUT/directions/directions_<method>.npz|.npy, summary.json, scatter.png   (Fig. 2)
  OUT/table1.md, table1.json                                               (Table 1)
  OUT/fig*.png                                                             (Figs. 3-6)
  OUT/run.json                                                             (sizes, seconds)
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from sparse_jax.core import atomic
from sparse_jax.discovery import run as discover
from sparse_jax.evaluation import run as evaluate
from sparse_jax.io import model_dirs
from sparse_jax.models import classifier as clf


@dataclasses.dataclass(frozen=True)
class PaperSizes:
    """Sample sizes of one run. `quick()` fits 10 minutes on 2 CPU cores; `paper()` is the paper."""

    num_samples: int = 2000
    k: int = 10
    num_assign_seeds: int = 50
    num_eval_seeds: int = 100
    num_distances: int = 6
    d_max_samples: int = 5000

    @classmethod
    def quick(cls) -> "PaperSizes":
        return cls()

    @classmethod
    def paper(cls) -> "PaperSizes":
        return cls(num_samples=10_000, k=20, num_assign_seeds=100, num_eval_seeds=500,
                   num_distances=11, d_max_samples=10_000)

    @classmethod
    def smoke(cls) -> "PaperSizes":
        """Tiny sizes for CI: checks that every output is produced, not the numbers."""
        return cls(num_samples=300, k=5, num_assign_seeds=8, num_eval_seeds=16, num_distances=3,
                   d_max_samples=500)


def label_function(cfg_c: clf.ClassifierConfig, params_c: Any) -> Callable:
    """images [B,C,H,W] -> int labels [B] for colouring Fig. 2: the predicted digit when the
    classifier has digit heads, else whether its first attribute is present."""
    names = list(cfg_c.attribute_names)
    digit_cols = tuple(i for i, n in enumerate(names) if n.startswith("digit_"))
    # A Partial: the classifier's weights are arguments of the jitted feature step, not constants.
    return jax.tree_util.Partial(functools.partial(_labels, cfg_c, digit_cols), params_c)


def _labels(cfg_c: clf.ClassifierConfig, digit_cols: tuple[int, ...], params_c: Any,
            images: jax.Array) -> jax.Array:
    p = clf.predict_probs(cfg_c, params_c, images)
    if digit_cols:
        return jnp.argmax(p[:, jnp.asarray(digit_cols)], axis=1)
    return (p[:, 0] > 0.5).astype(jnp.int32)


def run_paper(out: str, generator: str | None = None, classifier: str | None = None,
              sizes: PaperSizes = PaperSizes(), seed: int = 0, batch: int = 256,
              target_sparsity: float = 0.8, methods: str | None = None,
              progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs discovery and evaluation; returns run.json's content (also written to OUT)."""
    t0 = time.perf_counter()
    gen_path = generator or model_dirs.default_generator_path()
    cls_path = classifier or model_dirs.default_classifier_path()
    cfg, variables = model_dirs.load_generator(gen_path)
    cfg_c, params_c = model_dirs.load_classifier(cls_path)
    log(f"generator: {gen_path} ({cfg.img_resolution}x{cfg.img_resolution}, "
        f"{cfg.img_channels} channel(s), w_dim {cfg.w_dim})")
    log(f"classifier: {cls_path} ({len(cfg_c.attribute_names)} attributes)")
    log("sizes: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(sizes).items())
        + f", seed={seed}, devices={jax.device_count()}")

    dir_out = os.path.join(out, "directions")
    discovery = discover.run_discovery(
        cfg, variables, methods=methods, num_samples=sizes.num_samples, k=sizes.k,
        target_sparsity=target_sparsity, seed=seed, batch=batch, out=dir_out,
        label_fn=label_function(cfg_c, params_c), progress=progress)
    t_discover = time.perf_counter() - t0
    log(f"discovery done in {t_discover:.0f} s: " + ", ".join(discovery.methods))

    config = evaluate.EvalConfig(
        seed=seed, num_assign_seeds=sizes.num_assign_seeds, num_eval_seeds=sizes.num_eval_seeds,
        num_distances=sizes.num_distances, d_max_samples=sizes.d_max_samples,
        num_directions=sizes.k, chunk=batch)
    paths = [os.path.join(dir_out, f"directions_{m}.npz") for m in discovery.methods]
    evaluation = evaluate.run_evaluation(paths, out, generator=gen_path, classifier=cls_path,
                                         config=config)
    total = time.perf_counter() - t0
    log(evaluation.markdown)
    run = {"generator": gen_path, "classifier": cls_path, "seed": seed,
           "sizes": dataclasses.asdict(sizes), "methods": list(discovery.methods),
           "seconds": {"discovery": round(t_discover, 1), "total": round(total, 1)},
           "devices": jax.device_count(), "platform": jax.devices()[0].platform,
           "files": sorted(os.path.relpath(f, out) for f in evaluation.files)}
    atomic.write_json(os.path.join(out, "run.json"), run)
    log(f"done in {total:.0f} s; results in {out}")
    return run
