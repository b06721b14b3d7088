"""Which style layers SeFa factorises, for any generator (through `models.generators`).

    layers = select_layers(cfg, variables, "0-3")     # or "all", "0-1,5", [0, 2], or names
    res = decompose.sefa_from_weights(sefa_layers.stacked_weights(layers), k)

The order is the ws-slot order of `generators.style_affines` (StyleGAN2: every conv, then the
last torgb; StyleGAN v1: the StyleMod of every layer), which is genforce/sefa's default order;
index i uses ws[:, i]. Names accept the architecture's aliases (a trailing '.affine' too).
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sparse_jax.models import generators


def _parse_indices(spec: str) -> list[int]:
    idx: list[int] = []
    for part in spec.replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ValueError(f"layers={spec!r}: expected 'all', 'a-b' or 'a,b,c-d' indices")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if lo > hi:
            raise ValueError(f"layers={spec!r}: empty range {part!r}")
        idx.extend(range(lo, hi + 1))
    return sorted(set(idx))


def _canonical(cfg: Any, name: str, table: Mapping[str, Any]) -> str:
    name = str(name).removesuffix(".affine")
    if name in table:
        return name
    try:
        name = generators.canonical_layer_name(cfg, name)
    except ValueError:
        pass
    if name not in table:
        raise ValueError(f"unknown SeFa layer {name!r}; valid: {', '.join(table)}")
    return name


def select_layers(cfg: Any, variables: Mapping, layers: str | Sequence[int | str] = "all"
                  ) -> list[tuple[str, jax.Array]]:
    """Resolves a SeFa layer spec to [(name, style weight [C, w_dim])] in ws-slot order.

    Args:
      layers: "all"; an index spec "0-3" / "0-1,5" / [0, 2] over the ws slots; or layer names.
    """
    table = dict(generators.style_affines(cfg, variables))
    order = list(table)
    if isinstance(layers, str) and layers == "all":
        names = order
    else:
        items = [layers] if isinstance(layers, str) else list(layers)
        if not items:
            raise ValueError("layers is empty")
        if isinstance(layers, str) and re.fullmatch(r"[\d,\- ]+", layers):
            idx = _parse_indices(layers)
        elif all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items):
            idx = sorted({int(i) for i in items})
        else:
            idx = sorted({order.index(_canonical(cfg, i, table)) for i in items})
        bad = [i for i in idx if not 0 <= i < len(order)]
        if bad:
            raise ValueError(f"layers={layers!r}: indices {bad} out of range 0-{len(order) - 1} "
                             f"(ws-slot order: {', '.join(order)})")
        names = [order[i] for i in idx]
    return [(n, table[n]) for n in names]


def stacked_weights(chosen: Sequence[tuple[str, jax.Array]]) -> jax.Array:
    """[(name, [C_i, w_dim])] -> [sum C_i, w_dim]."""
    return jnp.concatenate([jnp.asarray(w) for _, w in chosen], axis=0)
