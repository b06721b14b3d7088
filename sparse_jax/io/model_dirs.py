"""Model directories: one format for generators and classifiers, written atomically.

Every model directory looks like::

    DIR/config.json     {"format": "sparse-jax-generator" | "sparse-jax-classifier", "version": 1,
                         "architecture": "stylegan2" | "stylegan1" | "cnn",
                         "config": {...}, "defaults": {...}, "info": {...}}
    DIR/variables/      Orbax checkpoint of the variables (generator: {'params', 'buffers'};
                        classifier: its params tree)
    DIR/metrics.json    optional (classifiers: held-out accuracy per attribute)

`defaults` holds what the checkpoint's own code would apply when nothing is asked for, e.g. a
StyleGAN v1 generator's truncation (psi 0.7 on the first 8 ws slots).

The whole directory is first written under a temporary name in the same folder and then renamed
onto the final name, so an interrupted save never leaves a half-written model under that name.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from sparse_jax.core import atomic
from sparse_jax.models import classifier as clf
from sparse_jax.models import generators

GENERATOR_FORMAT = "sparse-jax-generator"
CLASSIFIER_FORMAT = "sparse-jax-classifier"
FORMAT_VERSION = 1
CLASSIFIER_ARCH = "cnn"
CONFIG_FILE = "config.json"
VARIABLES_DIR = "variables"
METRICS_FILE = "metrics.json"


# ----------------------------------------------------------------------------- the format


def save_model_dir(path: str, fmt: str, architecture: str, config: Mapping[str, Any],
                   variables: Any, *, defaults: Mapping[str, Any] | None = None,
                   info: Mapping[str, Any] | None = None, metrics: Mapping[str, Any] | None = None,
                   overwrite: bool = True) -> None:
    """Writes config.json, the Orbax variables (and metrics.json) into `path`, atomically.

    Raises:
      FileExistsError: `path` exists and `overwrite` is False.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(path) + ".")
    try:
        # mkdtemp makes a 0700 folder; a model directory gets the permissions mkdir would give.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        variables = jax.tree_util.tree_map(np.asarray, variables)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(os.path.join(tmp, VARIABLES_DIR), variables)
            ckptr.wait_until_finished()
        atomic.write_json(os.path.join(tmp, CONFIG_FILE), {
            "format": fmt, "version": FORMAT_VERSION, "architecture": architecture,
            "config": dict(config), "defaults": dict(defaults or {}), "info": dict(info or {})})
        if metrics is not None:
            atomic.write_json(os.path.join(tmp, METRICS_FILE), dict(metrics))
        if os.path.exists(path):
            old = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(path) + ".old.")
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_model_config(path: str, fmt: str) -> dict[str, Any]:
    """Reads and checks `path/config.json`; returns the whole JSON object."""
    cfg_path = os.path.join(path, CONFIG_FILE)
    what = fmt.removeprefix("sparse-jax-")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such {what} directory")
    if not os.path.isfile(cfg_path):
        raise ValueError(f"{path}: not a {what} directory (no {CONFIG_FILE})")
    try:
        with open(cfg_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{cfg_path}: corrupt JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{cfg_path}: format is {got!r}, expected {fmt!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{cfg_path}: version {meta.get('version')!r} is not supported "
                         f"(expected {FORMAT_VERSION})")
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{cfg_path}: missing the 'config' object")
    return meta


def restore_variables(path: str, abstract: Any) -> Any:
    """Restores the Orbax checkpoint `path/variables` against an abstract target."""
    var_path = os.path.join(os.path.abspath(path), VARIABLES_DIR)
    if not os.path.isdir(var_path):
        raise ValueError(f"{path}: missing the Orbax checkpoint folder '{VARIABLES_DIR}'")
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract)
    with ocp.StandardCheckpointer() as ckptr:
        try:
            return ckptr.restore(var_path, abstract)
        except Exception as e:  # Orbax raises several types for a mismatched tree
            raise ValueError(f"{var_path}: checkpoint does not match the model described by "
                             f"{CONFIG_FILE}: {e}") from e


