"""Checkpoint converters: NVIDIA `.pkl` (PyTorch and TensorFlow) / rosinality `.pt` -> generator.

    cfg, variables = converters.convert_file("network-snapshot.pkl")
    converters.convert("network-snapshot.pkl", "out/generator")   # then model_dirs.load_generator

Supported: stylegan2-ada-pytorch snapshots and stylegan3-repo snapshots holding a StyleGAN2
generator (`G_ema` is always taken), rosinality checkpoints (`g_ema` + `latent_avg` from
convert_weight.py, or training checkpoints with `args`), and NVIDIA's TensorFlow pickles, the
tuple (G, D, Gs) of `dnnlib.tflib.network.Network` states (`Gs`, slot 2, is always taken):
StyleGAN v1 (`G_style`, -> `sparse_jax.models.stylegan1`), StyleGAN2 TF and StyleGAN2-ADA TF
(`G_main`, -> `sparse_jax.models.stylegan2`). Files are read with a restricted unpickler (nothing
in them is executed, embedded source code is kept as text) and without torch or TensorFlow.
Anything else raises a `ConversionError` (a ValueError) naming the file and what was expected.
"""
from __future__ import annotations

import os

from converters.errors import ConversionError, UnsafePickleError
from converters.official_pkl import convert_official
from converters.rosinality_pt import convert_rosinality, find_state_dict
from converters.safe_pickle import NVIDIA_GLOBALS, TORCH_SAVE_GLOBALS
from converters.stylegan2_names import Converted
from converters.tf_pickle import TF_GLOBALS, TFNetwork, is_tf_pickle_object, networks_from_object
from converters.torch_storage import load_checkpoint
from sparse_jax.models import stylegan2 as sg

__all__ = ["ConversionError", "Converted", "UnsafePickleError", "convert", "convert_bytes",
           "convert_file", "load_converted"]


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
    return convert_bytes(data, path, w_avg_seed=w_avg_seed)


def convert_bytes(data: bytes, path: str, *, w_avg_seed: int = 0) -> Converted:
    """`load_converted` on a file's contents (`path` names it in messages)."""
    container, obj = load_checkpoint(data, source=path,
                                     pickle_globals={**NVIDIA_GLOBALS, **TF_GLOBALS},
                                     torch_globals=TORCH_SAVE_GLOBALS)
    if container == "pickle" and is_tf_pickle_object(obj):
        return convert_tf(path, networks_from_object(obj, path))
    if isinstance(obj, dict) and "G_ema" in obj:
        return convert_official(path, obj)
    if find_state_dict(obj) is not None:
        return convert_rosinality(path, obj, w_avg_seed=w_avg_seed)
    if container == "pickle":
        return convert_official(path, obj)  # raises: no generator
    return convert_rosinality(path, obj, w_avg_seed=w_avg_seed)  # raises: no generator


def convert_tf(path: str, nets: tuple[TFNetwork, ...]) -> Converted:
    """Converts `Gs` (slot 2) of a TensorFlow pickle's (G, D, Gs), by its build function."""
    if len(nets) != 3:
        raise ConversionError(f"{path}: a TensorFlow StyleGAN pickle holds the tuple (G, D, Gs); "
                              f"this one holds {len(nets)} Network(s)")
    gs = nets[2]
    func = gs.build_func_name
    if gs.version == 2 or func == "G_paper":
        raise ConversionError(f"{path}: Gs.build_func_name = {func!r}, Network state version "
                              f"{gs.version}: a ProGAN-era network; ProGAN is not supported (only "
                              "StyleGAN v1, StyleGAN2 and StyleGAN2-ADA)")
    if func == "G_main":
        from converters.tf_stylegan2 import convert_g_main

        return convert_g_main(path, gs)
    if func == "G_style":
        from converters.tf_stylegan1 import convert_g_style

        return convert_g_style(path, gs)
    if func.startswith("D_"):
        raise ConversionError(f"{path}: Gs (slot 2) has build_func_name {func!r}, a "
                              "discriminator; expected the generator 'G_style' or 'G_main'")
    raise ConversionError(f"{path}: Gs.build_func_name = {func!r} is not a supported generator "
                          "(expected 'G_style' for StyleGAN v1 or 'G_main' for StyleGAN2 / "
                          "StyleGAN2-ADA TF)")


def convert_file(path: str, *, w_avg_seed: int = 0) -> tuple[sg.GeneratorConfig, dict]:
    """Converts a checkpoint file. Returns (config, {'params': ..., 'buffers': ...})."""
    conv = load_converted(path, w_avg_seed=w_avg_seed)
    return conv.cfg, conv.variables


def convert(src: str, out: str, *, overwrite: bool = False, w_avg_seed: int = 0) -> Converted:
    """Converts `src` and saves a generator directory at `out` (loadable by `load_generator`).

    Raises:
      FileExistsError: `out` exists and is not empty, and `overwrite` is False.
    """
    from sparse_jax.io import model_dirs  # the converters are optional for the package

    if os.path.exists(out) and not overwrite and (not os.path.isdir(out) or os.listdir(out)):
        raise FileExistsError(f"{out} exists and is not empty; pass --overwrite to replace it")
    conv = load_converted(src, w_avg_seed=w_avg_seed)
    model_dirs.save_generator(out, conv.cfg, conv.variables, info=conv.info(), overwrite=True,
                               defaults=conv.defaults or None)
    return conv
