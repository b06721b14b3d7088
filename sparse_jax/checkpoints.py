"""Saving and loading model directories: `config.json` plus an Orbax checkpoint of the variables.

A generator directory looks like::

    DIR/config.json     {"format": "sparse-jax-generator", "version": 1,
                         "config": {...}, "info": {...}}
    DIR/variables/      Orbax checkpoint of {'params': ..., 'buffers': ...}

The whole directory is first written under a temporary name and then renamed, so an interrupted
save never leaves a half-written directory under the final name.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from sparse_jax import io
from sparse_jax.models import stylegan2 as sg

GENERATOR_FORMAT = "sparse-jax-generator"
FORMAT_VERSION = 1


def save_model_dir(path: str, fmt: str, config: Mapping[str, Any], variables: Any,
                   info: Mapping[str, Any] | None = None, overwrite: bool = True) -> None:
    """Writes `config.json` and an Orbax checkpoint of `variables` into `path`, atomically."""
    path = os.path.abspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(path) + ".")
    try:
        variables = jax.tree_util.tree_map(np.asarray, variables)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(os.path.join(tmp, "variables"), variables)
            ckptr.wait_until_finished()
        io.write_json(os.path.join(tmp, "config.json"), {
            "format": fmt, "version": FORMAT_VERSION, "config": dict(config),
            "info": dict(info or {})})
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
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such model directory")
    if not os.path.isfile(cfg_path):
        raise ValueError(f"{path}: not a {fmt} directory (no config.json)")
    try:
        with open(cfg_path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}: corrupt JSON ({e})") from e
    if meta.get("format") != fmt:
        raise ValueError(f"{cfg_path}: format is {meta.get('format')!r}, expected {fmt!r}")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{cfg_path}: version {meta.get('version')!r} is not supported "
                         f"(expected {FORMAT_VERSION})")
    return meta


def restore_variables(path: str, abstract: Any) -> Any:
    """Restores the Orbax checkpoint `path/variables` against an abstract target."""
    var_path = os.path.join(os.path.abspath(path), "variables")
    if not os.path.isdir(var_path):
        raise ValueError(f"{path}: missing the Orbax checkpoint folder 'variables'")
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract)
    with ocp.StandardCheckpointer() as ckptr:
        try:
            return ckptr.restore(var_path, abstract)
        except Exception as e:  # Orbax raises several types for a mismatched tree
            raise ValueError(f"{var_path}: checkpoint does not match the model described by "
                             f"config.json: {e}") from e


def abstract_generator(cfg: sg.GeneratorConfig) -> Any:
    """ShapeDtypeStructs of a generator's variables (no computation)."""
    return jax.eval_shape(functools.partial(sg.init_generator, cfg=cfg), jax.random.key(0))


def save_generator(path: str, cfg: sg.GeneratorConfig, variables: Mapping,
                   info: Mapping[str, Any] | None = None, overwrite: bool = True) -> None:
    """Saves a generator directory loadable with `load_generator`."""
    check_like(variables, abstract_generator(cfg))
    save_model_dir(path, GENERATOR_FORMAT, cfg.to_dict(), variables, info, overwrite)


def load_generator(path: str) -> tuple[sg.GeneratorConfig, dict]:
    """Loads a generator directory: returns (config, {'params': ..., 'buffers': ...})."""
    meta = read_model_config(path, GENERATOR_FORMAT)
    cfg = sg.GeneratorConfig.from_dict(meta["config"])
    return cfg, restore_variables(path, abstract_generator(cfg))


def generator_info(path: str) -> dict[str, Any]:
    return read_model_config(path, GENERATOR_FORMAT).get("info", {})


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
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", name)


def default_generator_path() -> str:
    """The embedded MNIST StyleGAN2 (32x32, grayscale) shipped with the package."""
    path = asset_path("generator_mnist")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"the embedded default generator is missing at {path}; "
                                "pass --generator with a converted generator directory")
    return path

