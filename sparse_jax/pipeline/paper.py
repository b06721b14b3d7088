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

from sparse_jax.core import atomic, resume
from sparse_jax.discovery import run as discover
from sparse_jax.evaluation import bootstrap
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


RATIOS = (("sca", "pca"), ("sca", "sefa"), ("sca", "pca-w"), ("sca", "sca-w"))


def run_paper(out: str, generator: str | None = None, classifier: str | None = None,
              sizes: PaperSizes = PaperSizes(), seed: int = 0, batch: int = 256,
              target_sparsity: float = 0.8, methods: str | None = None, repeats: int = 1,
              allow_classifier_mismatch: bool = False, bootstrap_draws: int = 1000,
              progress: bool = True, log: Callable[[str], None] = print,
              checkpoint: resume.RunFolder | None = None) -> dict[str, Any]:
    """Runs discovery and evaluation `repeats` times; returns run.json's content.

    Repeat r uses run seed `seed + r` for every sample (fit, regression, lat_stdev, walks).
    With one repeat everything is written to OUT as before; with R > 1 repeat r is a complete
    run in OUT/repeat_<r> (figures in repeat 0 only) and OUT/table1.md / table1.json hold
    Table 1 with 95% bootstrap intervals over the repeats and evaluation seeds (also written,
    over evaluation seeds only, as OUT/table1_intervals.* for one repeat).

    Args:
      allow_classifier_mismatch: score with a classifier whose input resolution or channels
        differ from the generator's images (it then resizes / converts); refused otherwise.
      bootstrap_draws: draws of the interval bootstrap (0: no intervals).
      checkpoint: the run folder of OUT (`core.resume`): each repeat's discovery and evaluation
        keep their finished parts there, so an interrupted run resumes; None computes all.
    """
    if repeats < 1:
        raise ValueError(f"repeats (--repeats) must be >= 1, got {repeats}")
    t0 = time.perf_counter()
    gen_path = generator or model_dirs.default_generator_path()
    cls_path = classifier or model_dirs.default_classifier_path()
    cfg, variables = model_dirs.load_generator(gen_path)
    evaluate.check_classifier_fits(cfg, model_dirs.load_classifier_config(cls_path), gen_path,
                                   cls_path, allow_classifier_mismatch)
    cfg_c, params_c = model_dirs.load_classifier(cls_path)
    log(f"generator: {gen_path} ({cfg.img_resolution}x{cfg.img_resolution}, "
        f"{cfg.img_channels} channel(s), w_dim {cfg.w_dim})")
    log(f"classifier: {cls_path} ({len(cfg_c.attribute_names)} attributes)")
    log("sizes: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(sizes).items())
        + f", seed={seed}, repeats={repeats}, devices={jax.device_count()}")

    folders, files, seconds, method_names = [], [], {}, []
    markdown = ""
    for r in range(repeats):
        run_seed = seed + r
        folder = out if repeats == 1 else os.path.join(out, f"repeat_{r}")
        if repeats > 1:
            log(f"repeat {r + 1}/{repeats} (seed {run_seed}) -> {folder}")
        t_rep = time.perf_counter()
        dir_out = os.path.join(folder, "directions")
        discovery = discover.run_discovery(
            cfg, variables, methods=methods, num_samples=sizes.num_samples, k=sizes.k,
            target_sparsity=target_sparsity, seed=run_seed, batch=batch, out=dir_out,
            label_fn=label_function(cfg_c, params_c), progress=progress,
            checkpoint=resume.child(checkpoint, f"repeat_{r}/discovery"))
        t_discover = time.perf_counter() - t_rep
        log(f"discovery done in {t_discover:.0f} s: " + ", ".join(discovery.methods))
        config = evaluate.EvalConfig(
            seed=run_seed, num_assign_seeds=sizes.num_assign_seeds,
            num_eval_seeds=sizes.num_eval_seeds, num_distances=sizes.num_distances,
            d_max_samples=sizes.d_max_samples, num_directions=sizes.k, chunk=batch,
            figures=(r == 0), allow_classifier_mismatch=allow_classifier_mismatch)
        paths = [os.path.join(dir_out, f"directions_{m}.npz") for m in discovery.methods]
        evaluation = evaluate.run_evaluation(
            paths, folder, generator=gen_path, classifier=cls_path, config=config,
            progress=progress, checkpoint=resume.child(checkpoint, f"repeat_{r}/evaluation"))
        seconds[f"repeat_{r}"] = {"discovery": round(t_discover, 1),
                                  "total": round(time.perf_counter() - t_rep, 1)}
        folders.append(folder)
        files += [os.path.relpath(f, out) for f in evaluation.files]
        method_names = list(discovery.methods)
        if r == 0:
            markdown = evaluation.markdown
            if repeats == 1:
                log(markdown)
    intervals = None
    if bootstrap_draws > 0:
        t_boot = time.perf_counter()
        values = [bootstrap.load_repeat(f) for f in folders]
        intervals = bootstrap.bootstrap(values, num_draws=bootstrap_draws, seed=seed,
                                        ratios=RATIOS, order=method_names)
        seconds["bootstrap"] = round(time.perf_counter() - t_boot, 1)
        boot_md = bootstrap.markdown(intervals)
        if repeats == 1:
            names = ["table1_intervals.md", "table1_intervals.json"]
            atomic.write_text(os.path.join(out, names[0]), boot_md)
            atomic.write_json(os.path.join(out, names[1]), intervals)
        else:
            names = ["table1.md", "table1.json"]
            atomic.write_text(os.path.join(out, names[0]),
                              "# Table 1\n\n" + boot_md + "\n## Repeat 0 in detail\n\n"
                              + markdown.replace("# Table 1\n", "", 1))
            atomic.write_json(os.path.join(out, names[1]),
                              {"intervals": intervals, "repeats": folders,
                               "seeds": [seed + r for r in range(repeats)]})
        files += names
        log(boot_md)
    total = time.perf_counter() - t0
    seconds["total"] = round(total, 1)
    if repeats == 1:
        seconds["discovery"] = seconds["repeat_0"]["discovery"]
    run = {"generator": gen_path, "classifier": cls_path, "seed": seed, "repeats": repeats,
           "sizes": dataclasses.asdict(sizes), "methods": method_names,
           "seconds": seconds, "devices": jax.device_count(),
           # Resumed: the seconds are this run's, after the finished parts were read back.
           "resumed": bool(checkpoint is not None and checkpoint.resumed),
           "platform": jax.devices()[0].platform, "files": sorted(files)}
    atomic.write_json(os.path.join(out, "run.json"), run)
    log(f"done in {total:.0f} s; results in {out}")
    return run
