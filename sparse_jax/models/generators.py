"""The generator interface: every stage reaches a generator through these functions only.

An architecture is one module (`sparse_jax.models.stylegan2`, `sparse_jax.models.stylegan1`) that
provides, under the same names and signatures:

  ARCH                                   the name recorded in a generator directory
  GeneratorConfig                        frozen dataclass: z_dim, w_dim, c_dim, num_ws,
                                         img_resolution, img_channels, to_dict(), from_dict()
  init_generator(key, cfg)               -> {'params': ..., 'buffers': ...}
  map_latents(cfg, variables, z, c, truncation_psi, truncation_cutoff, layers)
                                         -> ws [N, num_ws, w_dim] (or (ws, acts) with layers)
  truncate(cfg, variables, ws, truncation_psi, truncation_cutoff)
  synthesize(cfg, variables, ws, noise_mode, key, layers, return_image)
                                         -> img [N, C, H, W] (or with captured NCHW acts)
  layer_names(cfg), synthesis_layer_names(cfg), canonical_layer_name(cfg, name)
  style_affines(cfg, variables)          -> [(layer name, weight [C, w_dim])] in ws-slot order
  num_params(variables)

A third architecture is one new module with these names plus one line in `_ARCHITECTURES`.
The functions here dispatch on the type of `cfg`, so they stay pure and jit-able
(`cfg` is static and hashable; weights and keys are arguments).
"""
from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any, Mapping, Sequence

import jax

_ARCHITECTURES = {
    "stylegan2": "sparse_jax.models.stylegan2",
    "stylegan1": "sparse_jax.models.stylegan1",
}
ARCHITECTURES = tuple(_ARCHITECTURES)


@functools.cache
def module(arch: str) -> ModuleType:
    """The module implementing architecture `arch`."""
    if arch not in _ARCHITECTURES:
        raise ValueError(f"unknown generator architecture {arch!r}; supported: "
                         f"{', '.join(ARCHITECTURES)}")
    return importlib.import_module(_ARCHITECTURES[arch])


def implementation(cfg: Any) -> ModuleType:
    """The architecture module of a generator config."""
    name = type(cfg).__module__
    for arch, mod in _ARCHITECTURES.items():
        if mod == name:
            return module(arch)
    raise TypeError(f"{type(cfg).__qualname__} is not the config of a supported generator "
                    f"architecture ({', '.join(ARCHITECTURES)})")


def architecture(cfg: Any) -> str:
    return implementation(cfg).ARCH


def config_from_dict(arch: str, d: Mapping[str, Any]) -> Any:
    return module(arch).GeneratorConfig.from_dict(d)


def init(key: jax.Array, cfg: Any) -> dict:
    """Fresh variables {'params': ..., 'buffers': ...} of the architecture's own init."""
    return implementation(cfg).init_generator(key, cfg)


def abstract_variables(cfg: Any) -> Any:
    """ShapeDtypeStructs of a generator's variables (no computation)."""
    # The key is made inside the trace: no host-to-device copy (works under transfer_guard).
    return jax.eval_shape(lambda: init(jax.random.key(0), cfg))


def map_latents(cfg: Any, variables: Mapping, z: jax.Array, c: jax.Array | None = None,
                truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                layers: Sequence[str] = ()):
    """z [N, z_dim] (and c [N, c_dim]) -> ws [N, num_ws, w_dim]; cutoff None = every slot."""
    return implementation(cfg).map_latents(cfg, variables, z, c, truncation_psi,
                                           truncation_cutoff, layers)


def truncate(cfg: Any, variables: Mapping, ws: jax.Array, truncation_psi: float = 1.0,
             truncation_cutoff: int | None = None) -> jax.Array:
    return implementation(cfg).truncate(cfg, variables, ws, truncation_psi, truncation_cutoff)


def synthesize(cfg: Any, variables: Mapping, ws: jax.Array, noise_mode: str = "const",
               key: jax.Array | None = None, layers: Sequence[str] = (),
               return_image: bool = True, **kwargs: Any):
    """ws [N, num_ws, w_dim] -> img [N, C, H, W]; see the architecture module for `layers`."""
    return implementation(cfg).synthesize(cfg, variables, ws, noise_mode=noise_mode, key=key,
                                          layers=layers, return_image=return_image, **kwargs)


def generate(cfg: Any, variables: Mapping, z: jax.Array, c: jax.Array | None = None,
             truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
             noise_mode: str = "const", key: jax.Array | None = None) -> jax.Array:
    """z [N, z_dim] -> images [N, C, H, W] (mapping, truncation, synthesis)."""
    ws = map_latents(cfg, variables, z, c, truncation_psi, truncation_cutoff)
    return synthesize(cfg, variables, ws, noise_mode=noise_mode, key=key)


def layer_names(cfg: Any) -> list[str]:
    return implementation(cfg).layer_names(cfg)


def synthesis_layer_names(cfg: Any) -> list[str]:
    return implementation(cfg).synthesis_layer_names(cfg)


def canonical_layer_name(cfg: Any, name: str) -> str:
    return implementation(cfg).canonical_layer_name(cfg, name)


def style_affines(cfg: Any, variables: Mapping) -> list[tuple[str, jax.Array]]:
    """[(layer name, style weight [C, w_dim])] in ws-slot order (SeFa's input)."""
    return implementation(cfg).style_affines(cfg, variables)


def num_params(cfg: Any, variables: Mapping) -> int:
    return implementation(cfg).num_params(variables)



GeneratorConfig = Any  # the GeneratorConfig of any architecture module above
