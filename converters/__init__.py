"""Checkpoint converters: official StyleGAN2 `.pkl` / rosinality `.pt` -> sparse-jax generator.

    cfg, variables = converters.convert_file("network-snapshot.pkl")
    converters.convert("network-snapshot.pkl", "out/generator")   # then checkpoints.load_generator

Supported: stylegan2-ada-pytorch snapshots and stylegan3-repo snapshots holding a StyleGAN2
generator (`G_ema` is always taken), rosinality checkpoints (`g_ema` + `latent_avg` from
convert_weight.py, or training checkpoints with `args`). Files are read with a restricted
unpickler (nothing in them is executed) and without torch. Anything else raises a
`ConversionError` (a ValueError) naming the file and what was expected.
"""
from __future__ import annotations

import os

from converters.errors import ConversionError, UnsafePickleError
from converters.official_pkl import convert_official
from converters.rosinality_pt import convert_rosinality, find_state_dict
from converters.safe_pickle import NVIDIA_GLOBALS, TORCH_SAVE_GLOBALS
from converters.stylegan2_names import Converted
from converters.torch_storage import load_checkpoint
from sparse_jax.models import stylegan2 as sg

__all__ = ["ConversionError", "Converted", "UnsafePickleError", "convert", "convert_file",
           "load_converted"]


def load_converted(path: str, *, w_avg_seed: int = 0) -> Converted:
    """Reads and converts a checkpoint file; returns the config, variables and provenance.

    Args:
      path: an NVIDIA snapshot `.pkl` or a rosinality `.pt`.
      w_avg_seed: seed for estimating w_avg when a rosinality training checkpoint has none.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConversionError(f"{path}: cannot read the checkpoint ({e})") from e
    container, obj = load_checkpoint(data, source=path, pickle_globals=NVIDIA_GLOBALS,
                                     torch_globals=TORCH_SAVE_GLOBALS)
    if isinstance(obj, dict) and "G_ema" in obj:
        return convert_official(path, obj)
    if find_state_dict(obj) is not None:
        return convert_rosinality(path, obj, w_avg_seed=w_avg_seed)
    if container == "pickle":
        return convert_official(path, obj)  # raises: no generator
    return convert_rosinality(path, obj, w_avg_seed=w_avg_seed)  # raises: no generator


def convert_file(path: str, *, w_avg_seed: int = 0) -> tuple[sg.GeneratorConfig, dict]:
    """Converts a checkpoint file. Returns (config, {'params': ..., 'buffers': ...})."""
    conv = load_converted(path, w_avg_seed=w_avg_seed)
    return conv.cfg, conv.variables


def convert(src: str, out: str, *, overwrite: bool = False, w_avg_seed: int = 0) -> Converted:
    """Converts `src` and saves a generator directory at `out` (loadable by `load_generator`).

    Raises:
      FileExistsError: `out` exists and is not empty, and `overwrite` is False.
    """
    from sparse_jax import checkpoints  # the converters are optional for the package

    if os.path.exists(out) and not overwrite and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")
    conv = load_converted(src, w_avg_seed=w_avg_seed)
    checkpoints.save_generator(out, conv.cfg, conv.variables, info=conv.info(), overwrite=True)
    return conv