def check_like(variables: Any, abstract: Any) -> None:
    """Raises ValueError listing every missing, unexpected or mis-shaped leaf."""
    def flat(tree):
        return {jax.tree_util.keystr(p): (tuple(v.shape), np.dtype(v.dtype).name)
                for p, v in jax.tree_util.tree_leaves_with_path(tree)}
    got, want = flat(variables), flat(abstract)
    bad = [f"missing {k}" for k in want.keys() - got.keys()]
    bad += [f"unexpected {k}" for k in got.keys() - want.keys()]
    bad += [f"{k}: got {got[k]}, expected {want[k]}" for k in got.keys() & want.keys()
            if got[k] != want[k]]
    if bad:
        raise ValueError("variables do not match the model:\n  " + "\n  ".join(sorted(bad)))


def asset_path(name: str) -> str:
    """Path of a model shipped inside the package (sparse_jax/assets/<name>)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                        name)


def _shipped(name: str, flag: str) -> str:
    path = asset_path(name)
    if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
        raise FileNotFoundError(f"the embedded model is missing at {path}; pass {flag} with a "
                                "model directory")
    return path


# ----------------------------------------------------------------------------- generators


def abstract_generator(cfg: Any) -> Any:
    """ShapeDtypeStructs of a generator's variables (no computation)."""
    return generators.abstract_variables(cfg)


def save_generator(path: str, cfg: Any, variables: Mapping, info: Mapping[str, Any] | None = None,
                   overwrite: bool = True, defaults: Mapping[str, Any] | None = None) -> None:
    """Saves a generator directory loadable with `load_generator`.

    Args:
      cfg: the config of any architecture in `sparse_jax.models.generators`.
      defaults: the checkpoint's own run-time defaults, e.g. {"truncation_psi": 0.7,
        "truncation_cutoff": 8}.
    """
    check_like(variables, abstract_generator(cfg))
    save_model_dir(path, GENERATOR_FORMAT, generators.architecture(cfg), cfg.to_dict(),
                   variables, defaults=defaults, info=info, overwrite=overwrite)


def load_generator(path: str) -> tuple[Any, dict]:
    """Loads a generator directory: returns (config, {'params': ..., 'buffers': ...})."""
    meta = read_model_config(path, GENERATOR_FORMAT)
    arch = meta.get("architecture", "stylegan2")  # written before the field existed: StyleGAN2
    try:
        cfg = generators.config_from_dict(arch, meta["config"])
    except ValueError as e:
        raise ValueError(f"{os.path.join(path, CONFIG_FILE)}: {e}") from e
    return cfg, restore_variables(path, abstract_generator(cfg))


def generator_meta(path: str) -> dict[str, Any]:
    """The whole config.json of a generator directory (architecture, defaults, info)."""
    return read_model_config(path, GENERATOR_FORMAT)


def generator_defaults(path: str) -> dict[str, Any]:
    """The checkpoint's own run-time defaults recorded at conversion ({} when none)."""
    return dict(generator_meta(path).get("defaults") or {})


def default_generator_path() -> str:
    """The embedded MNIST StyleGAN2 (32x32, grayscale) shipped with the package."""
    return _shipped("generator_mnist", "--generator")


# ----------------------------------------------------------------------------- classifiers


def save_classifier(path: str, cfg: clf.ClassifierConfig, params: Any,
                    metrics: Mapping[str, Any] | None = None, overwrite: bool = True) -> None:
    """Writes a classifier directory loadable with `load_classifier`."""
    save_model_dir(path, CLASSIFIER_FORMAT, CLASSIFIER_ARCH, cfg.to_dict(), params,
                   info={"num_params": clf.num_params(params)}, metrics=metrics,
                   overwrite=overwrite)


def load_classifier_config(path: str) -> clf.ClassifierConfig:
    meta = read_model_config(path, CLASSIFIER_FORMAT)
    try:
        return clf.ClassifierConfig.from_dict(meta["config"])
    except ValueError as e:
        raise ValueError(f"{os.path.join(path, CONFIG_FILE)}: {e}") from e


def load_classifier(path: str | None = None) -> tuple[clf.ClassifierConfig, Any]:
    """Loads a classifier directory.

    Args:
      path: directory written by `save_classifier`; None -> the shipped MNIST classifier.
    Returns:
      (cfg, params) for `classifier.predict_probs(cfg, params, images)`.
    """
    path = os.path.abspath(path if path is not None else default_classifier_path())
    cfg = load_classifier_config(path)
    abstract = jax.eval_shape(lambda k: clf.init_classifier(k, cfg), jax.random.key(0))
    return cfg, restore_variables(path, abstract)


def default_classifier_path() -> str:
    """The MNIST attribute classifier shipped with the package."""
    return _shipped("classifier_mnist", "--classifier")
