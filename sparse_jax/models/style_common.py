"""What every style-based generator module shares: noise modes, truncation, the checks and the
output shape of `synthesize`, parameter counts (used by `stylegan1` and `stylegan2`)."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.models import conv_ops

NOISE_MODES = ("const", "none", "random")


def to_nchw(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, C, H, W]."""
    return jnp.transpose(x, (0, 3, 1, 2))


def normal_init(scale: float = 1.0):
    """Flax initializer: N(0, 1) * scale (equalized-lr weights are stored unscaled)."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.normal(key, shape, dtype) * scale
    return init


def const_init(value: float):
    """Flax initializer: every entry `value`."""
    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)
    return init


def truncate(cfg: Any, variables: Mapping, ws: jax.Array, truncation_psi: float = 1.0,
             truncation_cutoff: int | None = None) -> jax.Array:
    """ws [N,num_ws,w_dim] -> w_avg + psi (ws - w_avg) on the first `cutoff` slots (None: all)."""
    if isinstance(truncation_psi, (int, float)) and truncation_psi == 1.0:
        return ws
    w_avg = variables["buffers"]["mapping"]["w_avg"]
    cutoff = cfg.num_ws if truncation_cutoff is None else int(truncation_cutoff)
    slots = (jnp.arange(cfg.num_ws) < cutoff)[None, :, None]
    return jnp.where(slots, w_avg + truncation_psi * (ws - w_avg), ws)


def synthesis_plan(cfg: Any, ws: jax.Array, noise_mode: str, key: jax.Array | None,
                   layers: Sequence[str], return_image: bool, conv_impl: str,
                   canonical_layer_name: Callable[[Any, str], str]
                   ) -> tuple[tuple[str, ...], int | None, dict | None]:
    """Checks `synthesize`'s arguments.

    Returns:
      (canonical layer names, the last block resolution to run (None: all), Flax rngs).
    """
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    conv_ops.check_conv_impl(conv_impl)
    if noise_mode == "random" and key is None:
        raise ValueError("noise_mode='random' needs an explicit PRNG key (key=...)")
    if ws.ndim != 3 or ws.shape[1:] != (cfg.num_ws, cfg.w_dim):
        raise ValueError(
            f"ws must have shape [N, {cfg.num_ws}, {cfg.w_dim}], got {tuple(ws.shape)}")
    names = tuple(canonical_layer_name(cfg, n) for n in layers)
    for name in names:
        if not name.startswith("synthesis."):
            raise ValueError(f"synthesize captures synthesis layers only, got {name!r}")
    if not return_image and not names:
        raise ValueError("return_image=False needs at least one layer in `layers`")
    stop_res = None
    if not return_image:
        stop_res = max(int(n.split(".")[1][1:]) for n in names)
    return names, stop_res, ({"noise": key} if noise_mode == "random" else None)


def synthesis_result(img: jax.Array, acts: Mapping[str, jax.Array], names: Sequence[str],
                     return_image: bool):
    """NHWC outputs -> what `synthesize` returns: img, (img, acts) or acts, images NCHW."""
    acts = {k: (to_nchw(v) if v.ndim == 4 else v) for k, v in acts.items()}
    if not return_image:
        return acts
    img = to_nchw(img)
    return (img, acts) if names else img


def num_params(variables: Mapping) -> int:
    leaves = jax.tree_util.tree_leaves(variables.get("params", {}))
    return int(sum(np.prod(x.shape) for x in leaves))
