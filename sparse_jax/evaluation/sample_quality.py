"""Quality of a digit generator, judged by a digit classifier (the shipped models' quality bar).

For n generated samples: the fraction on which the classifier is confident (max digit p >= 0.9)
and how the confident samples spread over the digits (mode coverage).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np

from sparse_jax.core import seeds
from sparse_jax.models import classifier as clf
from sparse_jax.models import generators


def digit_columns(cfg_c: clf.ClassifierConfig) -> np.ndarray:
    cols = [i for i, n in enumerate(cfg_c.attribute_names) if n.startswith("digit_")]
    if len(cols) != 10:
        raise ValueError(f"need a classifier with heads digit_0..digit_9, got "
                         f"{list(cfg_c.attribute_names)}")
    return np.asarray(cols)


def _make_step(cfg: generators.GeneratorConfig, cfg_c: clf.ClassifierConfig,
               truncation_psi: float) -> Callable:
    """step(variables, params_c, key, idx [B], cols [10]) -> digit probabilities [B, 10]."""

    def step(variables, params_c, key, idx, cols):
        z = seeds.latents(key, idx, cfg.z_dim)
        img = generators.generate(cfg, variables, z, truncation_psi=truncation_psi)
        return clf.predict_probs(cfg_c, params_c, img)[:, cols]

    return step


@functools.lru_cache(maxsize=8)
def _compiled_step(cfg: generators.GeneratorConfig, cfg_c: clf.ClassifierConfig,
                   truncation_psi: float) -> Callable:
    return jax.jit(_make_step(cfg, cfg_c, truncation_psi))


def digit_predictions(cfg: generators.GeneratorConfig, variables: Any, cfg_c: clf.ClassifierConfig,
                      params_c: Any, key: jax.Array, num_samples: int, batch: int = 500,
                      truncation_psi: float = 1.0) -> np.ndarray:
    """Digit probabilities of `num_samples` generated images: [n, 10].

    Sample i is z = seeds.latents(key, i) (`key`: e.g. `seeds.stream_key(seed,
    seeds.QUALITY_STREAM)`), so results do not depend on `batch`. The weights are arguments of
    one jitted step; every batch has `batch` rows (the last padded with larger indices, its extra
    rows dropped), so the run compiles once.
    """
    if num_samples < 1 or batch < 1:
        raise ValueError(f"num_samples and batch must be >= 1, got {num_samples}, {batch}")
    cols = jax.device_put(digit_columns(cfg_c))
    size = min(int(batch), int(num_samples))
    step = _compiled_step(cfg, cfg_c, float(truncation_psi))
    variables, params_c, key = jax.device_put((variables, params_c, key))
    out = []
    for lo in range(0, num_samples, size):
        idx = jax.device_put(np.arange(lo, lo + size, dtype=np.int32))
        p = np.asarray(jax.device_get(step(variables, params_c, key, idx, cols)))
        out.append(p[:num_samples - lo])
    return np.concatenate(out)


def quality_report(probs: np.ndarray, confidence: float = 0.9) -> dict[str, Any]:
    """probs [n, 10] -> confident fraction, share of each digit among confident samples."""
    conf = probs.max(axis=1) >= confidence
    labels = probs.argmax(axis=1)[conf]
    counts = np.bincount(labels, minlength=10)
    share = counts / max(1, conf.sum())
    return {"num_samples": int(len(probs)), "confidence": confidence,
            "confident_fraction": float(conf.mean()), "digit_counts": counts.tolist(),
            "digit_share": [round(float(s), 4) for s in share],
            "min_share": float(share.min()), "max_share": float(share.max())}


def meets_bar(report: dict[str, Any], min_confident: float = 0.85, share_range=(0.05, 0.15)
              ) -> bool:
    return (report["confident_fraction"] >= min_confident
            and share_range[0] <= report["min_share"] and report["max_share"] <= share_range[1])
