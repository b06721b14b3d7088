"""Saved classifiers: `<dir>/config.json` (architecture, attribute names, head types, quantile
tables) + `<dir>/params` (an Orbax checkpoint of the 'params' collection) and optionally
`<dir>/metrics.json` (held-out accuracy per attribute).
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from sparse_jax import io
from sparse_jax.models import classifier as clf

CONFIG_FILE = "config.json"
PARAMS_DIR = "params"
METRICS_FILE = "metrics.json"
FORMAT = "sparse_jax.classifier/1"


def save_classifier(path: str, cfg: clf.ClassifierConfig, params: Any,
                    metrics: dict[str, Any] | None = None) -> None:
    """Writes a classifier directory (an existing `params` checkpoint there is replaced)."""
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    params = jax.tree_util.tree_map(np.asarray, params)
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.join(path, PARAMS_DIR), params, force=True)
    ckptr.wait_until_finished()
    ckptr.close()
    io.write_json(os.path.join(path, CONFIG_FILE),
                  {"format": FORMAT, "num_params": clf.num_params(params), **cfg.to_dict()})
    if metrics is not None:
        io.write_json(os.path.join(path, METRICS_FILE), metrics)


def load_config(path: str) -> clf.ClassifierConfig:
    cfg_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{cfg_path}: classifier config not found")
    with open(cfg_path, encoding="utf-8") as f:
        try:
            d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{cfg_path}: not valid JSON: {e}") from e
    if d.get("format") != FORMAT:
        raise ValueError(f"{cfg_path}: format {d.get('format')!r}, expected {FORMAT!r}")
    try:
        return clf.ClassifierConfig.from_dict(d)
    except ValueError as e:
        raise ValueError(f"{cfg_path}: {e}") from e


def load_classifier(path: str | None = None) -> tuple[clf.ClassifierConfig, Any]:
    """Loads a classifier directory.

    Args:
      path: directory written by `save_classifier`; None -> the shipped MNIST classifier.

    Returns:
      (cfg, params) for `classifier.predict_probs(cfg, params, images)`.
    """
    path = os.path.abspath(path if path is not None else clf.default_classifier_path())
    cfg = load_config(path)
    params_path = os.path.join(path, PARAMS_DIR)
    if not os.path.isdir(params_path):
        raise FileNotFoundError(f"{params_path}: classifier parameters not found")
    abstract = jax.eval_shape(lambda k: clf.init_classifier(k, cfg), jax.random.key(0))
    ckptr = ocp.StandardCheckpointer()
    try:
        params = ckptr.restore(params_path, abstract)
    except (ValueError, KeyError) as e:
        raise ValueError(f"{params_path}: parameters do not match {CONFIG_FILE}: {e}") from e
    finally:
        ckptr.close()
    return cfg, params
