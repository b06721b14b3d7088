"""Official StyleGAN2 state-dict names -> sparse-jax generator variables, and the checks on them.

The sparse-jax parameter tree mirrors the official names and layouts (spec section 4), so the
conversion of an official state dict is a re-nesting: `synthesis.b8.conv0.affine.weight` becomes
`params['synthesis']['b8']['conv0']['affine']['weight']`; `mapping.w_avg` and `*.noise_const` go
to the `buffers` collection; the FIR `resample_filter` buffers are checked and dropped.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from converters.errors import ConversionError
from converters.safe_pickle import short_repr
from sparse_jax.io import model_dirs
from sparse_jax.models import stylegan2 as sg

BUFFER_LEAVES = ("w_avg", "noise_const")
_FIR_1D = np.array([1.0, 3.0, 3.0, 1.0])
STANDARD_FIR = np.outer(_FIR_1D, _FIR_1D) / np.sum(_FIR_1D) ** 2  # [4,4], sum 1


def check_fir(source: str, name: str, kernel: np.ndarray, gain: float = 1.0) -> None:
    """Raises unless `kernel` is the standard [1,3,3,1] filter (times `gain`)."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.shape != (4, 4) or not np.allclose(kernel, STANDARD_FIR * gain, rtol=1e-5,
                                                 atol=1e-7):
        shown = np.array2string(np.asarray(kernel).ravel()[:8], precision=4)
        raise ConversionError(
            f"{source}: non-standard resample filter at {name} (shape {kernel.shape}, "
            f"values {shown}...); only the standard [1,3,3,1] FIR is supported")


def check_resample_kwarg(source: str, where: str, value: object) -> None:
    """Checks a `resample_filter` constructor kwarg (a list like [1,3,3,1])."""
    if value is None:
        return
    try:
        ok = list(np.asarray(value, np.float64).ravel()) == [1.0, 3.0, 3.0, 1.0]
    except (TypeError, ValueError, RecursionError):  # not a list of numbers
        ok = False
    if not ok:
        raise ConversionError(f"{source}: non-standard resample filter {short_repr(value)} in "
                              f"{where}; only the standard [1,3,3,1] FIR is supported")


def infer_channel_table(source: str, channels: Mapping[int, int]) -> tuple[int, int]:
    """(channel_base, channel_max) with min(channel_base // r, channel_max) == channels[r].

    Args:
      channels: resolution -> number of feature maps of that block, for r = 4 .. img_resolution.
    """
    channel_max = max(channels.values())
    below = [r for r in sorted(channels) if channels[r] < channel_max]
    channel_base = channels[below[0]] * below[0] if below else channel_max * max(channels)
    table = {r: min(channel_base // r, channel_max) for r in channels}
    if table != dict(channels):
        raise ConversionError(
            f"{source}: the channel table {dict(sorted(channels.items()))} cannot be written as "
            "min(channel_base // res, channel_max), which the sparse-jax generator assumes")
    return channel_base, channel_max


def state_to_variables(source: str, state: Mapping[str, np.ndarray],
                       cfg: sg.GeneratorConfig) -> dict:
    """Nests an official-named state dict and checks it against the model of `cfg`.

    Args:
      state: official name -> array (float32 after conversion; `resample_filter` already removed).
    Returns:
      {'params': ..., 'buffers': ...} with float32 jax arrays, laid out as `sg.init_generator`.
    """
    variables: dict = {"params": {}, "buffers": {}}
    for name, value in state.items():
        parts = name.split(".")
        if not all(parts):
            raise ConversionError(f"{source}: bad parameter name {name!r}")
        node = variables["buffers" if parts[-1] in BUFFER_LEAVES else "params"]
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConversionError(f"{source}: name {name!r} clashes with a tensor")
        node[parts[-1]] = jnp.asarray(np.asarray(value, np.float32))
    try:
        model_dirs.check_like(variables, model_dirs.abstract_generator(cfg))
    except ValueError as e:
        raise ConversionError(f"{source}: the converted tree does not match a generator with "
                              f"config {cfg}:\n{e}") from e
    return variables


@dataclasses.dataclass
class Converted:
    """A converted generator and what the converter learned about its source."""

    cfg: sg.GeneratorConfig
    variables: dict
    flavour: str  # 'stylegan2-ada-pytorch', 'stylegan3-repo', 'rosinality', 'stylegan2-tf', ...
    source: str
    notes: list[str] = dataclasses.field(default_factory=list)
    # The checkpoint's own default call, e.g. {"truncation_psi": 0.5, "truncation_cutoff": None}
    # (None cutoff = every ws slot); empty when the format has none (PyTorch-era files).
    defaults: dict = dataclasses.field(default_factory=dict)

    @property
    def num_params(self) -> int:
        return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(self.variables["params"])))

    def info(self) -> dict:
        info = {"converted_from": os.path.abspath(self.source), "flavour": self.flavour,
                "notes": list(self.notes)}
        if self.defaults:
            info["defaults"] = dict(self.defaults)
        return info

    def summary(self) -> str:
        c = self.cfg
        return (f"{self.flavour}: {os.path.basename(self.source)} -> {c.img_resolution}x"
                f"{c.img_resolution}, {c.img_channels} channel(s), z_dim={c.z_dim}, "
                f"w_dim={c.w_dim}, c_dim={c.c_dim}, {c.mapping_layers} mapping layers, "
                f"{self.num_params} params")
